""".keyscanignore: findings a team has looked at and decided to live with, by fingerprint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fakes import fake_key_id
from repos import CliResult, commit_all

Cli = Callable[..., CliResult]


def two_leaks(repo: Path) -> tuple[str, str]:
    revoked, live = fake_key_id(), fake_key_id()
    (repo / "docs").mkdir()
    (repo / "docs" / "setup.md").write_text(f"Use `{revoked}` as the key ID.\n")
    (repo / "app.env").write_text(f"AWS_ACCESS_KEY_ID={live}\n")
    commit_all(repo)
    return revoked, live


def fingerprint_of(cli: Cli, repo: Path, key: str, *mode: str) -> str:
    doc = cli("scan", repo, "-f", "json", *mode).json
    return str(next(f["fingerprint"] for f in doc["findings"] if f["key_id"] == key))


def test_an_ignored_fingerprint_is_counted_not_reported(cli: Cli, repo: Path) -> None:
    revoked, live = two_leaks(repo)
    fp = fingerprint_of(cli, repo, revoked)
    (repo / ".keyscanignore").write_text(
        "# reviewed by security, 2024-03-02\n"
        "\n"
        f"{fp}  revoked in IAM, kept in the docs' history\n")

    as_json = cli("scan", repo, "-f", "json")
    as_text = cli("scan", repo)

    assert as_json.code == as_text.code == 1
    assert [f["key_id"] for f in as_json.json["findings"]] == [live]
    assert as_json.json["summary"]["ignored"] == 1
    assert revoked not in as_text.out
    assert "1 suppressed by .keyscanignore" in as_text.err


def test_ignoring_every_leak_passes_the_build(cli: Cli, repo: Path) -> None:
    revoked, live = two_leaks(repo)
    lines = [f"{fingerprint_of(cli, repo, k)}\t# {why}"
             for k, why in ((revoked, "revoked"), (live, "canary we planted"))]
    (repo / ".keyscanignore").write_text("\n".join(lines) + "\n")

    result = cli("scan", repo)

    assert result.code == 0
    assert "2 suppressed by .keyscanignore" in result.err


def test_the_ignore_file_applies_to_history_scans(cli: Cli, repo: Path) -> None:
    revoked, live = two_leaks(repo)
    (repo / "docs" / "setup.md").unlink()
    commit_all(repo, "drop the old doc")
    fp = fingerprint_of(cli, repo, revoked, "--history", "--no-cache")
    (repo / ".keyscanignore").write_text(f"{fp} revoked\n")

    result = cli("scan", "--history", repo, "-f", "json", "--no-cache")

    assert [f["key_id"] for f in result.json["findings"]] == [live]
    assert result.json["summary"]["ignored"] == 1


def test_a_line_that_is_not_a_fingerprint_is_one_clear_error(cli: Cli, repo: Path) -> None:
    two_leaks(repo)
    (repo / ".keyscanignore").write_text("# ok\ndocs/setup.md  the whole file please\n")

    result = cli("scan", repo)

    assert result.code == 2
    assert result.err == (f"keyscan: error: {repo / '.keyscanignore'}:2: 'docs/setup.md' is "
                          "not a fingerprint (20 hex characters, as `keyscan scan` prints "
                          "them)\n")


def test_an_ignore_file_saved_with_a_byte_order_mark_and_crlf_is_read(cli: Cli,
                                                                      repo: Path) -> None:
    """Notepad's UTF-8 starts with a BOM: the first fingerprint was refused."""
    revoked, live = two_leaks(repo)
    fp = fingerprint_of(cli, repo, revoked)
    (repo / ".keyscanignore").write_bytes(b"\xef\xbb\xbf" + f"{fp}  revoked\r\n".encode())

    result = cli("scan", repo, "-f", "json")

    assert result.code == 1, result.err
    assert [f["key_id"] for f in result.json["findings"]] == [live]
