"""`keyscan explain`: one credential's story, from a fingerprint or a key ID.

A key that came in on one branch, moved, was deleted, came back in another file and
got tagged: explain must name every path and commit, the refs, first and last seen,
and what to do — without ever printing the secret.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import fake_key_id, fake_secret
from repos import CliResult, clean_env, git
from test_history import commit

Cli = Callable[..., CliResult]


@pytest.fixture
def wandering(repo: Path) -> dict[str, Any]:
    key, secret = fake_key_id(), fake_secret()
    creds = f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    commit(repo, {"README.md": "app\n"}, "initial", "Alice")
    first = commit(repo, {"config/prod.ini": creds}, "add prod config", "Bob")
    commit(repo, {"config/prod.ini": None}, "remove prod config", "Alice")
    git(repo, "checkout", "-q", "-b", "hotfix")
    again = commit(repo, {"deploy/env.ini": "# hotfix\n" + creds}, "hotfix creds", "Carol")
    git(repo, "tag", "-a", "v2.1", "-m", "hotfix release")
    git(repo, "checkout", "-q", "main")
    return {"key": key, "secret": secret, "first": first, "again": again}


def test_explain_by_key_id_tells_the_whole_story(cli: Cli, repo: Path,
                                                 wandering: dict[str, Any]) -> None:
    result = cli("explain", wandering["key"], repo)

    out = result.out
    assert result.code == 0, result.err
    assert out.startswith(f"{wandering['key']}  AWS access key ID with its secret access key")
    assert wandering["secret"] not in out and wandering["secret"][:8] not in out
    assert "(40 chars, redacted)" in out
    assert f"{wandering['first'][:12]} " in out and "config/prod.ini:2" in out
    assert f"{wandering['again'][:12]} " in out and "deploy/env.ini:3" in out
    assert "refs        heads/hotfix, heads/main, tags/v2.1" in out
    assert "in HEAD     no" in out
    assert "first seen  20" in out and "last seen   20" in out
    assert "add --verify to ask IAM" in out
    steps = out.split("Next steps:")[1]
    assert f"keyscan explain {wandering['key']} PATH --verify" in steps
    assert "shown only once, at creation" in steps
    assert "history still holds it" in steps


def test_explain_of_a_key_in_a_tag_message_names_the_tag_and_its_refs(cli: Cli, repo: Path
                                                                     ) -> None:
    key = fake_key_id()
    commit(repo, {"README.md": "app\n"}, "initial", "Alice")
    env = clean_env(GIT_COMMITTER_NAME="Mallory", GIT_COMMITTER_EMAIL="m@example.com")
    git(repo, "tag", "-a", "v1", "-m", f"deployed with {key}", env=env)
    tag = git(repo, "rev-parse", "v1").stdout.strip()

    out = cli("explain", key, repo).out

    assert "refs        tags/v1\n" in out
    assert "first seen  20" in out
    place = out.split("place(s):\n")[1].splitlines()[0].strip()
    assert place.startswith(f"{tag[:12]} 20") and " Mallory " in place
    assert f"(tag message {tag[:12]}):1" in place


def test_explain_by_fingerprint_finds_the_same_credential(cli: Cli, repo: Path,
                                                         wandering: dict[str, Any]) -> None:
    report = cli("scan", "--history", repo, "-f", "json").json
    fingerprint = report["findings"][0]["fingerprint"]

    result = cli("explain", fingerprint, repo, "-f", "json")

    doc = result.json
    assert doc["key_id"] == wandering["key"]
    assert doc["kind"] == "pair"
    assert fingerprint in doc["fingerprints"]
    assert {(p["path"], p["commit"]["sha"]) for p in doc["places"]} == {
        ("config/prod.ini", wandering["first"]), ("deploy/env.ini", wandering["again"])}
    assert doc["first_seen"] <= doc["last_seen"]
    assert doc["refs"] == ["refs/heads/hotfix", "refs/heads/main", "refs/tags/v2.1"]
    assert doc["ownership"] is None
    assert wandering["secret"] not in result.out


def test_a_key_still_in_the_files_says_where_to_remove_it(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"app/settings.py": f"KEY = '{key}'\n"}, "settings")

    out = cli("explain", key, repo).out

    assert "in HEAD     yes; in the working tree: yes" in out
    assert "(working tree)" in out
    assert "Remove it from app/settings.py" in out


def test_a_foreign_key_is_not_to_be_rotated_by_us(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"vendor.txt": f"id {key}\n"}, "vendor sample")
    (repo / ".keyscan.yaml").write_text("our_accounts: ['000000000001']\n")

    out = cli("explain", key, repo).out

    assert "class       foreign" in out
    assert "not yours: do not use it" in out
    assert "create-access-key" not in out


def test_an_unknown_fingerprint_is_one_clear_error(cli: Cli, repo: Path,
                                                   wandering: dict[str, Any]) -> None:
    result = cli("explain", "0" * 20, repo)

    assert result.code == 2
    assert result.err == (f"keyscan: error: no finding with fingerprint or key ID {'0' * 20} "
                          f"in {repo}: `keyscan scan --history {repo}` lists them\n")


def test_in_a_plain_folder_the_error_points_to_a_scan_that_works(cli: Cli,
                                                                 tmp_path: Path) -> None:
    result = cli("explain", "0" * 20, tmp_path)

    assert result.code == 2
    assert f"`keyscan scan {tmp_path}` lists them" in result.err


def test_something_that_is_neither_is_refused(cli: Cli, repo: Path) -> None:
    result = cli("explain", "config/prod.ini", repo)

    assert result.code == 2
    assert "is neither a fingerprint" in result.err


def test_a_secret_pasted_instead_of_a_key_id_is_not_echoed(cli: Cli, repo: Path) -> None:
    """A secret access key (or a whole config line) pasted by mistake: the error quotes
    it as reports do, first 4 characters, not whole into the terminal and CI log."""
    secret = fake_secret()
    for pasted in (secret, f"aws_secret_access_key={secret}"):
        result = cli("explain", pasted, repo)
        assert result.code == 2
        assert "is neither a fingerprint" in result.err
        assert secret[:4] in result.err
        assert not any(secret[i : i + 5] in result.err for i in range(len(secret) - 4))


def test_an_ignored_finding_shows_why(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"docs/setup.md": f"Use {key}\n"}, "docs")
    fingerprint = cli("scan", repo, "-f", "json").json["findings"][0]["fingerprint"]
    (repo / ".keyscanignore").write_text(f"{fingerprint}  revoked 2024-03-02\n")

    for _ in range(40):  # a key on many tags: the text lists a few of them
        git(repo, "tag", f"v{_}")
    out = cli("explain", key, repo).out

    assert out.count(f"ignored     {fingerprint} (revoked 2024-03-02) in .keyscanignore") == 1
    assert "(not reported: ignored in .keyscanignore)" in out  # once, history and tree
    refs = next(line for line in out.splitlines() if line.startswith("  refs "))
    assert refs.count(",") == 9 and "and 31 more" in refs


def test_a_key_whose_only_copy_in_head_is_the_baseline_is_not_in_head(
        cli: Cli, repo: Path, wandering: dict[str, Any]) -> None:
    """Adopting keyscan commits a baseline naming the key (its line marked keyscan:allow):
    explain said "in HEAD: yes", and advised removing it from the baseline."""
    assert cli("baseline", "--history", repo, "--output", repo / "keyscan-baseline.json"
               ).code == 0
    commit(repo, {"keyscan-baseline.json": (repo / "keyscan-baseline.json").read_text()},
           "adopt keyscan", "Alice")
    out = cli("explain", wandering["key"], repo).out
    assert "in HEAD     no" in out
    assert "keyscan-baseline.json" not in out.split("Next steps:")[1]
