"""Full-history scans on real repositories with keys planted at known commits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import fake_key_id, fake_secret
from hypothesis import given, settings
from hypothesis import strategies as st
from repos import clean_env, git

from keyscan import ancestry, attribute, cache

Cli = Callable[..., Any]


def commit(repo: Path, files: dict[str, str | None], message: str, author: str = "Alice",
           when: str = "") -> str:
    """Write (or delete, with None) files and commit them as `author`, dated `when` (an
    ISO date; now when empty); return the sha."""
    for name, text in files.items():
        path = repo / name
        if text is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        git(repo, "add", name)
    env = clean_env(GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL=f"{author.lower()}@example.com")
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    git(repo, "commit", "-q", "--allow-empty", "-m", message, env=env)
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def pair_text(key: str, secret: str) -> str:
    return f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"


def history(cli: Cli, repo: Path, *extra: str) -> tuple[int, list[dict[str, Any]], Any]:
    result = cli("scan", "--history", repo, "--format", "json", *extra)
    doc = result.json
    return result.code, doc["findings"], doc


def by_key(findings: list[dict[str, Any]], key: str) -> dict[str, Any]:
    matches = [f for f in findings if f["key_id"] == key]
    assert len(matches) == 1, f"expected one finding for the key, got {len(matches)}"
    return matches[0]


def log_passes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The revisions each attribution `git log` pass is given, recorded as they run."""
    passes: list[list[str]] = []
    real_log = attribute._log_find_objects

    def counted(git_dir: Path, blobs: list[str], spec: list[str], merges: str) -> bytes:
        passes.append(spec)
        return real_log(git_dir, blobs, spec, merges)

    monkeypatch.setattr(attribute, "_log_find_objects", counted)
    return passes


@pytest.fixture
def planted(repo: Path) -> dict[str, Any]:
    """A repository whose history holds keys in all the places a leak hides."""
    keys = {name: fake_key_id() for name in
            ("deleted", "renamed", "side", "tagged", "message", "merge", "head")}
    secret = fake_secret()
    commit(repo, {"README.md": "project\n"}, "initial", "Alice")
    c_deleted = commit(repo, {"config/prod.ini": pair_text(keys["deleted"], secret)},
                       "add prod config", "Bob")
    commit(repo, {"config/prod.ini": None}, "remove prod config", "Alice")
    c_renamed = commit(repo, {"old.env": f"KEY={keys['renamed']}\n"}, "env file", "Carol")
    git(repo, "mv", "old.env", "new.env")
    commit(repo, {}, "rename env file", "Alice")
    commit(repo, {}, f"rotate: old key was {keys['message']}", "Dave")
    c_head = commit(repo, {"app/settings.py": f"KEY = '{keys['head']}'\n"}, "settings", "Eve")
    git(repo, "checkout", "-q", "-b", "feature")
    c_side = commit(repo, {"side.txt": f"id {keys['side']}\n"}, "side work", "Frank")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "release")
    c_tagged = commit(repo, {"tagged.txt": f"id {keys['tagged']}\n"}, "for the tag", "Grace")
    git(repo, "tag", "-a", "v1.0", "-m", "release v1.0")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-D", "release")
    git(repo, "checkout", "-q", "-b", "topic")
    commit(repo, {"topic.txt": "topic\n"}, "topic work", "Heidi")
    git(repo, "checkout", "-q", "main")
    # an evil merge: the key enters in the merge commit itself
    git(repo, "merge", "-q", "--no-ff", "--no-commit", "topic")
    (repo / "merged.txt").write_text(f"id {keys['merge']}\n")
    git(repo, "add", "merged.txt")
    git(repo, "commit", "-q", "-m", "merge topic",
        env=clean_env(GIT_AUTHOR_NAME="Ivan", GIT_AUTHOR_EMAIL="ivan@example.com"))
    c_merge = git(repo, "rev-parse", "HEAD").stdout.strip()
    return {"keys": keys, "secret": secret, "commits": {
        "deleted": c_deleted, "renamed": c_renamed, "side": c_side, "tagged": c_tagged,
        "merge": c_merge, "head": c_head}}


@pytest.mark.parametrize("packed", [False, True], ids=["loose-objects", "packed"])
@pytest.mark.parametrize("split", [False, True], ids=["one-log-pass", "two-log-passes"])
def test_every_hiding_place_is_found_and_attributed(cli: Cli, repo: Path,
                                                    planted: dict[str, Any], split: bool,
                                                    packed: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if packed:  # read by keyscan's own pack reader (sources/packs.py), not git cat-file
        git(repo, "repack", "-a", "-d", "-f", "-q")
        git(repo, "prune")
        assert not [p for p in (repo / ".git" / "objects").glob("??") if any(p.iterdir())]
    # long histories are attributed in two `git log` passes cut at HEAD's middle
    monkeypatch.setattr(attribute, "_SPLIT_COMMITS", 2 if split else 10**9)
    passes = log_passes(monkeypatch)
    code, findings, doc = history(cli, repo, "--no-cache")
    assert len(passes) == (2 if split else 1)
    if split:  # cut halfway down HEAD's first-parent line, merges and all
        line = git(repo, "rev-list", "--first-parent", "HEAD").stdout.split()
        assert passes[0][0] == line[len(line) // 2]
        assert f"^{line[len(line) // 2]}" in passes[1]
    keys, commits = planted["keys"], planted["commits"]
    assert code == 1
    deleted = by_key(findings, keys["deleted"])
    assert deleted["kind"] == "pair" and deleted["severity"] == "critical"
    assert deleted["path"] == "config/prod.ini" and deleted["line"] == 2
    assert deleted["commit"]["sha"] == commits["deleted"]
    assert deleted["commit"]["author_name"] == "Bob"
    assert deleted["commit"]["author_email"] == "bob@example.com"
    assert deleted["in_head"] is False
    assert "refs/heads/main" in deleted["refs"]

    renamed = by_key(findings, keys["renamed"])
    assert renamed["commit"]["sha"] == commits["renamed"]  # introduced, not the rename
    assert renamed["commit"]["author_name"] == "Carol"
    assert renamed["in_head"] is True
    assert {o["path"] for o in renamed["occurrences"]} == {"old.env", "new.env"}
    assert renamed["count"] == 2

    side = by_key(findings, keys["side"])
    assert side["refs"] == ["refs/heads/feature"] and side["in_head"] is False
    assert side["commit"]["author_name"] == "Frank"

    tagged = by_key(findings, keys["tagged"])
    assert tagged["refs"] == ["refs/tags/v1.0"]
    assert tagged["commit"]["sha"] == commits["tagged"]

    message = by_key(findings, keys["message"])
    assert message["source"] == "commit-message"
    assert message["commit"]["author_name"] == "Dave"

    merged = by_key(findings, keys["merge"])
    assert merged["commit"]["sha"] == commits["merge"]
    assert merged["commit"]["author_name"] == "Ivan"
    assert merged["in_head"] is True

    head = by_key(findings, keys["head"])
    assert head["in_head"] is True and head["path"] == "app/settings.py"
    assert doc["summary"]["leaks"] == len(keys)


def test_each_blob_is_read_once_and_one_secret_is_one_finding(cli: Cli, repo: Path) -> None:
    key, secret = fake_key_id(), fake_secret()
    text = pair_text(key, secret)
    for i in range(3):  # the same content at three paths in three commits: one blob
        commit(repo, {f"copy{i}.ini": text}, f"copy {i}")
    _, findings, doc = history(cli, repo, "--no-cache")
    assert len(findings) == 1
    assert findings[0]["count"] == 3
    blobs = git(repo, "rev-list", "--objects", "--all").stdout.split("\n")
    commits_and_blobs = len(blobs) - 1 - 3  # minus the trailing newline and 3 trees
    assert doc["summary"]["files"] == commits_and_blobs


def test_annotated_tag_message_is_scanned(cli: Cli, repo: Path) -> None:
    commit(repo, {"a.txt": "a\n"}, "a")
    key = fake_key_id()
    git(repo, "tag", "-a", "v2", "-m", f"release notes mention {key}")
    _, findings, _ = history(cli, repo, "--no-cache")
    assert by_key(findings, key)["source"] == "tag-message"


@pytest.mark.parametrize("reader", ["files", "git"])
@pytest.mark.parametrize("walk", ["--check-missing", "--no-check-missing"])
def test_a_key_in_a_tag_message_is_on_the_refs_naming_the_tag(
        cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch, reader: str, walk: str) -> None:
    """A key in an annotated tag's message is reached by the refs naming that tag, a tag
    of the tag included (not by other tags of the same commit), and the finding says who
    tagged it and when: the same from a fresh scan and from re-scans."""
    if reader == "git":
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    key = fake_key_id()
    head = commit(repo, {"a.txt": "a\n"}, "a")
    env = clean_env(GIT_COMMITTER_NAME="Mallory", GIT_COMMITTER_EMAIL="mallory@example.com",
                    GIT_COMMITTER_DATE="2024-05-06T07:08:09+02:00")
    git(repo, "tag", "-a", "v1", "-m", f"release notes mention {key}", env=env)
    git(repo, "tag", "-a", "reviewed", "-m", "v1, reviewed", "v1", env=env)
    git(repo, "tag", "-a", "other", "-m", "the same commit", head, env=env)
    tag = git(repo, "rev-parse", "v1").stdout.strip()

    _, fresh, _ = history(cli, repo, "--no-cache", walk)
    found = by_key(fresh, key)
    assert found["source"] == "tag-message"
    assert found["refs"] == ["refs/tags/reviewed", "refs/tags/v1"]
    tagger = found["commit"]
    assert (tagger["sha"], tagger["author_name"], tagger["author_email"]) == (
        tag, "Mallory", "mallory@example.com")
    assert found["first_seen"] == found["last_seen"] == "2024-05-06T07:08:09+02:00"
    assert key not in tagger["message"]
    text = cli("scan", "--history", repo, "--no-cache", walk).out
    assert f"tag      {tag[:12]} by Mallory <mallory@example.com>" in text
    assert "on tags/reviewed, tags/v1\n" in text

    history(cli, repo, walk)  # the cache is made
    commit(repo, {"b.txt": "b\n"}, "b")
    git(repo, "tag", "-a", "approved", "-m", "a new tag of the tag", "reviewed", env=env)
    _, cached, doc = history(cli, repo, walk)
    assert doc["summary"]["files"] == 3  # the new commit, its blob and the new tag
    assert by_key(cached, key)["refs"] == ["refs/tags/approved", "refs/tags/reviewed",
                                           "refs/tags/v1"]
    assert cached == history(cli, repo, "--no-cache", walk)[1]


def test_range_scans_only_what_the_commits_added(cli: Cli, repo: Path) -> None:
    old_key, new_key = fake_key_id(), fake_key_id()
    base = commit(repo, {"old.txt": f"id {old_key}\n"}, "old leak")
    commit(repo, {"new.txt": f"id {new_key}\n", "clean.txt": "x\n"}, "new leak")
    _, findings, doc = history(cli, repo, "--range", f"{base}..HEAD")
    assert [f["key_id"] for f in findings] == [new_key]
    assert doc["summary"]["files"] == 3  # one commit, two new blobs: not the old blob
    _, since, _ = history(cli, repo, "--since-commit", base)
    assert [f["key_id"] for f in since] == [new_key]


def test_a_range_reports_a_known_key_copied_to_a_new_path(cli: Cli, repo: Path,
                                                         tmp_path: Path) -> None:
    """A pull request copying a key from an allowed fixture, or from a baselined file,
    adds no new object; it still puts the key at a new path, and its range scan says
    so: at that path, as the working-tree scan does (the base's places are not the
    range's, so neither the allowed path nor the baseline entry hides it)."""
    fixture, known = pair_text(fake_key_id(), fake_secret()), f"id {fake_key_id()}\n"
    (repo / ".keyscan.yaml").write_text("allow_paths: ['tests/fixtures/*']\n")
    commit(repo, {"tests/fixtures/creds.ini": fixture, "old.ini": known}, "base")
    baseline = tmp_path / "baseline.json"
    assert cli("baseline", "--history", repo, "-o", baseline).code == 0
    base = git(repo, "rev-parse", "HEAD").stdout.strip()
    commit(repo, {"src/prod.ini": fixture, "deploy/copy.ini": known}, "copy")
    code, findings, _ = history(cli, repo, "--range", f"{base}..HEAD",
                                "--baseline", str(baseline))
    assert code == 1
    assert sorted(f["path"] for f in findings) == ["deploy/copy.ini", "src/prod.ini"]
    assert all(f["occurrences"][0]["commit"] != base for f in findings)


def test_a_range_counts_what_its_merges_made_not_what_they_brought(cli: Cli, repo: Path
                                                                   ) -> None:
    """A pull request that merges main in: a key main got meanwhile is main's, not the
    pull request's; a key written while resolving the merge's conflict is its own."""
    from_main, in_resolution = fake_key_id(), fake_key_id()
    commit(repo, {"app.cfg": "mode = a\n"}, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    commit(repo, {"app.cfg": "mode = pr\n"}, "pr work")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"app.cfg": "mode = main\n", "main.ini": f"id {from_main}\n"}, "main work")
    git(repo, "checkout", "-q", "pr")
    git(repo, "merge", "-q", "main", check=False)  # conflicts on app.cfg
    (repo / "app.cfg").write_text(f"mode = both\nid {in_resolution}\n")
    git(repo, "add", "app.cfg")
    git(repo, "commit", "-q", "--no-edit")
    merge = git(repo, "rev-parse", "HEAD").stdout.strip()
    _, findings, _ = history(cli, repo, "--range", "main..pr")
    assert [(f["key_id"], f["path"], f["commit"]["sha"]) for f in findings] == \
        [(in_resolution, "app.cfg", merge)]


def test_a_committed_file_starting_with_a_byte_order_mark_is_scanned(cli: Cli,
                                                                     repo: Path) -> None:
    key, secret = fake_key_id(), fake_secret()
    (repo / "x.txt").write_bytes(b"\xfe\xff" + pair_text(key, secret).encode())
    git(repo, "add", "x.txt")
    commit(repo, {}, "notes")
    code, findings, _ = history(cli, repo)
    assert code == 1
    f = by_key(findings, key)
    assert (f["kind"], f["path"], f["line"]) == ("pair", "x.txt", 2)


def test_a_range_of_one_revision_means_up_to_head(cli: Cli, repo: Path) -> None:
    old_key, new_key = fake_key_id(), fake_key_id()
    base = commit(repo, {"old.txt": f"id {old_key}\n"}, "old leak")
    commit(repo, {"new.txt": f"id {new_key}\n"}, "new leak")
    _, findings, _ = history(cli, repo, "--range", base)
    assert [f["key_id"] for f in findings] == [new_key]


def test_a_three_dot_range_takes_both_sides_since_they_forked(cli: Cli, repo: Path) -> None:
    before, on_main, on_feature = fake_key_id(), fake_key_id(), fake_key_id()
    commit(repo, {"base.txt": f"id {before}\n"}, "before the fork")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"feature.txt": f"id {on_feature}\n"}, "feature work")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"main.txt": f"id {on_main}\n"}, "main work")
    code, findings, _ = history(cli, repo, "--range", "main...feature")
    assert code == 1
    assert sorted(f["key_id"] for f in findings) == sorted([on_main, on_feature])
    _, findings, _ = history(cli, repo, "--range", "main..feature")  # as git log: one side
    assert [f["key_id"] for f in findings] == [on_feature]


@pytest.mark.parametrize("option", ["--unreachable", "--reflog", "--check-missing",
                                    "--no-check-missing"])
def test_a_whole_history_option_implies_history(cli: Cli, repo: Path, option: str) -> None:
    key = fake_key_id()
    commit(repo, {"old.txt": f"id {key}\n"}, "leak")
    commit(repo, {"old.txt": None}, "removed: only the history holds it")
    result = cli("scan", repo, option, "--format", "json", "--no-cache")
    assert result.code == 1, result.err
    assert result.json["mode"] == "history"
    assert [f["key_id"] for f in result.json["findings"]] == [key]


@pytest.mark.parametrize("options", [
    ["--staged", "--range", "HEAD~1..HEAD"], ["--staged", "--since-commit", "HEAD~1"],
    ["--staged", "--unreachable"], ["--staged", "--reflog"], ["--staged", "--no-check-missing"],
    ["--range", "HEAD~1..HEAD", "--since-commit", "HEAD~1"],
    ["--range", "HEAD~1..HEAD", "--reflog"], ["--since-commit", "HEAD~1", "--unreachable"],
    ["--range", "HEAD~1..HEAD", "--check-missing"],
], ids=" ".join)
@pytest.mark.parametrize("command", ["scan", "baseline"])
def test_options_that_would_ignore_each_other_are_a_usage_error(
        cli: Cli, repo: Path, capsys: pytest.CaptureFixture[str], command: str,
        options: list[str]) -> None:
    commit(repo, {"a.txt": "a\n"}, "a")
    commit(repo, {"b.txt": "b\n"}, "b")
    with pytest.raises(SystemExit) as exc:
        cli(command, repo, *options, "--output", repo / "out.json")
    assert exc.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("keyscan: error: ") and "drop one" in error
    assert all(o in error for o in options if o.startswith("--"))
    assert not (repo / "out.json").exists()


def test_a_range_in_a_repository_without_commits_fails(cli: Cli, repo: Path) -> None:
    """A CI step in the wrong (or an empty) checkout said "no commits yet" and passed."""
    for args in (["--range", "main~1..main"], ["--since-commit", "deadbeef"]):
        result = cli("scan", *args, repo)
        assert result.code == 2 and "no commits yet" in result.err, args


def test_range_with_unknown_revision_is_a_clear_error(cli: Cli, repo: Path) -> None:
    commit(repo, {"a.txt": "a\n"}, "a")
    result = cli("scan", "--history", repo, "--range", "nosuchrev..HEAD")
    assert result.code == 2
    assert "nosuchrev" in result.err and "not found" in result.err
    # a revision spelled like an option is a revision to git, never an option
    result = cli("scan", "--history", repo, "--range=--output=x..HEAD")
    assert result.code == 2 and "not found" in result.err
    assert not (repo / "x").exists()


def test_incremental_cache_rescans_only_new_objects(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    for i in range(5):
        commit(repo, {f"f{i}.txt": f"content {i}\n"}, f"c{i}")
    commit(repo, {"leak.txt": f"id {key}\n"}, "leak")
    _, first, doc1 = history(cli, repo)
    assert (repo / ".git" / "keyscan" / cache.STATE).exists()
    commit(repo, {"later.txt": "later\n"}, "later")
    _, second, doc2 = history(cli, repo)
    # the new commit and its blob; the finding comes from the cache, not read again
    assert doc2["summary"]["files"] == 2 < doc1["summary"]["files"]
    assert [f["key_id"] for f in second] == [f["key_id"] for f in first] == [key]
    assert second[0]["commit"] == first[0]["commit"]
    # and the summary says so, rather than seem to have scanned almost nothing
    assert (doc1["summary"]["incremental"], doc2["summary"]["incremental"]) == (False, True)
    said = cli("scan", "--history", repo).err
    assert "0 new objects read (the others from the cache)" in said


def test_incremental_scan_takes_findings_from_the_cache_with_secrets_sealed(
        cli: Cli, repo: Path) -> None:
    """A re-scan does not read the objects holding findings again: the cache keeps what
    the report needs, the secret only as the report shows it (and its digest)."""
    example = "AKIA" + "IOSFODNN7" + "EXAMPLE"  # the key of AWS's documentation
    key, secret = fake_key_id(), fake_secret()
    commit(repo, {"docs.md": f"aws_access_key_id = {example}\n"}, "docs")
    leak = commit(repo, {"leak.ini": pair_text(key, secret)}, "leak")
    commit(repo, {"notes.txt": f"rotated: aws_secret_access_key = {fake_secret()}\n"},
           f"rotate {fake_key_id()}")
    _, first, _ = history(cli, repo)
    commit(repo, {"later.txt": "later\n"}, "later")
    _, second, doc = history(cli, repo)
    # the same report, fingerprints, redacted secrets and attribution included
    assert second == first
    assert {f["status"] for f in second} == {"example", "leak"}
    assert by_key(second, key)["commit"]["sha"] == leak
    assert by_key(second, key)["secret"].startswith(secret[:4])
    # read: the new commit and its blob only
    assert doc["summary"]["files"] == 2
    assert second == history(cli, repo, "--no-cache")[1]
    state_file = repo / ".git" / "keyscan" / cache.STATE
    state: Any = cache.read_state(state_file)
    leak_blob = git(repo, "rev-parse", "HEAD:leak.ini").stdout.strip()
    docs_blob = git(repo, "rev-parse", "HEAD:docs.md").stdout.strip()
    assert set(state["findings"]) == {docs_blob, leak_blob,
                                      git(repo, "rev-parse", "HEAD:notes.txt").stdout.strip()}
    assert len(state["messages"]) == 1
    [pair] = state["findings"][leak_blob]
    parts = {row[0]: row[2] for row in pair}
    assert parts["key_id"] == key  # an identifier, as every report shows it
    prefix, length, digest = parts["secret"]
    assert (prefix, length) == (secret[:4], 40) and len(digest) == 64
    assert secret.encode() not in state_file.read_bytes()


def test_secrets_shown_in_full_are_read_again_not_taken_from_the_cache(cli: Cli, repo: Path
                                                                      ) -> None:
    key, secret = fake_key_id(), fake_secret()
    commit(repo, {"leak.ini": pair_text(key, secret)}, "leak")
    history(cli, repo)
    commit(repo, {"later.txt": "later\n"}, "later")
    _, found, doc = history(cli, repo, "--show-secrets")
    assert by_key(found, key)["secret"] == secret
    assert doc["summary"]["files"] == 3  # the leak's blob too
    _, found, doc = history(cli, repo)
    assert by_key(found, key)["secret"] != secret and doc["summary"]["files"] == 0


def test_a_cached_finding_whose_object_is_gone_is_reported_missing(cli: Cli, repo: Path
                                                                   ) -> None:
    """The cache does not vouch for objects no longer in the store."""
    key = fake_key_id()
    commit(repo, {"leak.txt": f"id {key}\n"}, "leak")
    history(cli, repo)
    blob = git(repo, "rev-parse", "HEAD:leak.txt").stdout.strip()
    commit(repo, {"later.txt": "later\n"}, "later")
    obj = repo / ".git" / "objects" / blob[:2] / blob[2:]
    obj.chmod(0o644)
    obj.unlink()
    result = cli("scan", "--history", repo, "--format", "json", "--verbose")
    assert f"object {blob}" in {s["path"] for s in result.json["skipped"]}
    assert key not in {f["key_id"] for f in result.json["findings"]}


def test_rules_change_invalidates_the_cache(cli: Cli, repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a.txt": "a\n"}, "a")
    _, _, doc1 = history(cli, repo)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "extra.yaml").write_text(
        "rules:\n  - id: internal-token\n    description: internal token\n"
        "    regex: 'itok_(?P<value>[a-z0-9]{24})'\n    keywords: [itok_]\n")
    result = cli("scan", "--history", repo, "--rules", rules, "--format", "json")
    assert "rules changed" in result.err
    assert result.json["summary"]["files"] == doc1["summary"]["files"]


def test_damaged_cache_is_rebuilt_with_a_warning(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"leak.txt": f"id {key}\n"}, "leak")
    history(cli, repo)
    (repo / ".git" / "keyscan" / cache.STATE).write_text("{not json")
    result = cli("scan", "--history", repo, "--format", "json")
    assert "damaged" in result.err and "rebuilding" in result.err
    assert [f["key_id"] for f in result.json["findings"]] == [key]
    _, again, _ = history(cli, repo)
    assert [f["key_id"] for f in again] == [key]


def test_a_cache_flipped_by_one_bit_is_rebuilt_not_trusted(cli: Cli, repo: Path) -> None:
    """The state is marshal data behind a checksum: a damaged byte anywhere is caught
    before marshal reads it."""
    key = fake_key_id()
    commit(repo, {"leak.txt": f"id {key}\n"}, "leak")
    _, _, first = history(cli, repo)
    state_file = repo / ".git" / "keyscan" / cache.STATE
    data = bytearray(state_file.read_bytes())
    data[len(data) // 2] ^= 0x10
    state_file.write_bytes(bytes(data))
    result = cli("scan", "--history", repo, "--format", "json")
    assert "damaged" in result.err
    assert result.json["summary"]["files"] == first["summary"]["files"]  # read again
    assert [f["key_id"] for f in result.json["findings"]] == [key]


def test_a_cache_this_users_keyscan_did_not_write_is_not_trusted(
        cli: Cli, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `.git` folder copied from elsewhere (a snapshot to audit) may carry a cache
    listing every object as scanned, which would hide its leaks: the state carries a MAC
    under this user's key, so a state made under another key is rebuilt, not read."""
    key = fake_key_id()
    commit(repo, {"leak.txt": f"id {key}\n"}, "leak")
    _, _, first = history(cli, repo)
    state_file = repo / ".git" / "keyscan" / cache.STATE
    forged: Any = cache.read_state(state_file)
    forged["findings"] = {}  # "nothing here", under somebody else's key
    cache.write_state(state_file, forged, b"k" * 32)
    commit(repo, {"later.txt": "later\n"}, "later")
    result = cli("scan", "--history", repo, "--format", "json")
    assert "not written by this user's keyscan" in result.err
    assert result.json["summary"]["files"] > first["summary"]["files"]  # all read again
    assert [f["key_id"] for f in result.json["findings"]] == [key]
    key_file = cache.user_cache_folder() / "cache.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    # a damaged key is replaced: the cache is rebuilt under the new one, then used
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    history(cli, repo)
    (tmp_path / "cache-home" / "keyscan" / "cache.key").write_bytes(b"short")
    result = cli("scan", "--history", repo, "--format", "json")
    assert "not written by this user's keyscan" in result.err
    assert len((tmp_path / "cache-home" / "keyscan" / "cache.key").read_bytes()) == 32
    commit(repo, {"again.txt": "again\n"}, "again")
    _, found, doc = history(cli, repo)
    assert doc["summary"]["files"] == 2 and [f["key_id"] for f in found] == [key]
    # no folder to keep the key in: every scan reads everything, and says why
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    for _ in range(2):
        result = cli("scan", "--history", repo, "--format", "json")
        assert "no key to vouch for the scan cache" in result.err
        assert result.json["summary"]["files"] > 2
        assert [f["key_id"] for f in result.json["findings"]] == [key]


def test_runs_started_at_once_agree_on_the_users_cache_key(tmp_path: Path) -> None:
    """Eight processes making the key at the same moment (a fleet's workers on one
    machine) all get the one key that ends up in the file: none writes a cache that
    the others would reject."""
    import time

    code = ("import sys, time; from keyscan import cache; "
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
            "print(cache.cache_key().hex())")
    start = str(time.time() + 1.0)
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "home"))
    procs = [subprocess.Popen([sys.executable, "-c", code, start], env=env, text=True,
                              stdout=subprocess.PIPE) for _ in range(8)]
    keys = {proc.communicate()[0].strip() for proc in procs}
    assert len(keys) == 1
    assert (tmp_path / "home" / "keyscan" / "cache.key").read_bytes().hex() in keys
    left = sorted(p.name for p in (tmp_path / "home" / "keyscan").iterdir())
    assert left == ["cache.key"]  # no temporary file left behind


def test_an_older_keyscans_cache_is_replaced(cli: Cli, repo: Path) -> None:
    commit(repo, {"a.txt": "a\n"}, "a")
    _, _, first = history(cli, repo)
    folder = repo / ".git" / "keyscan"
    (folder / cache.STATE).unlink()
    (folder / "state.json").write_text(json.dumps({"version": 5}))
    result = cli("scan", "--history", repo, "--format", "json")
    assert "older keyscan" in result.err
    assert result.json["summary"]["files"] == first["summary"]["files"]
    assert not (folder / "state.json").exists() and (folder / cache.STATE).exists()
    commit(repo, {"b.txt": "b\n"}, "b")
    _, _, again = history(cli, repo)
    assert again["summary"]["files"] == 2
    # a state of the previous version, which this user's keyscan wrote: rebuilt too
    state = cache.read_state(folder / cache.STATE)
    key = cache.cache_key()
    assert key is not None
    cache.write_state(folder / cache.STATE, {**state, "version": cache.VERSION - 1}, key)
    result = cli("scan", "--history", repo, "--format", "json")
    assert "older keyscan" in result.err and "damaged" not in result.err
    fresh = history(cli, repo, "--no-cache")[2]
    assert result.json["summary"]["files"] == fresh["summary"]["files"]
    assert cache.read_state(folder / cache.STATE)["version"] == cache.VERSION


@pytest.mark.parametrize("damage", ["unknown rule", "short row", "bad status"])
def test_cached_findings_that_do_not_read_back_rebuild_the_cache(cli: Cli, repo: Path,
                                                                 damage: str) -> None:
    key = fake_key_id()
    commit(repo, {"leak.txt": f"id {key}\n"}, "leak")
    history(cli, repo)
    state_file = repo / ".git" / "keyscan" / cache.STATE
    state: Any = cache.read_state(state_file)
    cred = next(iter(state["findings"].values()))[0]
    row = list(cred[0])
    cred[0] = row  # written as the cache keeps rows, then damaged
    if damage == "unknown rule":
        row[1] = "no-such-rule"
    elif damage == "short row":
        del row[3:]
    else:
        row[5] = "maybe"
    user_key = cache.cache_key()
    assert user_key is not None
    cache.write_state(state_file, state, user_key)  # as this user's keyscan would
    commit(repo, {"later.txt": "later\n"}, "later")
    result = cli("scan", "--history", repo, "--format", "json")
    assert "damaged" in result.err
    assert [f["key_id"] for f in result.json["findings"]] == [key]
    assert result.json["summary"]["files"] > 2  # the whole history again
    _, again, _ = history(cli, repo)
    assert [f["key_id"] for f in again] == [key]


def test_a_cache_folder_that_cannot_be_made_leaves_the_scan_whole(cli: Cli, repo: Path
                                                                  ) -> None:
    """A read-only repository (a mounted snapshot, another user's folder): the cache
    cannot be kept, so the scan reads everything and says why, instead of failing.
    (Made here by a file where the cache folder would go: root ignores file modes.)"""
    key = fake_key_id()
    commit(repo, {"k.ini": f"id {key}\n"}, "key")
    (repo / ".git" / "keyscan").write_text("not a folder\n")
    for _ in range(2):
        result = cli("scan", "--history", repo, "--format", "json")
        assert result.code == 1, result.err
        assert [f["key_id"] for f in result.json["findings"]] == [key]
        assert "scan cache cannot be kept" in result.err and "internal error" not in result.err


def test_cache_never_holds_a_secret(cli: Cli, repo: Path) -> None:
    key, secret = fake_key_id(), fake_secret()
    commit(repo, {"c.ini": pair_text(key, secret)}, "leak")
    history(cli, repo)
    for path in (repo / ".git" / "keyscan").iterdir():
        data = path.read_bytes()
        # the key ID, an identifier every report shows, is kept once: as the finding's
        assert secret.encode() not in data and data.count(key.encode()) <= 1
        if path.name != "lock":
            assert path.stat().st_mode & 0o077 == 0


def test_concurrent_runs_leave_a_consistent_cache(repo: Path) -> None:
    from repos import run_keyscan

    for i in range(20):
        commit(repo, {f"f{i}.txt": f"{i}\n" * 100}, f"c{i}")
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "keyscan"), "scan",
                               "--history", str(repo), "-f", "json"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=clean_env()) for _ in range(4)]
    for p in procs:
        p.wait()
        assert p.returncode == 0
    again = run_keyscan(["scan", "--history", repo])
    assert again.returncode == 0 and "damaged" not in again.stderr


def test_missing_blob_is_reported_and_the_scan_goes_on(cli: Cli, repo: Path) -> None:
    kept, lost = fake_key_id(), fake_key_id()
    commit(repo, {"kept.txt": f"id {kept}\n"}, "kept")
    commit(repo, {"lost.txt": f"id {lost}\n"}, "lost")
    blob = git(repo, "rev-parse", "HEAD:lost.txt").stdout.strip()
    obj = repo / ".git" / "objects" / blob[:2] / blob[2:]
    obj.chmod(0o644)
    obj.unlink()
    result = cli("scan", "--history", repo, "--format", "json", "--no-cache")
    doc = result.json
    assert [f["key_id"] for f in doc["findings"]] == [kept]
    assert any(blob in s["path"] and "missing" in s["reason"] for s in doc["skipped"])


def test_corrupt_object_is_reported_and_the_scan_goes_on(cli: Cli, repo: Path) -> None:
    kept = fake_key_id()
    commit(repo, {"kept.txt": f"id {kept}\n"}, "kept")
    commit(repo, {"bad.txt": "soon corrupt\n"}, "bad")
    blob = git(repo, "rev-parse", "HEAD:bad.txt").stdout.strip()
    obj = repo / ".git" / "objects" / blob[:2] / blob[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"this is not zlib data")
    result = cli("scan", "--history", repo, "--format", "json", "--no-cache")
    doc = result.json
    assert [f["key_id"] for f in doc["findings"]] == [kept]
    assert any(blob in s["path"] for s in doc["skipped"])


def test_shallow_clone_is_scanned_and_said_to_be_shallow(cli: Cli, repo: Path,
                                                         tmp_path: Path) -> None:
    old, new = fake_key_id(), fake_key_id()
    commit(repo, {"old.txt": f"id {old}\n"}, "old")
    commit(repo, {"old.txt": None, "new.txt": f"id {new}\n"}, "new")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)],
                   check=True, env=clean_env())
    result = cli("scan", "--history", clone, "--format", "json")
    assert [f["key_id"] for f in result.json["findings"]] == [new]
    assert "shallow" in result.err
    # a pull-request step on a depth-1 checkout: the base is not there; say why
    ranged = cli("scan", "--since-commit", "HEAD~1", clone)
    assert ranged.code == 2
    assert "shallow clone" in ranged.err and "fetch-depth: 0" in ranged.err


@pytest.mark.parametrize("read_files", [True, False], ids=["from-files", "through-git"])
@pytest.mark.parametrize("how", ["reset", "amend", "unstaged"])
def test_a_key_left_unreachable_since_the_last_scan_is_seen_by_the_rescan(
        cli: Cli, repo: Path, how: str, read_files: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A key committed then reset or amended away, or staged then unstaged, between two
    scans is in no ref's history: a re-scan still reads it (the loose objects written
    since the last scan), and says what a fresh scan says (the unreachable note; listed
    with --unreachable)."""
    if not read_files:
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    key = fake_key_id()
    commit(repo, {"a.txt": "a\n"}, "a")
    history(cli, repo)
    (repo / "k.ini").write_text(f"id {key}\n")
    git(repo, "add", "k.ini")
    if how == "unstaged":
        git(repo, "reset", "-q", "k.ini")
    else:
        git(repo, "commit", "-q", "-m", "key", env=clean_env())
        if how == "reset":
            git(repo, "reset", "-q", "--hard", "HEAD~1")
        else:
            git(repo, "rm", "-q", "k.ini")
            git(repo, "commit", "-q", "--amend", "--allow-empty", "-m", "no key",
                env=clean_env())
        git(repo, "reflog", "expire", "--expire=now", "--all")
    commit(repo, {"b.txt": "b\n"}, "b")
    for extra in ([], ["--unreachable"]):
        code, found, doc = history(cli, repo, *extra)
        fresh_code, fresh, fresh_doc = history(cli, repo, "--no-cache", *extra)
        assert (code, found, doc["notes"]) == (fresh_code, fresh, fresh_doc["notes"]), extra
        assert [f["key_id"] for f in found] == ([key] if extra else [])


@pytest.mark.parametrize("read_files", [True, False], ids=["from-files", "through-git"])
def test_a_key_fetched_in_a_pack_no_ref_keeps_is_seen_by_the_rescan(
        cli: Cli, repo: Path, tmp_path: Path, read_files: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`git fetch URL branch` keeps what it fetched in a pack that only FETCH_HEAD names:
    a fresh scan reads every stored object, a re-scan read only new refs' history and
    loose objects, so it missed the key, for good (QA)."""
    if not read_files:
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    key = fake_key_id()
    commit(repo, {"a.txt": "a\n"}, "a")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", f"file://{repo}", str(clone))
    history(cli, clone)
    git(repo, "checkout", "-q", "-b", "side")
    commit(repo, {"k.ini": pair_text(key, fake_secret())}, "key on a side branch")
    git(clone, "-c", "transfer.unpackLimit=1", "fetch", "-q", f"file://{repo}", "side")
    assert not list((clone / ".git" / "objects").glob("??/*"))  # all of it in a pack
    for extra in ([], ["--unreachable"]):
        code, found, doc = history(cli, clone, *extra)
        fresh_code, fresh, fresh_doc = history(cli, clone, "--no-cache", *extra)
        assert (code, found, doc["notes"]) == (fresh_code, fresh, fresh_doc["notes"]), extra
        assert [f["key_id"] for f in found] == ([key] if extra else [])


def test_a_rescan_after_git_gc_does_not_read_the_trees_of_the_new_pack(
        cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `git gc` one new pack holds everything, trees included, which a cache made
    through git does not list: git tells their kinds in one call and none is read (one
    read each took a minute on a 34k-commit history)."""
    from keyscan.sources.store import Store

    key = fake_key_id()
    for n in range(12):
        commit(repo, {f"d{n}/f.txt": f"{n}\n", **({"k.ini": f"id {key}\n"} if n == 5 else {})},
               f"c{n}")
    git(repo, "repack", "-a", "-d", "-q")  # a cloned repository
    monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")  # read through git: no tree is listed
    _, before, _ = history(cli, repo)
    monkeypatch.delenv("KEYSCAN_READ_PACKS")
    stored = set(git(repo, "cat-file", "--batch-all-objects",
                     "--batch-check=%(objectname)").stdout.split())
    # the new commit's parent and its root tree are read to tell what the commit changed
    parent = {git(repo, "rev-parse", rev).stdout.strip() for rev in ("HEAD", "HEAD^{tree}")}
    commit(repo, {"late.txt": "late\n"}, "late")
    git(repo, "gc", "-q", "--prune=now")
    reads: list[str] = []
    real = Store.read_at_most

    def counted(self: Store, sha: str, max_size: int | None) -> Any:
        reads.append(sha)
        return real(self, sha, max_size)

    monkeypatch.setattr(Store, "read_at_most", counted)
    _, after, _ = history(cli, repo)
    assert after == before == history(cli, repo, "--no-cache")[1]  # one key, as it was
    assert set(reads) & stored <= parent, len(reads)


@pytest.mark.parametrize("rewrite", ["amend", "rebase"])
def test_rescans_after_an_amend_or_rebase_name_the_new_commit(cli: Cli, repo: Path,
                                                              rewrite: str) -> None:
    """An amend or a rebase replaces the commit that put a key somewhere by another one
    putting it at the same place: every later re-scan names the new commit and its ref,
    as a fresh scan does, not the one rewritten away."""
    key = fake_key_id()
    commit(repo, {"a.txt": "a\n"}, "a")
    if rewrite == "rebase":
        git(repo, "checkout", "-q", "-b", "topic")
    commit(repo, {"k.ini": f"id {key}\n"}, "key")
    history(cli, repo)
    if rewrite == "amend":
        git(repo, "commit", "-q", "--amend", "-m", "key, reworded", env=clean_env())
    else:
        git(repo, "checkout", "-q", "main")
        commit(repo, {"b.txt": "b\n"}, "b")
        git(repo, "checkout", "-q", "topic")
        git(repo, "rebase", "-q", "main", env=clean_env())
    now = git(repo, "rev-parse", "HEAD").stdout.strip()
    for run in range(3):
        _, found, _ = history(cli, repo)
        [finding] = found
        assert finding["commit"]["sha"] == now and finding["refs"], run
        assert found == history(cli, repo, "--no-cache")[1], run


@pytest.mark.parametrize("fetch", [["--unshallow"], ["--deepen=1"]], ids=["unshallow", "deepen"])
def test_history_fetched_into_a_shallow_clone_is_scanned(cli: Cli, repo: Path, tmp_path: Path,
                                                         fetch: list[str]) -> None:
    """The history a shallow clone gains later (as the note advises) lies below what the
    cache holds, with no ref moved: the next scan reads the whole history again."""
    old = fake_key_id()
    commit(repo, {"old.txt": f"id {old}\n"}, "old")
    commit(repo, {"old.txt": None, "new.txt": "nothing\n"}, "new")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)],
                   check=True, env=clean_env())
    assert history(cli, clone)[1] == []
    git(clone, "fetch", "-q", *fetch)
    result = cli("scan", "--history", clone, "--format", "json")
    assert [f["key_id"] for f in result.json["findings"]] == [old]
    assert "deepened" in result.err and result.code == 1
    assert history(cli, clone)[:2] == history(cli, clone, "--no-cache")[:2]


def test_bare_repository(cli: Cli, repo: Path, tmp_path: Path) -> None:
    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True,
                   env=clean_env())
    _, findings, _ = history(cli, bare)
    assert findings[0]["key_id"] == key and findings[0]["in_head"] is True
    files = cli("scan", bare)  # no work tree: say what to run instead of git's words
    assert files.code == 2 and "bare repository" in files.err and "--history" in files.err
    assert "fatal" not in files.err


def _key_on_a_deleted_branch(repo: Path) -> str:
    """A key committed only on a branch since deleted (reflog expired): unreachable."""
    commit(repo, {"a.txt": "a\n"}, "a")
    git(repo, "checkout", "-q", "-b", "doomed")
    key = fake_key_id()
    commit(repo, {"d.txt": f"id {key}\n"}, "doomed work")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-D", "doomed")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    return key


def test_unreachable_objects_only_on_request(cli: Cli, repo: Path) -> None:
    key = _key_on_a_deleted_branch(repo)
    result = cli("scan", "--history", repo, "--format", "json", "--no-cache")
    assert result.json["findings"] == []
    assert "unreachable" in result.err
    _, found, _ = history(cli, repo, "--no-cache", "--unreachable")
    assert [f["key_id"] for f in found] == [key]
    # the commit no ref reaches names where the key was, and who put it there
    assert found[0]["path"] == "d.txt" and found[0]["commit"]["message"] == "doomed work"
    assert found[0]["refs"] == []
    cached = history(cli, repo, "--unreachable")[1]  # through the cache too
    assert cached == found
    # and a re-scan without --unreachable does not take those places for reachable
    assert history(cli, repo)[1] == []


def test_not_a_repository_and_empty_repository(cli: Cli, tmp_path: Path, repo: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = cli("scan", "--history", plain)
    assert result.code == 2 and "not a git repository" in result.err
    assert f"`keyscan scan {plain}` scans its files" in result.err
    empty = cli("scan", "--history", repo)
    assert empty.code == 0 and "no commits" in empty.err


def test_a_first_pushs_all_zero_base_says_what_to_scan_instead(cli: Cli, repo: Path) -> None:
    """CI hands a branch's first push the base 0000…0000: 'revision not found' alone left
    the user guessing."""
    commit(repo, {"a.txt": "a\n"}, "a")
    result = cli("scan", "--range", f"{'0' * 40}..HEAD", repo)
    assert result.code == 2 and "first push" in result.err and "--history" in result.err


def test_submodule_is_not_followed_and_said(cli: Cli, repo: Path, tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    git(sub, "init", "-q")
    commit(sub, {"s.txt": f"id {fake_key_id()}\n"}, "sub")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "sub")
    commit(repo, {}, "add submodule")
    result = cli("scan", "--history", repo, "--format", "json", "--no-cache")
    assert result.json["findings"] == []
    assert "submodules are not followed (sub)" in result.err
    # a bare mirror (what a fleet audit scans) has no work tree to look in: HEAD tells
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(repo), str(mirror))
    result = cli("scan", "--history", mirror, "--format", "json", "--no-cache")
    assert "submodules are not followed" in result.err
    assert not [n for n in result.json["notes"] if "LFS" in n or "shallow" in n]


def _tree_holding(repo: Path, name: str, text: str) -> str:
    """A tree no commit has: one file `name` holding `text`."""
    def fed(*args: str, data: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], input=data, text=True,
                              capture_output=True, check=True, env=clean_env()).stdout.strip()
    blob = fed("hash-object", "-w", "--stdin", data=text)
    return fed("mktree", data=f"100644 blob {blob}\t{name}\n")


@pytest.mark.parametrize("walk", ["--check-missing", "--no-check-missing"])
def test_refs_that_are_not_branches_or_plain_tags(cli: Cli, repo: Path, walk: str) -> None:
    """A tag of a tag, and refs naming a tree or a blob (Linux has a tag naming a tree):
    each is listed among the refs that reach a finding, and what only they hold is found,
    with or without the walk of all refs (large repositories go without)."""
    committed, tree_only = fake_key_id(), fake_key_id()
    sha = commit(repo, {"app.ini": f"id = {committed}\n"}, "add app.ini")
    env = clean_env(GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com")
    git(repo, "tag", "-a", "-m", "inner", "inner", sha, env=env)
    git(repo, "tag", "-a", "-m", "outer", "outer", "inner", env=env)
    blob = git(repo, "rev-parse", f"{sha}:app.ini").stdout.strip()
    git(repo, "update-ref", "refs/pinned/blob", blob)
    tree = _tree_holding(repo, "vault.env", f"id={tree_only}\n")
    git(repo, "update-ref", "refs/pinned/tree", tree)

    _, findings, _ = history(cli, repo, "--no-cache", walk)

    first = by_key(findings, committed)
    assert first["refs"] == ["refs/heads/main", "refs/pinned/blob", "refs/tags/inner",
                             "refs/tags/outer"]
    assert first["commit"]["sha"] == sha and first["path"] == "app.ini"
    only = by_key(findings, tree_only)
    assert only["path"] == "vault.env" and only["refs"] == ["refs/pinned/tree"]
    assert only["commit"] is None and only["in_head"] is False


def test_a_ref_naming_a_missing_object_is_reported_and_the_rest_attributed(
        cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    sha = commit(repo, {"app.ini": f"id = {key}\n"}, "add app.ini")
    git(repo, "branch", "side", sha)
    gone = "1234567890" * 4
    (repo / ".git" / "refs" / "heads" / "broken").write_text(gone + "\n")  # damaged repo

    for extra in ("--no-cache", "--check-missing"), ("--no-cache", "--no-check-missing"):
        _, findings, doc = history(cli, repo, *extra)
        assert by_key(findings, key)["refs"] == ["refs/heads/main", "refs/heads/side"]
        assert [s["path"] for s in doc["skipped"]] == ["ref refs/heads/broken"]
        assert gone in doc["skipped"][0]["reason"] and doc["errors"] == []


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("read_packs", ["1", "0"])
def test_git_replace_does_not_hide_a_committed_key(cli: Cli, repo: Path, packed: bool,
                                                   read_packs: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`git replace` makes git show another object in place of the real one; the real
    blob, with the key, is still in the repository (and in every clone of it)."""
    monkeypatch.setenv("KEYSCAN_READ_PACKS", read_packs)
    key = fake_key_id()
    sha = commit(repo, {"app.ini": f"id = {key}\n"}, "add app.ini")
    commit(repo, {"README": "docs\n"}, "docs")
    leaked = git(repo, "rev-parse", f"{sha}:app.ini").stdout.strip()
    clean = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
                           input="id = none\n", text=True, capture_output=True, check=True,
                           env=clean_env()).stdout.strip()
    git(repo, "replace", leaked, clean)
    assert git(repo, "show", f"{sha}:app.ini").stdout == "id = none\n"  # git hides it
    if packed:
        git(repo, "gc", "-q")

    _, findings, _ = history(cli, repo, "--no-cache")

    found = by_key(findings, key)
    assert found["commit"]["sha"] == sha and found["path"] == "app.ini"
    assert found["in_head"] is True


def test_still_in_head_means_the_default_branch(cli: Cli, repo: Path, tmp_path: Path
                                                ) -> None:
    """'Still in HEAD' is the tip of the default branch (the remote's HEAD), whatever
    branch the clone has checked out; a note says so when HEAD is elsewhere."""
    on_main, on_feature = fake_key_id(), fake_key_id()
    commit(repo, {"main.ini": f"id = {on_main}\n"}, "main key")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, env=clean_env())
    _, findings, doc = history(cli, clone, "--no-cache")
    assert by_key(findings, on_main)["in_head"] is True
    assert not [n for n in doc["notes"] if "default branch" in n]  # HEAD is main

    git(clone, "checkout", "-q", "-b", "feature")
    commit(clone, {"main.ini": None, "feature.ini": f"id = {on_feature}\n"}, "feature work")
    _, findings, doc = history(cli, clone, "--no-cache")
    assert by_key(findings, on_main)["in_head"] is True  # removed on feature, not on main
    assert by_key(findings, on_feature)["in_head"] is False  # only on the feature branch
    assert any("refs/heads/main, the default branch (HEAD is on refs/heads/feature)" in n
               for n in doc["notes"])


def test_many_refs(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    refs = "".join(f"create refs/tags/t{i} {head}\n" for i in range(2000))
    subprocess.run(["git", "-C", str(repo), "update-ref", "--stdin"], input=refs, text=True,
                   check=True, env=clean_env())
    _, findings, _ = history(cli, repo, "--no-cache")
    assert len(findings) == 1 and len(findings[0]["refs"]) == 2001


def test_a_corrupt_object_is_reported_again_by_incremental_scans(cli: Cli, repo: Path) -> None:
    commit(repo, {"ok.txt": "fine\n"}, "ok")
    commit(repo, {"bad.txt": "soon corrupt\n"}, "bad")
    blob = git(repo, "rev-parse", "HEAD:bad.txt").stdout.strip()
    obj = repo / ".git" / "objects" / blob[:2] / blob[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"this is not zlib data")
    for _ in range(2):  # the first scan fills the cache; the second is incremental
        doc = cli("scan", "--history", repo, "--format", "json").json
        reasons = [s["reason"] for s in doc["skipped"] if blob in s["path"]]
        assert reasons and all("corrupt" in r for r in reasons)  # not "missing": it is there


def test_incremental_scan_attributes_from_the_cache_plus_new_commits(
        cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    first = commit(repo, {"a.txt": f"id {key}\n"}, "a", "Alice")
    history(cli, repo)
    commit(repo, {"b.txt": f"again {key}\n"}, "b", "Bob")
    _, findings, _ = history(cli, repo)
    assert len(findings) == 1
    assert findings[0]["commit"]["sha"] == first and findings[0]["count"] == 2
    assert {o["path"] for o in findings[0]["occurrences"]} == {"a.txt", "b.txt"}


@pytest.mark.parametrize("change", ["new-commit", "merge", "new-branch", "rewind", "rewrite"])
def test_incremental_scan_tells_the_same_refs_as_a_full_scan(
        cli: Cli, repo: Path, change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refs containing each finding: from the cache plus the new commits when refs only
    grew, from a full history pass when one was rewound or rewritten."""
    main_key, side_key = fake_key_id(), fake_key_id()
    commit(repo, {"README": "x\n"}, "initial")
    git(repo, "branch", "-M", "main")
    commit(repo, {"main.txt": f"id {main_key}\n"}, "main key")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"side.txt": f"id {side_key}\n"}, "side key")
    commit(repo, {"more.txt": "more\n"}, "more on feature")
    git(repo, "checkout", "-q", "main")
    history(cli, repo)  # the cache now knows every ref's tip and what it contains

    if change == "new-commit":
        commit(repo, {"new.txt": f"id {fake_key_id()}\n"}, "a new key on main")
    elif change == "merge":
        git(repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    elif change == "new-branch":
        git(repo, "branch", "copy", "feature")
        git(repo, "tag", "v1", "main~1")  # at a commit that was never a tip
    elif change == "rewind":
        git(repo, "branch", "-f", "feature", "feature~1")
    else:  # rewritten: the same content, a different commit
        git(repo, "checkout", "-q", "feature")
        git(repo, "commit", "-q", "--amend", "-m", "more on feature, reworded")
        git(repo, "checkout", "-q", "main")

    full_passes: list[bool] = []
    real_read_all = ancestry.Ancestry._read_all

    def counted(self: ancestry.Ancestry) -> None:
        full_passes.append(True)
        real_read_all(self)

    monkeypatch.setattr(ancestry.Ancestry, "_read_all", counted)
    _, incremental, _ = history(cli, repo)
    assert bool(full_passes) == (change in ("new-branch", "rewind", "rewrite")), full_passes
    _, full, _ = history(cli, repo, "--no-cache")
    assert [(f["key_id"], f["refs"]) for f in incremental] == \
        [(f["key_id"], f["refs"]) for f in full]
    side = by_key(full, side_key)["refs"]
    if change == "merge":
        assert side == ["refs/heads/feature", "refs/heads/main"]
    elif change == "new-branch":
        assert side == ["refs/heads/copy", "refs/heads/feature"]


@settings(max_examples=100, deadline=None)
@given(st.sets(st.binary(min_size=20, max_size=20), max_size=60),
       st.sets(st.binary(min_size=20, max_size=20), max_size=60),
       st.sets(st.binary(min_size=20, max_size=20), max_size=10))
def test_the_cache_id_table_behaves_as_a_set(first: set[bytes], more: set[bytes],
                                              gone: set[bytes]) -> None:
    ids = cache.IdSet.of(first).union(cache.IdSet.of(more)).without(gone)
    expected = (first | more) - gone
    assert ids.table == b"".join(sorted(expected))  # the file's format: sorted ids
    assert all(sha in ids for sha in expected)
    assert not any(sha in ids for sha in gone - expected)
    assert len(ids) == len(expected)


@settings(max_examples=60, deadline=None)
@given(st.sets(st.binary(min_size=20, max_size=20), max_size=300),
       st.lists(st.sets(st.binary(min_size=20, max_size=20), max_size=40), max_size=4),
       st.sets(st.binary(min_size=20, max_size=20), max_size=5))
def test_scanned_ids_survive_re_scans_as_a_set(first: set[bytes], later: list[set[bytes]],
                                               gone: set[bytes]) -> None:
    """The cache's ids through several re-scans, each saved and loaded again: a table
    plus the ids added since it was written, always the same set as plain sets give."""
    import tempfile

    expected = set(first)
    with tempfile.TemporaryDirectory() as folder:
        git_dir = Path(folder)
        state = cache.CacheState(rules_digest="r", scanned=cache.Scanned(cache.IdSet.of(first)))
        for step, more in enumerate(later):
            removed = gone if step == len(later) - 1 else set()
            state.scanned = state.scanned.union(cache.IdSet.of(more)).without(removed)
            expected = (expected | more) - removed
            cache.save(git_dir, state)
            loaded, warning = cache.load(git_dir, "r")
            assert loaded is not None and not warning
            state = loaded
            assert len(state.scanned) == len(expected)
            assert all(sha in state.scanned for sha in expected)
            assert not any(sha in state.scanned for sha in removed - expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sets(st.binary(min_size=20, max_size=20), max_size=60), max_size=6))
def test_merged_id_tables_are_their_union(tables: list[set[bytes]]) -> None:
    """A store's pack indexes (sorted tables, ids repeated across packs that overlap)
    merged into the cache's one table: the union, sorted, each id once."""
    merged = cache.IdSet.merged(cache.IdSet.of(t) for t in tables)
    assert merged.table == cache.IdSet.of(set().union(*tables)).table


def test_a_re_scan_adding_few_objects_leaves_the_id_table_alone(cli: Cli, repo: Path) -> None:
    for i in range(3):
        commit(repo, {f"f{i}.txt": f"content {i}\n"}, f"c{i}")
    history(cli, repo)
    folder = repo / ".git" / "keyscan"
    table = (folder / "scanned.bin").stat()
    commit(repo, {"later.txt": "later\n"}, "later")
    _, _, doc = history(cli, repo)
    assert doc["summary"]["files"] == 2  # the new commit and its blob
    assert (folder / "scanned.bin").stat().st_ino == table.st_ino  # not written again
    # the commit and the blob read, and the new tree (loose objects are all accounted for)
    assert (folder / "scanned.add").stat().st_size == 20 * 3
    commit(repo, {"later.txt": "later still\n"}, "later still")
    _, _, doc = history(cli, repo)
    assert doc["summary"]["files"] == 2  # the ids added last time count as scanned


def test_a_blob_over_the_size_limit_is_reported_by_every_re_scan(cli: Cli, repo: Path
                                                                 ) -> None:
    """A blob too big to read is never cached as scanned: each re-scan says so again,
    and a re-scan under a higher limit reads it."""
    key = fake_key_id()
    commit(repo, {"big.log": "x" * 5000 + f"\nid = {key}\n"}, "big log")
    blob = git(repo, "rev-parse", "HEAD:big.log").stdout.strip()

    def over_size(doc: Any) -> bool:
        return any(blob in s["path"] and "size limit" in s["reason"] for s in doc["skipped"])

    _, findings, doc = history(cli, repo, "--max-file-size", "1000")
    assert over_size(doc) and not findings
    commit(repo, {"later.txt": "later\n"}, "later")
    _, findings, doc = history(cli, repo, "--max-file-size", "1000")
    assert over_size(doc) and not findings  # said again, not forgotten by the cache
    _, findings, doc = history(cli, repo)  # the default limit: now it is read
    assert not over_size(doc) and [f["key_id"] for f in findings] == [key]


def test_the_rules_digest_ignores_where_the_rule_files_are(tmp_path: Path) -> None:
    """The cache is keyed by what the rules find, not where they are installed."""
    import shutil

    from keyscan.rules import builtin_rules_dir, load_rules

    copy = tmp_path / "rules"
    shutil.copytree(builtin_rules_dir(), copy)
    assert load_rules([copy], builtin=False).digest == load_rules().digest
    (copy / "aws.yaml").write_text((copy / "aws.yaml").read_text().replace(
        "description:", "description: changed", 1))
    assert load_rules([copy], builtin=False).digest != load_rules().digest


def test_unreachable_findings_survive_the_cache(cli: Cli, repo: Path) -> None:
    """A scan without --unreachable still remembers what unreachable objects hold: a later
    re-scan with --unreachable lists it, and one without still says it is there."""
    key = _key_on_a_deleted_branch(repo)
    result = cli("scan", "--history", repo, "--format", "json")
    assert result.json["findings"] == [] and "unreachable" in result.err
    commit(repo, {"b.txt": "b\n"}, "b")
    result = cli("scan", "--history", repo, "--format", "json")  # incremental
    assert result.json["findings"] == [] and "unreachable" in result.err
    commit(repo, {"c.txt": "c\n"}, "c")
    _, found, _ = history(cli, repo, "--unreachable")  # incremental, asking for them
    assert [f["key_id"] for f in found] == [key]


def test_a_credential_typed_into_a_commit_subject_is_masked_everywhere(cli: Cli, repo: Path
                                                                       ) -> None:
    """The subject of a commit goes into reports and the cache with each of its findings:
    a key or secret typed into it is masked there too (a commit id is left whole)."""
    key, secret = fake_key_id(), fake_secret()
    reverted = commit(repo, {"a.txt": "a\n"}, "a")
    commit(repo, {"c.ini": pair_text(key, secret)},
           f"creds {key} aws_secret_access_key={secret} (see {reverted})")
    outputs = []
    for fmt in ("json", "sarif", "jsonl", "text"):
        result = cli("scan", "--history", repo, "--format", fmt, "--no-cache")
        outputs.append(result.out + result.err)
    _, findings, _ = history(cli, repo)  # with the cache
    assert {f["key_id"] for f in findings} == {key}
    subject = findings[0]["commit"]["message"]
    assert key not in subject and secret not in subject and reverted in subject
    cached = b"".join(p.read_bytes() for p in (repo / ".git" / "keyscan").iterdir())
    # the key ID is kept as the findings' (file and message: an identifier, not a
    # secret), never in a subject
    assert secret.encode() not in cached and cached.count(key.encode()) == 2
    state: Any = cache.read_state(repo / ".git" / "keyscan" / cache.STATE)
    assert key not in json.dumps(state["appearances"])
    for out in outputs:
        assert secret not in out and secret[4:12] not in out


def test_discovery_never_answers_for_another_repository(tmp_path: Path) -> None:
    """`discover` remembers its last answer within a command: a repository made again
    at the same path (a fleet mirror cloned anew, here SHA-256) is not taken for the old
    one, and each command starts afresh."""
    from keyscan import gitrepo

    folder = tmp_path / "r"
    git(tmp_path, "init", "-q", str(folder))
    first = gitrepo.discover(folder)
    assert first is not None and first.object_format == "sha1"
    assert gitrepo.discover(folder) is first  # remembered
    shutil.rmtree(folder)
    git(tmp_path, "init", "-q", "--object-format=sha256", str(folder))
    again = gitrepo.discover(folder)
    assert again is not None and again.object_format == "sha256"
    inner = folder / "sub"
    inner.mkdir()
    assert gitrepo.discover(inner) == again  # inside it
    git(inner, "init", "-q")
    gitrepo.forget()  # what each command does first
    assert gitrepo.discover(inner).git_dir == inner / ".git"


@pytest.mark.parametrize("since", [1, 3, 6])
def test_new_commits_filtered_here_or_by_git_give_the_same_appearances(
        repo: Path, planted: dict[str, Any], since: int) -> None:
    """A re-scan lists every change of its few new commits and keeps those of finding
    blobs itself; git's --find-object gives the same places, merges and renames included."""
    first = git(repo, "rev-list", "--reverse", "--all").stdout.split()[since - 1]
    tips = git(repo, "for-each-ref", "--format=%(objectname)").stdout.split()
    listed = git(repo, "rev-list", "--all", "--objects", "--no-object-names").stdout.split()
    kinds = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-check=%(objecttype)"],
                           input="\n".join(listed) + "\n", capture_output=True, text=True,
                           check=True).stdout.split()
    blobs = [sha for sha, kind in zip(listed, kinds, strict=True) if kind == "blob"]
    git_dir = repo / ".git"
    by_git = attribute.introductions(git_dir, blobs, tips, [first], 5)
    here = attribute.introductions(git_dir, blobs, tips, [first], 5, filter_in_git=False)
    assert here == by_git
    assert any(here.values())


@pytest.mark.parametrize("reader", ["files", "git"])
def test_a_re_scan_asks_git_only_about_objects_refs_newly_name(
        cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    """What an object a ref names comes down to never changes: a re-scan peels only the
    objects no ref named last time (from the repository's files, or through git), and
    tells the same as a scan without the cache."""
    from keyscan.sources import history as source
    from keyscan.sources.store import Store

    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    git(repo, "tag", "-a", "v1", "-m", "v1")
    git(repo, "tag", "light")
    git(repo, "tag", "-a", "nested", "-m", "a tag of a tag", "v1")
    git(repo, "update-ref", "refs/trees/root", "HEAD^{tree}")
    history(cli, repo)
    new_commit = commit(repo, {"b.txt": "b\n"}, "b")
    git(repo, "tag", "-a", "v2", "-m", "v2")
    asked: list[str] = []
    real, real_peel = source._peeled, Store.peel

    def peeled(git_dir: Path, objects: list[str]) -> list[tuple[str, str]]:
        asked.extend(objects)
        return real(git_dir, objects)

    def peel(self: Store, sha: str) -> tuple[str, str]:
        asked.append(sha)
        return real_peel(self, sha)

    monkeypatch.setattr(source, "_peeled", peeled)
    monkeypatch.setattr(Store, "peel", peel)
    if reader == "git":
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    _, found, _ = history(cli, repo)
    assert set(asked) == {new_commit, git(repo, "rev-parse", "v2").stdout.strip()}
    asked.clear()
    _, fresh, _ = history(cli, repo, "--no-cache")
    assert len(asked) == 6  # main, light, nested, v1, v2, the tree: all asked
    assert found == fresh and found[0]["key_id"] == key
    assert {"refs/tags/nested", "refs/tags/v1", "refs/tags/light"} <= set(found[0]["refs"])


def test_a_blobs_first_appearance_is_its_earliest_commit_whatever_the_dates(
        cli: Cli, repo: Path) -> None:
    """Commits made in one second (a script, a rebase): git's default walk meets the
    first commit early through a side branch and would list the blob's second
    appearance first. The finding's commit is the one that first put it there, in a
    full scan and in a re-scan alike."""
    key = fake_key_id()
    same_second = clean_env(GIT_COMMITTER_DATE="2024-05-06T07:08:09+00:00",
                            GIT_AUTHOR_DATE="2024-05-06T07:08:09+00:00")

    def at_once(files: dict[str, str | None], message: str) -> str:
        for name, text in files.items():
            if text is None:
                git(repo, "rm", "-q", name)
            else:
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                (repo / name).write_text(text)
                git(repo, "add", name)
        git(repo, "commit", "-q", "--allow-empty", "-m", message, env=same_second)
        return git(repo, "rev-parse", "HEAD").stdout.strip()

    first = at_once({"a.txt": f"id {key}\n"}, "first")
    git(repo, "checkout", "-q", "-b", "side")
    at_once({"s.txt": "side\n"}, "side work")
    git(repo, "checkout", "-q", "main")
    at_once({"n1.txt": "1\n"}, "one")
    at_once({"a.txt": None}, "remove")
    again = at_once({"b/a.txt": f"id {key}\n"}, "again")
    _, found, _ = history(cli, repo)
    [finding] = found
    assert finding["commit"]["sha"] == first and finding["path"] == "a.txt"
    assert [o["commit"] for o in finding["occurrences"]] == [first, again]
    at_once({"b/c.txt": f"id {key}\n"}, "third place")  # a re-scan adds a place
    _, found, _ = history(cli, repo)
    [finding] = found
    assert finding["commit"]["sha"] == first and finding["count"] == 3
    assert found == history(cli, repo, "--no-cache")[1]


@pytest.mark.parametrize("split", [False, True], ids=["one-log-pass", "two-log-passes"])
def test_a_commit_dated_before_its_parent_never_comes_first(cli: Cli, repo: Path, split: bool,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A clock set wrong: commits dated before their own parent. Each commit still comes
    after its ancestors, as in `git log --date-order`: the finding is the commit that
    really put the key there first, however the history is cut for attribution (one
    place is in the older half of the cut, one in the newer)."""
    monkeypatch.setattr(attribute, "_SPLIT_COMMITS", 2 if split else 10**9)
    passes = log_passes(monkeypatch)
    key = fake_key_id()
    commit(repo, {"r.txt": "r\n"}, "root", when="2020-01-01T00:00:00+00:00")
    first = commit(repo, {"a.txt": f"id {key}\n"}, "first", when="2024-06-01T00:00:00+00:00")
    behind = commit(repo, {"b.txt": f"key {key}\n"}, "behind", when="2020-02-01T00:00:00Z")
    for day in range(1, 4):
        commit(repo, {f"n{day}.txt": f"{day}\n"}, f"n{day}", when=f"2020-03-0{day}T00:00:00Z")
    later = commit(repo, {"c.txt": f"then {key}\n"}, "later", when="2020-04-01T00:00:00Z")
    commit(repo, {"d.txt": "d\n"}, "tip", when="2020-05-01T00:00:00+00:00")
    _, found, _ = history(cli, repo)
    assert len(passes) == (2 if split else 1)
    [finding] = found
    assert finding["commit"]["sha"] == first and finding["path"] == "a.txt"
    assert [o["commit"] for o in finding["occurrences"]] == [first, behind, later]
    assert found == history(cli, repo, "--no-cache")[1]


@pytest.mark.parametrize("same_blob", [True, False], ids=["blob-scanned-before", "new-blob"])
def test_an_older_commit_fetched_after_a_scan_is_first_in_the_rescan(cli: Cli, repo: Path,
                                                                     same_blob: bool) -> None:
    """A branch fetched after the last scan can hold commits older than every one
    scanned. A re-scan puts their places by date among the cached ones, as a fresh scan
    does, rather than after them all: the key's first appearance is the older commit."""
    key = fake_key_id()
    root = commit(repo, {"r.txt": "r\n"}, "root", when="2014-01-01T00:00:00+00:00")
    main = commit(repo, {"a.txt": f"id {key}\n"}, "main", when="2020-01-01T00:00:00+00:00")
    _, found, _ = history(cli, repo)
    assert found[0]["commit"]["sha"] == main
    git(repo, "checkout", "-q", "-b", "old", root)
    text = f"id {key}\n" if same_blob else f"old {key}\n"
    old = commit(repo, {"b.txt": text}, "old", when="2015-01-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    _, found, doc = history(cli, repo)
    assert doc["summary"]["files"] < 4  # a re-scan of the new objects only
    [finding] = found
    assert finding["commit"]["sha"] == old and finding["path"] == "b.txt"
    assert [o["commit"] for o in finding["occurrences"]] == [old, main]
    assert found == history(cli, repo, "--no-cache")[1]


def test_places_numbered_again_stay_in_order_in_later_rescans(cli: Cli, repo: Path) -> None:
    """Older commits fetched after a scan put their places before the cached ones: every
    place is numbered again, and so saved, so that later re-scans list them all in the
    order a fresh scan does."""
    key = fake_key_id()
    root = commit(repo, {"r.txt": "r\n"}, "root", when="2014-01-01T00:00:00+00:00")
    commit(repo, {"a.txt": f"a {key}\n"}, "a", when="2020-01-01T00:00:00+00:00")
    commit(repo, {"c.txt": f"c {key}\n"}, "c", when="2021-01-01T00:00:00+00:00")
    history(cli, repo)
    git(repo, "checkout", "-q", "-b", "old", root)
    commit(repo, {"b1.txt": f"b1 {key}\n"}, "b1", when="2015-01-01T00:00:00+00:00")
    commit(repo, {"b2.txt": f"b2 {key}\n"}, "b2", when="2016-01-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    for step in ("fetched", "one more commit"):
        _, found, _ = history(cli, repo)
        [finding] = found
        assert [o["path"] for o in finding["occurrences"]] == \
            ["b1.txt", "b2.txt", "a.txt", "c.txt"], step
        assert found == history(cli, repo, "--no-cache")[1], step
        commit(repo, {"d.txt": "d\n"}, "d")


@pytest.mark.parametrize("read_files", [True, False], ids=["from-files", "through-git"])
def test_rescans_after_a_branch_is_deleted_or_history_rewritten_match_a_fresh_scan(
        cli: Cli, repo: Path, read_files: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A branch deleted, restored, history rewritten by a reset, then all of it pruned by
    `git gc`: at each step a re-scan reports what a fresh scan does (a leak no ref reaches
    any more is left out with a note, not reported "on no ref"; an object pruned with its
    branch is not reported missing ever after)."""
    if not read_files:
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    on_side, on_main = fake_key_id(), fake_key_id()

    def same_as_fresh(step: str) -> list[dict[str, Any]]:
        code, found, doc = history(cli, repo)
        fresh_code, fresh, fresh_doc = history(cli, repo, "--no-cache")
        assert (code, found, doc["skipped"], doc["notes"]) == \
            (fresh_code, fresh, fresh_doc["skipped"], fresh_doc["notes"]), step
        return found

    commit(repo, {"a.txt": "a\n"}, "a")
    git(repo, "checkout", "-q", "-b", "side")
    side = commit(repo, {"s.txt": f"id {on_side}\n"}, "side")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"b.txt": "b\n"}, "b")
    assert [f["refs"] for f in same_as_fresh("first scan")] == [["refs/heads/side"]]
    git(repo, "branch", "-q", "-D", "side")
    assert same_as_fresh("side deleted") == []
    git(repo, "branch", "-q", "side", side)
    assert [f["key_id"] for f in same_as_fresh("side restored")] == [on_side]
    commit(repo, {"m.txt": f"id {on_main}\n"}, "m")
    commit(repo, {"c.txt": "c\n"}, "c")
    assert {f["key_id"] for f in same_as_fresh("main grew")} == {on_side, on_main}
    git(repo, "reset", "-q", "--hard", "HEAD~2")
    assert [f["key_id"] for f in same_as_fresh("main rewound")] == [on_side]
    git(repo, "branch", "-q", "-D", "side")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    for step in ("pruned", "pruned, scanned again"):
        assert same_as_fresh(step) == []
        assert history(cli, repo)[2]["skipped"] == [], step


@pytest.mark.parametrize("main_moves", [True, False])
def test_a_blob_read_only_under_a_higher_limit_is_still_in_head(cli: Cli, repo: Path,
                                                              main_moves: bool) -> None:
    """A blob over the size limit is reported skipped and read again by each re-scan; once
    a higher limit lets it be read, its finding says whether it is in HEAD as a fresh
    scan does, though the default branch moved meanwhile and the last scan found nothing
    in it (the cache keeps where such blobs sit in HEAD too)."""
    key, small_key = fake_key_id(), fake_key_id()
    commit(repo, {"big.cfg": "x" * 4000 + f"\nid {key}\n", "small.cfg": f"id {small_key}\n"},
           "big")
    _, found, doc = history(cli, repo, "--max-file-size", "1k")
    assert [f["key_id"] for f in found] == [small_key]
    assert any("size limit" in s["reason"] for s in doc["skipped"])
    git(repo, "checkout", "-q", "-b", "side")  # a commit elsewhere: main does not move
    commit(repo, {"other.txt": "other\n"}, "side work")
    git(repo, "checkout", "-q", "main")
    history(cli, repo, "--max-file-size", "1k")
    if main_moves:
        commit(repo, {"more.txt": "more\n"}, "main moves")
    else:
        git(repo, "branch", "-q", "other", "side")
    _, found, _ = history(cli, repo)
    assert {f["key_id"]: f["in_head"] for f in found} == {key: True, small_key: True}
    assert found == history(cli, repo, "--no-cache")[1]


def test_still_in_head_stays_right_across_re_scans(cli: Cli, repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-scan does not list the default branch's files: until that branch moves, the
    finding blobs in its tree are those the last scan found there; once it moves, those
    less the paths that changed, plus what the changed paths hold now (the two trees
    compared from the repository's files, folders that did not change left unread).
    Through git (KEYSCAN_READ_PACKS=0) the moved branch's files are listed."""
    key, later_key, moved_key = fake_key_id(), fake_key_id(), fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n", "conf/m.txt": f"id {moved_key}\n"}, "a")
    history(cli, repo)
    listed: list[str] = []
    real = attribute.tree_blobs

    def tree_blobs(git_dir: Path, tree: str = "HEAD") -> dict[str, list[str]]:
        listed.append(tree)
        return real(git_dir, tree)

    monkeypatch.setattr(attribute, "tree_blobs", tree_blobs)
    git(repo, "checkout", "-q", "-b", "side")
    commit(repo, {"b.txt": f"id {later_key}\n"}, "side work")  # main did not move
    git(repo, "checkout", "-q", "main")
    _, found, _ = history(cli, repo)
    assert by_key(found, key)["in_head"] is True
    assert by_key(found, later_key)["in_head"] is False
    assert listed == []
    steps: list[tuple[dict[str, str | None], dict[str, bool]]] = [
        ({"a.txt": None}, {key: False}),  # main moved: the key left HEAD
        ({"again/a.txt": f"id {key}\n"}, {key: True}),  # the same blob back, elsewhere
        ({"conf": "a file where the folder was\n"}, {moved_key: False}),
        ({"b2.txt": f"id {later_key}\n"}, {later_key: True}),  # side's blob now on main
    ]
    for files, expected in steps:
        if "conf" in files:
            git(repo, "rm", "-q", "-r", "conf")
        commit(repo, files, "step")
        _, found, _ = history(cli, repo)
        for wanted, in_head in expected.items():
            assert by_key(found, wanted)["in_head"] is in_head
        assert listed == []
        _, fresh, _ = history(cli, repo, "--no-cache")  # lists them: no cache to go by
        assert found == fresh
        listed.clear()
    monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    commit(repo, {"again/a.txt": None}, "remove again")
    _, found, _ = history(cli, repo)
    assert listed == ["refs/heads/main"] or listed == ["HEAD"]
    assert by_key(found, key)["in_head"] is False


@pytest.mark.parametrize("read_files", [True, False], ids=["from-files", "through-git"])
def test_a_rescan_after_a_branch_is_deleted_keeps_places_a_skewed_clock_hides_from_git(
        cli: Cli, repo: Path, read_files: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """`git rev-list PLACES ^TIPS` stops walking the tips by commit date: under commits
    dated before their parents (a clock set wrong) it lists commits the tips do reach.
    A re-scan after a branch is deleted must not take such a commit for gone and drop
    its places (it dropped the only place of a key still on main)."""
    if not read_files:
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    key = fake_key_id()
    commit(repo, {"a.txt": "a\n"}, "a", when="2024-01-01T00:00:00+00:00")
    place = commit(repo, {"conf.txt": f"id {key}\n"}, "key", when="2030-01-01T00:00:00+00:00")
    for i in range(8):  # a clock set years back
        commit(repo, {f"n{i}.txt": f"{i}\n"}, f"n{i}", when=f"2001-01-0{i + 1}T00:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "side")
    commit(repo, {"s.txt": "s\n"}, "side", when="2001-02-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    _, found, _ = history(cli, repo)
    assert by_key(found, key)["commit"]["sha"] == place
    git(repo, "branch", "-q", "-D", "side")
    _, found, doc = history(cli, repo)
    _, fresh, fresh_doc = history(cli, repo, "--no-cache")
    assert by_key(fresh, key)["commit"]["sha"] == place
    assert (found, doc["notes"]) == (fresh, fresh_doc["notes"])


def test_a_key_in_commit_messages_is_first_seen_in_time_and_listed_as_a_fresh_scan_does(
        cli: Cli, repo: Path) -> None:
    """A key only in commit messages: its first appearance is the earliest commit in time,
    whatever the time zone each date is written in (compared as text, 10:00+05:00 came
    after 06:00+00:00), and commits sharing a date (a stash's) are listed in one order by
    a fresh scan and a re-scan."""
    key = fake_key_id()
    early = commit(repo, {"a.txt": "a\n"}, f"rotate {key}", when="2024-01-01T10:00:00+05:00")
    commit(repo, {"b.txt": "b\n"}, f"again {key}", when="2024-01-01T06:00:00+00:00")
    _, found, _ = history(cli, repo)
    assert by_key(found, key)["commit"]["sha"] == early
    assert by_key(found, key)["first_seen"] == "2024-01-01T10:00:00+05:00"
    same = [commit(repo, {f"s{i}.txt": f"{i}\n"}, f"same date {i} {key}",
                   when="2024-02-01T00:00:00+00:00") for i in range(4)]
    _, cached, _ = history(cli, repo)
    _, fresh, _ = history(cli, repo, "--no-cache")
    assert cached == fresh
    listed = [o["commit"] for o in by_key(fresh, key)["occurrences"]]
    assert listed[2:] == sorted(same)


@pytest.mark.parametrize("read_files", [True, False], ids=["from-files", "through-git"])
def test_a_key_committed_on_a_detached_head_of_another_worktree_is_in_history(
        cli: Cli, repo: Path, tmp_path: Path, read_files: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """git counts the HEADs of linked worktrees as reachable (`git log --all`, `git gc`
    keeps their commits): a key committed on a detached HEAD there is found by a scan of
    the main checkout, not left out as unreachable; re-scans agree with a fresh scan."""
    if not read_files:
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    key, later = fake_key_id(), fake_key_id()
    commit(repo, {"a.txt": "a\n"}, "a")
    history(cli, repo)  # the cache is made
    scratch = tmp_path / "scratch"
    git(repo, "worktree", "add", "-q", "--detach", str(scratch), "HEAD")
    made = commit(scratch, {"k.txt": f"id {key}\n"}, "scratch work")
    for step in ("worktree made", "worktree grew"):
        _, found, doc = history(cli, repo)
        _, fresh, fresh_doc = history(cli, repo, "--no-cache")
        assert (found, doc["notes"]) == (fresh, fresh_doc["notes"]), step
        assert by_key(fresh, key)["commit"]["sha"] == made
        assert by_key(fresh, key)["in_head"] is False
        commit(scratch, {"l.txt": f"id {later}\n"}, "more scratch work")
    assert by_key(history(cli, repo)[1], later)["path"] == "l.txt"
    assert by_key(history(cli, scratch, "--no-cache")[1], key)["in_head"] is True


def test_a_non_utf8_path_is_escaped_in_every_field_of_the_json(cli: Cli, repo: Path) -> None:
    """The finding's `path` was escaped but `occurrences[].path` held a lone surrogate,
    which strict JSON readers (and UTF-8 encoders) reject."""
    key = fake_key_id()
    name = os.fsdecode(b"caf\xe9.txt")
    (repo / name).write_text(f"key = {key}\n")
    (repo / "plain.txt").write_text(f"key = {key}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two copies")
    result = cli("scan", "--history", repo, "--format", "json")
    assert result.code == 1, result.err

    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    doc = result.json
    for text in strings(doc):
        text.encode("utf-8")  # strict: no lone surrogate anywhere
    [finding] = doc["findings"]
    assert sorted(o["path"] for o in finding["occurrences"]) == ["caf\\xe9.txt", "plain.txt"]


@pytest.mark.parametrize("read_files", [True, False], ids=["from-files", "through-git"])
@pytest.mark.parametrize("where", ["head", "worktree"])
def test_a_rescan_keeps_keys_only_a_detached_head_reaches(
        cli: Cli, repo: Path, tmp_path: Path, read_files: bool, where: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit only a detached HEAD (this checkout's, or another worktree's) reaches is
    in history, as git counts it. Without the walk of every object (re-scans, and fresh
    scans of large repositories) a commit holding a key in its message counted as
    reachable only when some ref contained it: a re-scan dropped the key a fresh scan
    reported, and so did a fresh scan without the walk."""
    if not read_files:
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    in_message, in_file = fake_key_id(), fake_key_id()
    commit(repo, {"a.txt": "a\n"}, "a")
    detached = repo
    if where == "head":
        git(repo, "checkout", "-q", "--detach")
    else:
        detached = tmp_path / "scratch"
        git(repo, "worktree", "add", "-q", "--detach", str(detached), "HEAD")
    history(cli, repo)  # the cache is made
    said = commit(detached, {}, f"rotate {in_message}")
    put = commit(detached, {"k.txt": f"id {in_file}\n"}, "add k")
    for step in ("new commits", "nothing new", "one more commit"):
        _, found, doc = history(cli, repo)
        _, fresh, fresh_doc = history(cli, repo, "--no-cache")
        _, unwalked, _ = history(cli, repo, "--no-cache", "--no-check-missing")
        assert by_key(fresh, in_message)["commit"]["sha"] == said, step
        assert by_key(fresh, in_file)["commit"]["sha"] == put, step
        assert (found, doc["notes"]) == (fresh, fresh_doc["notes"]), step
        assert unwalked == fresh, step
        if step == "nothing new":
            commit(detached, {"b.txt": "b\n"}, "b")
    git(detached, "checkout", "-q", "--detach", "main")  # now no ref nor HEAD reaches them
    _, found, doc = history(cli, repo)
    _, fresh, fresh_doc = history(cli, repo, "--no-cache")
    assert (found, fresh) == ([], [])
    assert doc["notes"] == fresh_doc["notes"]


@pytest.mark.parametrize("read_files", [True, False], ids=["from-files", "through-git"])
@pytest.mark.parametrize("change", ["backdated-commit", "branch-deleted", "amend"])
def test_a_rescan_orders_places_as_a_fresh_scan_when_a_skewed_clock_reorders_history(
        cli: Cli, repo: Path, change: str, read_files: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit dated before its parent holds that parent, and all it alone leads to,
    back in `git log --date-order`: adding one (a clock set wrong), or dropping one (its
    branch deleted, the commit amended), changes the order of old commits among
    themselves. The cache kept its places' old order: a re-scan named another first
    commit and path than a fresh scan, and listed the occurrences in another order."""
    if not read_files:
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    key = fake_key_id()
    commit(repo, {"base.txt": "b\n"}, "base", when="2024-01-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "side")
    commit(repo, {"q.txt": f"id {key}\n"}, "q", when="2024-01-02T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"p.txt": f"x\nid {key}\n"}, "p", when="2024-01-03T00:00:00+00:00")
    if change != "backdated-commit":
        git(repo, "checkout", "-q", "-b", "skew")
        commit(repo, {"s.txt": "s\n"}, "skewed", when="2023-06-01T00:00:00+00:00")
    _, found, _ = history(cli, repo)
    assert by_key(found, key)["path"] == ("q.txt" if change == "backdated-commit" else "p.txt")
    if change == "backdated-commit":
        commit(repo, {"n.txt": "n\n"}, "skewed", when="2023-06-01T00:00:00+00:00")
    elif change == "branch-deleted":
        git(repo, "checkout", "-q", "main")
        git(repo, "branch", "-q", "-D", "skew")
    else:
        git(repo, "commit", "-q", "--amend", "-m", "fixed clock",
            env=clean_env(GIT_COMMITTER_DATE="2024-01-04T00:00:00+00:00"))
    _, found, doc = history(cli, repo)
    _, fresh, fresh_doc = history(cli, repo, "--no-cache")
    assert by_key(fresh, key)["path"] == ("p.txt" if change == "backdated-commit" else "q.txt")
    assert (found, doc["notes"]) == (fresh, fresh_doc["notes"])


def test_history_sarif_places_a_key_still_in_head_where_head_has_it(cli: Cli, repo: Path
                                                                      ) -> None:
    """Code scanning shows results on the files of the commit scanned: a key committed at
    line 1, then moved down to line 5, was placed at line 1; a copy of it in another file
    of HEAD got no result of its own. A key only in history stays where it came in."""
    kept, gone = fake_key_id(), fake_key_id()
    first = commit(repo, {"cfg/prod.ini": f"key = {kept}\n", "old.ini": f"key = {gone}\n"},
                   "add keys")
    commit(repo, {"cfg/prod.ini": "# a\n# b\n# c\n# d\n" + f"key = {kept}\n", "old.ini": None,
                  "copy.ini": f"\n\nkey = {kept}\n"}, "move it down, copy it, drop the other")
    code, findings, _ = history(cli, repo)
    assert code == 1
    found = by_key(findings, kept)
    assert found["commit"]["sha"] == first and found["line"] == 1  # where it came in
    assert found["head_places"] == [{"path": "cfg/prod.ini", "line": 5, "column": 7},
                                    {"path": "copy.ini", "line": 3, "column": 7}]
    assert "head_places" not in by_key(findings, gone)
    sarif = json.loads(cli("scan", "--history", repo, "--format", "sarif").out)
    results = sarif["runs"][0]["results"]
    placed = sorted((r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                     r["locations"][0]["physicalLocation"]["region"]["startLine"])
                    for r in results)
    assert placed == [("cfg/prod.ini", 5), ("copy.ini", 3), ("old.ini", 1)]
    prints = [r["partialFingerprints"]["keyscan/v1"] for r in results]
    assert len(set(prints)) == len(prints) == 3


def test_a_message_finding_in_a_latin1_commit_names_its_author_as_git_shows_it(
        cli: Cli, repo: Path, tmp_path: Path) -> None:
    """Metadata read through gitpython: a commit written in another encoding (an old
    Windows or Java toolchain's ISO-8859-1) names its author as `git log` shows him,
    in a first scan and in a re-scan after a new commit, and no git process is left."""
    key = fake_key_id()
    commit(repo, {"a.txt": "a\n"}, "initial")
    (tmp_path / "msg").write_bytes(f"rotate {key} (caf\xe9)\n".encode("latin-1"))
    git(repo, "-c", "i18n.commitEncoding=ISO-8859-1", "commit", "-q", "--allow-empty",
        "-F", str(tmp_path / "msg"),
        env=clean_env(GIT_AUTHOR_NAME="Jos\udce9 M\udcfcller",  # latin-1 bytes
                      GIT_AUTHOR_EMAIL="jose@example.com",
                      GIT_AUTHOR_DATE="2021-03-04T05:06:07+05:30"))
    shown = git(repo, "log", "-1", "--format=%an|%aI|%s").stdout.strip()
    assert shown.startswith("José Müller|2021-03-04T05:06:07+05:30|")
    before = _git_children()
    for rescan in (False, True):
        if rescan:
            commit(repo, {"b.txt": "b\n"}, "later")
        _, findings, _ = history(cli, repo)
        found = by_key(findings, key)
        assert found["source"] == "commit-message"
        assert (found["commit"]["author_name"], found["commit"]["author_date"]) == \
            ("José Müller", "2021-03-04T05:06:07+05:30")
        assert found["commit"]["message"].endswith("(café)")
    assert _git_children() <= before  # gitpython's persistent cat-files were stopped


def _git_children() -> set[str]:
    """The git processes this process started that still run (Linux's /proc)."""
    folder = Path(f"/proc/{os.getpid()}/task")
    pids = [pid for task in folder.iterdir() if (task / "children").exists()
            for pid in (task / "children").read_text().split()]
    out = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "git":
                out.add(pid)
        except OSError:
            continue  # gone meanwhile
    return out


def test_a_history_report_says_to_rotate_first(cli: Cli, repo: Path) -> None:
    """A history scan's leaks are mostly in no file any more, and in every clone: its
    text report's advice starts with rotating the keys (it said to remove the key from
    the file first, as a scan of the files does), and names the commands that help."""
    commit(repo, {"creds.ini": pair_text(fake_key_id(), fake_secret())}, "add creds")
    commit(repo, {"creds.ini": None}, "remove creds")
    (repo / "local.ini").write_text(pair_text(fake_key_id(), fake_secret()))

    history_text = cli("scan", "--history", repo).out
    files_text = cli("scan", repo).out

    advice = history_text[history_text.index("What to do:"):].splitlines()
    assert advice[1].startswith("  1. Rotate each key: deactivate it and create a new one")
    assert "`keyscan deactivate PATH" in history_text and "--history`" in history_text
    assert "`keyscan explain FINGERPRINT PATH`" in history_text
    advice = files_text[files_text.index("What to do:"):].splitlines()
    assert advice[1].startswith("  1. Remove the key from the file")
