"""Adopting keyscan on an old repository: accept today's leaks, fail only on new ones.

`keyscan baseline` writes what is known; `keyscan scan --baseline FILE` reports only
what is new and lists the baseline entries that are gone.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import fake_key_id, fake_secret
from repos import CliResult, commit_all, git

Cli = Callable[..., CliResult]


@pytest.fixture
def old_repo(repo: Path) -> dict[str, str]:
    """Five years of history: two known leaks in the files today."""
    keys = {"prod": fake_key_id(), "legacy": fake_key_id(), "secret": fake_secret()}
    (repo / "config").mkdir()
    (repo / "config" / "prod.ini").write_text(
        f"[default]\naws_access_key_id = {keys['prod']}\n"
        f"aws_secret_access_key = {keys['secret']}\n")
    (repo / "legacy.py").write_text(f"KEY = '{keys['legacy']}'\n")
    commit_all(repo, "old work")
    return keys


def make_baseline(cli: Cli, repo: Path, *mode: str) -> Path:
    out = repo.parent / "keyscan-baseline.json"
    result = cli("baseline", repo, "--output", out, *mode)
    assert result.code == 0, result.err
    return out


def test_the_baseline_holds_what_is_known_and_no_secret(cli: Cli, repo: Path,
                                                        old_repo: dict[str, str]) -> None:
    out = make_baseline(cli, repo)

    text = out.read_text()
    doc = json.loads(text)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert old_repo["secret"] not in text
    assert old_repo["secret"][:8] not in text
    entries = {e["key_id"]: e for e in doc["findings"]}
    assert set(entries) == {old_repo["prod"], old_repo["legacy"]}
    prod = entries[old_repo["prod"]]
    assert (prod["path"], prod["kind"], prod["line"]) == ("config/prod.ini", "pair", 2)
    assert len(prod["fingerprint"]) == 20


def test_a_scan_with_the_baseline_passes_and_counts_what_it_knew(
        cli: Cli, repo: Path, old_repo: dict[str, str]) -> None:
    out = make_baseline(cli, repo)

    result = cli("scan", repo, "--baseline", out, "-f", "json")

    assert result.code == 0, result.out
    assert result.json["findings"] == []
    assert result.json["summary"]["baselined"] == 2
    assert result.json["baseline"]["stale"] == []


def test_the_baseline_survives_moved_lines(cli: Cli, repo: Path,
                                           old_repo: dict[str, str]) -> None:
    out = make_baseline(cli, repo)
    prod = repo / "config" / "prod.ini"
    prod.write_text("# production\n\n\n" + prod.read_text() + "region = eu-west-1\n")
    legacy = repo / "legacy.py"
    legacy.write_text("import os\n\n\ndef setup():\n    pass\n\n" + legacy.read_text())
    commit_all(repo, "reformat")

    result = cli("scan", repo, "--baseline", out)

    assert result.code == 0, result.out
    assert "2 known in the baseline" in result.err


def test_only_a_new_leak_is_reported_and_fails(cli: Cli, repo: Path,
                                               old_repo: dict[str, str]) -> None:
    out = make_baseline(cli, repo)
    new_key = fake_key_id()
    (repo / "deploy.sh").write_text(f"export AWS_ACCESS_KEY_ID={new_key}\n")

    result = cli("scan", repo, "--baseline", out, "-f", "json")

    assert result.code == 1
    assert [f["key_id"] for f in result.json["findings"]] == [new_key]
    assert result.json["summary"] | {"leaks": 1, "baselined": 2} == result.json["summary"]


def test_a_baseline_named_in_the_settings_applies_to_scans_and_the_hook(
        cli: Cli, repo: Path, old_repo: dict[str, str]) -> None:
    """`baseline:` in .keyscan.yaml: the pre-commit hook and CI pick up the committed
    baseline with no flag; a leak it does not know still fails."""
    assert cli("baseline", repo, "--output", repo / ".keyscan-baseline.json").code == 0
    (repo / ".keyscan.yaml").write_text("baseline: .keyscan-baseline.json\n")
    commit_all(repo, "adopt keyscan")
    assert cli("scan", repo).code == 0
    (repo / "legacy.py").write_text(f"KEY = '{old_repo['legacy']}'  # still here\n")
    git(repo, "add", "legacy.py")
    assert cli("scan", "--staged", cwd=repo).code == 0  # an edit near a known key
    new_key = fake_key_id()
    (repo / "deploy.sh").write_text(f"export AWS_ACCESS_KEY_ID={new_key}\n")
    git(repo, "add", "deploy.sh")
    result = cli("scan", "--staged", "--format", "json", cwd=repo)
    assert result.code == 1 and [f["key_id"] for f in result.json["findings"]] == [new_key]
    (repo / ".keyscan.yaml").write_text("baseline: [not, a, path]\n")
    bad = cli("scan", repo)
    assert bad.code == 2 and "'baseline' must be the path" in bad.err


def test_entries_no_longer_found_are_listed_as_stale(cli: Cli, repo: Path,
                                                     old_repo: dict[str, str]) -> None:
    out = make_baseline(cli, repo)
    (repo / "legacy.py").write_text("import os\nKEY = os.environ['KEY']\n")
    commit_all(repo, "read the key from the environment")

    as_json = cli("scan", repo, "--baseline", out, "-f", "json")
    as_text = cli("scan", repo, "--baseline", out)

    assert as_json.code == as_text.code == 0
    stale = as_json.json["baseline"]["stale"]
    assert [(s["key_id"], s["path"]) for s in stale] == [(old_repo["legacy"], "legacy.py")]
    assert "STALE   1 baseline entry no longer found" in as_text.out
    assert f"legacy.py:1  {old_repo['legacy']}" in as_text.out
    assert "1 stale baseline entries" in as_text.err


def test_a_committed_baseline_is_not_a_leak_itself(cli: Cli, repo: Path,
                                                   old_repo: dict[str, str]) -> None:
    out = repo / ".keyscan-baseline.json"
    assert cli("baseline", repo, "-o", out).code == 0
    commit_all(repo, "accept the known leaks")

    with_baseline = cli("scan", repo, "--baseline", out, "-f", "json")
    again = cli("baseline", repo, "-o", out)

    assert with_baseline.code == 0, with_baseline.out
    assert with_baseline.json["baseline"]["stale"] == []
    assert again.code == 0
    assert len(json.loads(out.read_text())["findings"]) == 2


def test_history_baselines_work_the_same(cli: Cli, repo: Path,
                                         old_repo: dict[str, str]) -> None:
    (repo / "legacy.py").unlink()
    commit_all(repo, "drop legacy")
    out = make_baseline(cli, repo, "--history")
    entries = json.loads(out.read_text())["findings"]
    assert all(len(e["commit"]) == 40 for e in entries)
    assert len(entries) == 2  # legacy.py is gone from the files, not from history

    known = cli("scan", "--history", repo, "--baseline", out, "-f", "json")
    new_key = fake_key_id()
    (repo / "new.txt").write_text(f"id {new_key}\n")
    commit_all(repo, "oops")
    after = cli("scan", "--history", repo, "--baseline", out, "-f", "json")

    assert known.code == 0
    assert after.code == 1
    assert [f["key_id"] for f in after.json["findings"]] == [new_key]


def test_a_pull_request_range_scan_reports_no_stale_entries(
        cli: Cli, repo: Path, old_repo: dict[str, str]) -> None:
    out = make_baseline(cli, repo, "--history")
    base = git(repo, "rev-parse", "HEAD").stdout.strip()
    (repo / "notes.txt").write_text("nothing secret\n")
    commit_all(repo, "docs")

    result = cli("scan", "--range", f"{base}..HEAD", repo, "--baseline", out, "-f", "json")

    assert result.code == 0
    assert result.json["baseline"] | {"stale_checked": False, "stale": []} \
        == result.json["baseline"]


def test_staged_baselines_are_made_from_the_index(cli: Cli, repo: Path,
                                                  old_repo: dict[str, str]) -> None:
    key = fake_key_id()
    (repo / "staged.env").write_text(f"KEY={key}\n")
    git(repo, "add", "staged.env")

    out = make_baseline(cli, repo, "--staged")

    assert [e["key_id"] for e in json.loads(out.read_text())["findings"]] == [key]
    assert cli("scan", "--staged", repo, "--baseline", out).code == 0


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist: make it with `keyscan baseline PATH --output"),
    ("not json", "is not JSON"),
    ('{"findings": []}', "is not a keyscan baseline"),
])
def test_a_bad_baseline_file_is_one_clear_error(cli: Cli, repo: Path,
                                                old_repo: dict[str, str],
                                                content: str | None, expected: str) -> None:
    path = repo.parent / "baseline.json"
    if content is not None:
        path.write_text(content)

    result = cli("scan", repo, "--baseline", path)

    assert result.code == 2
    assert result.err.startswith("keyscan: error:")
    assert result.err.count("\n") == 1
    assert expected in result.err


def test_a_shallow_clone_does_not_call_history_it_lacks_stale(
        cli: Cli, repo: Path, old_repo: dict[str, str], tmp_path: Path) -> None:
    """CI checkouts are often shallow: the old commits, and the baselined leaks only they
    hold, are not there. Calling those entries stale (and telling to rewrite the
    baseline) would drop them, and the next full scan would fail on them."""
    (repo / "legacy.py").unlink()
    commit_all(repo, "drop legacy")
    (repo / "notes.txt").write_text("nothing secret\n")
    commit_all(repo, "docs")
    out = make_baseline(cli, repo, "--history")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))

    as_json = cli("scan", "--history", clone, "--baseline", out, "-f", "json")
    as_text = cli("scan", "--history", clone, "--baseline", out)

    assert as_json.code == as_text.code == 0, as_json.out
    assert as_json.json["baseline"]["stale"] == []
    assert as_json.json["baseline"]["stale_checked"] is False
    assert "STALE" not in as_text.out and "1 stale baseline entries" not in as_text.err
    assert "shallow clone" in as_text.err


def test_a_working_tree_scan_does_not_call_a_history_baseline_stale(
        cli: Cli, repo: Path, old_repo: dict[str, str]) -> None:
    """The README's adoption: a history baseline named in .keyscan.yaml, used by every
    scan there. A leak only the history holds is no stale entry for a scan of the files
    (rewriting the baseline from that scan, as STALE advised, would drop it)."""
    (repo / "legacy.py").unlink()
    commit_all(repo, "drop legacy")
    assert cli("baseline", "--history", repo, "-o", repo / ".keyscan-baseline.json").code == 0
    (repo / ".keyscan.yaml").write_text("baseline: .keyscan-baseline.json\n")
    commit_all(repo, "adopt keyscan")

    files = cli("scan", repo)
    history = cli("scan", "--history", repo, "-f", "json")

    assert files.code == 0 and history.code == 0
    assert "STALE" not in files.out and "1 stale baseline entries" not in files.err
    assert history.json["baseline"]["stale_checked"] is True
    assert "the baseline was made by" not in files.err  # no note on every scan of the files
    # the other way round, a history scan against a baseline of the files says so
    cli("baseline", repo, "-o", repo / "files-baseline.json")
    other = cli("scan", "--history", repo, "--baseline", repo / "files-baseline.json")
    assert "the baseline was made by a worktree scan" in other.err


def test_a_secret_pasted_into_a_baseline_is_not_echoed(cli: Cli, repo: Path,
                                                       old_repo: dict[str, str]) -> None:
    """A hand-edited baseline: its entries came back whole in the STALE block (text and
    JSON), so a secret pasted into `fingerprint` or `key_id` was printed to the CI log."""
    secret = fake_secret()
    for field in ("fingerprint", "key_id", "rule"):
        row = {"fingerprint": "0" * 20, field: secret}
        path = repo.parent / "baseline.json"
        path.write_text(json.dumps({"keyscan_baseline": 1, "mode": "worktree",
                                    "findings": [row]}))
        for fmt in ("text", "json"):
            result = cli("scan", repo, "--baseline", path, "-f", fmt)
            assert result.code == 2, (field, result.out)
            assert secret[:8] not in result.out + result.err
            assert result.err.startswith(f"keyscan: error: {path}: entry 1:"), result.err


@pytest.mark.parametrize("bad_path", ["config/\x00prod.ini", "config/prod.ini\n",
                                      "\x1b[2Jprod.ini", "", 42, ["config/prod.ini"]],
                         ids=["nul", "newline", "escape", "empty", "number", "list"])
def test_a_baseline_path_that_is_no_path_is_one_clear_error(
        cli: Cli, repo: Path, old_repo: dict[str, str], bad_path: object) -> None:
    """`path` was the one field whose shape was not checked: a number or a list was
    taken as its text, a NUL or a line break as part of a path."""
    out = make_baseline(cli, repo)
    doc = json.loads(out.read_text())
    doc["findings"][1]["path"] = bad_path
    out.write_text(json.dumps(doc))

    result = cli("scan", repo, "--baseline", out)

    assert result.code == 2, result.out
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"keyscan: error: {out}: entry 2: "), result.err
    assert "is not a path (one line of printable characters, as reports show a path): " \
           "make it with `keyscan baseline" in result.err


@pytest.mark.parametrize("field", ["fingerprint", "rule", "kind", "key_id", "commit"])
def test_a_baseline_field_ending_in_a_newline_is_one_clear_error(
        cli: Cli, repo: Path, old_repo: dict[str, str], field: str) -> None:
    """The fields' shapes ended in `$`, which also matches before a final newline: a
    fingerprint, rule, kind, key ID or commit with one was taken (a fingerprint then
    matched nothing: its leak came back as new and its entry as stale)."""
    out = make_baseline(cli, repo, "--history")
    doc = json.loads(out.read_text())
    doc["findings"][0][field] += "\n"
    out.write_text(json.dumps(doc))

    result = cli("scan", "--history", repo, "--baseline", out)

    assert result.code == 2, result.out
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"keyscan: error: {out}: entry 1: "), result.err
    assert f"\\n' is not a {field.replace('_', ' ')} (" in result.err
    assert "make it with `keyscan baseline" in result.err


@pytest.mark.parametrize(("key", "old", "new"), [
    # the first leak's entry: json kept the second fingerprint, its leak came back as new
    ("fingerprint", '"rule": ', '"fingerprint": "' + "0" * 20 + '", "rule": '),
    # a merge gone wrong: json kept the last list of findings, the other was dropped
    ("findings", '"findings": [', '"findings": [], "findings": ['),
    ("version", '"version": ', '"version": "0.0.1", "version": '),
], ids=["in-an-entry", "findings", "in-tool"])
def test_a_key_given_twice_in_a_baseline_is_one_clear_error(
        cli: Cli, repo: Path, old_repo: dict[str, str], key: str, old: str, new: str) -> None:
    """`json.loads` keeps the last of two equal keys in an object, without a word: a
    reviewer reading the first saw another baseline than the one applied."""
    out = make_baseline(cli, repo)
    text = out.read_text()
    assert old in text
    out.write_text(text.replace(old, new, 1))

    result = cli("scan", repo, "--baseline", out)

    assert result.code == 2, result.out
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(
        f"keyscan: error: {out}: key {key!r} is given twice in one object, and JSON readers "
        "keep only the last: remove the one you do not mean, or make it with `keyscan "
        "baseline"), result.err


def test_a_baseline_of_files_with_odd_names_is_read_back(cli: Cli, repo: Path) -> None:
    """Whatever a file is named (spaces, accents, an escape character, bytes that are
    not UTF-8), the path keyscan writes for it passes the check on reading."""
    names = ["a file with spaces.ini", "caf\u00e9.ini", "esc\x1bape.ini", "tab\there.ini"]
    for name in names:
        (repo / name).write_text(f"KEY = '{fake_key_id()}'\n")
    (repo / os.fsdecode(b"latin-\xe9.ini")).write_text(f"KEY = '{fake_key_id()}'\n")
    commit_all(repo)
    out = make_baseline(cli, repo)
    assert len(json.loads(out.read_text())["findings"]) == len(names) + 1

    result = cli("scan", repo, "--baseline", out, "-f", "json")

    assert result.code == 0, result.err
    assert result.json["summary"]["baselined"] == len(names) + 1


def test_a_hand_edited_fingerprint_in_capitals_still_matches(
        cli: Cli, repo: Path, old_repo: dict[str, str]) -> None:
    """.keyscanignore takes them in any case; the baseline listed them as stale and
    reported the leaks as new."""
    out = make_baseline(cli, repo)
    doc = json.loads(out.read_text())
    for row in doc["findings"]:
        row["fingerprint"] = row["fingerprint"].upper()
    out.write_text(json.dumps(doc))
    result = cli("scan", repo, "--baseline", out, "-f", "json")
    assert result.code == 0, result.err
    assert result.json["baseline"]["stale"] == []


def test_a_baseline_from_a_newer_keyscan_says_so(cli: Cli, repo: Path,
                                                 old_repo: dict[str, str]) -> None:
    path = repo.parent / "baseline.json"
    path.write_text('{"keyscan_baseline": 2, "findings": []}')
    result = cli("scan", repo, "--baseline", path)
    assert result.code == 2
    assert "made by a newer keyscan" in result.err and "upgrade keyscan" in result.err


def test_a_baseline_saved_with_a_byte_order_mark_is_read(cli: Cli, repo: Path,
                                                         old_repo: dict[str, str]) -> None:
    out = make_baseline(cli, repo)
    out.write_bytes(b"\xef\xbb\xbf" + out.read_bytes())
    assert cli("scan", repo, "--baseline", out).code == 0
