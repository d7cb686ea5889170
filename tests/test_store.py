"""Re-scans read refs and new objects from the repository's files (sources/store.py,
sources/recent.py): what they read must be exactly what git says."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fakes import fake_key_id, fake_secret
from repos import clean_env, git
from test_history import Cli, commit, history, pair_text, planted  # noqa: F401

from keyscan import attribute, cache
from keyscan.sources import recent
from keyscan.sources.store import Store


def _every_object(repo: Path) -> list[tuple[str, str, bytes]]:
    listed = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-all-objects",
                             "--batch"], capture_output=True, check=True).stdout
    out, at = [], 0
    while at < len(listed):
        end = listed.index(b"\n", at)
        sha, kind, size = listed[at:end].decode().split()
        data = listed[end + 1 : end + 1 + int(size)]
        out.append((sha, kind, data))
        at = end + 2 + int(size)
    return out


def _store_repo(repo: Path, tmp_path: Path) -> None:
    """Loose and packed objects, deltas by offset and by id (a fetched thin pack),
    annotated tags and a tag of a tag, packed and loose refs, a symbolic ref."""
    for i in range(6):
        commit(repo, {"big.txt": "".join(f"line {n} {i if n % 7 == 0 else ''}\n"
                                         for n in range(400)), f"f{i}.txt": f"{i}\n"}, f"c{i}")
    git(repo, "tag", "-a", "v1", "-m", "v1")
    git(repo, "tag", "-a", "nested", "-m", "a tag of a tag", "v1")
    git(repo, "gc", "-q")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    for i in range(3):  # fetched back as a thin pack: deltas against objects by id
        commit(clone, {"big.txt": (clone / "big.txt").read_text() + f"more {i}\n"}, f"d{i}")
    git(repo, "-c", "fetch.unpackLimit=1", "fetch", "-q", str(clone), "main:refs/heads/fetched")
    commit(repo, {"loose.txt": "loose\n"}, "loose one")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/heads/main")
    git(repo, "update-ref", "refs/heads/fetched", "HEAD")  # a loose ref over a packed one


def test_the_store_reads_refs_and_objects_as_git_does(repo: Path, tmp_path: Path) -> None:
    _store_repo(repo, tmp_path)
    packs = list((repo / ".git" / "objects" / "pack").glob("*.pack"))
    assert len(packs) >= 2  # the repacked history and the fetched thin pack
    store = Store.open(repo / ".git")
    assert store is not None
    listed = git(repo, "for-each-ref", "--format=%(objectname) %(symref) %(refname)").stdout
    assert [" ".join(row) for row in store.refs()] == listed.splitlines()
    head = git(repo, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD").stdout.split()
    assert list(store.head()) == head
    objects = _every_object(repo)
    assert len(objects) > 30
    for sha, kind, data in objects:
        assert store.read(sha) == (kind, data), sha
        assert store.has(sha)
        limited = store.read_at_most(sha, 100)
        assert limited == (kind, len(data), data if len(data) <= 100 else None)
    assert store.read("0" * 40) is None and not store.has("1" * 40)
    nested = git(repo, "rev-parse", "nested").stdout.strip()
    assert store.peel(nested) == (git(repo, "rev-parse", "v1^{commit}").stdout.strip(),
                                  "commit")


def test_a_thousand_loose_refs_read_as_git_lists_them(repo: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Branches a script made one by one stay loose files until `git gc`: the store
    reads them (faster than starting git) up to its limit, and leaves more to git."""
    from keyscan.sources import store as store_module

    commit(repo, {"a.txt": "a\n"}, "a")
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    for i in range(1000):
        ref = repo / ".git" / "refs" / "heads" / "feature" / f"b{i:04}"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(f"{head}\n")
    store = Store.open(repo / ".git")
    assert store is not None
    listed = git(repo, "for-each-ref", "--format=%(objectname) %(symref) %(refname)").stdout
    assert len(listed.splitlines()) == 1001
    assert [" ".join(row) for row in store.refs()] == listed.splitlines()
    monkeypatch.setattr(store_module, "_MAX_LOOSE_REFS", 500)
    with pytest.raises(store_module.StoreError):
        Store.open(repo / ".git").refs()  # type: ignore[union-attr]


def test_the_store_is_not_used_where_git_must_be_asked(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a.txt": "a\n"}, "a")
    assert Store.open(repo / ".git") is not None
    assert Store.open(repo / ".git", "sha256") is None
    (repo / ".git" / "shallow").write_text("")
    assert Store.open(repo / ".git") is None
    (repo / ".git" / "shallow").unlink()
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
    worktree_git = Path(git(tmp_path / "wt", "rev-parse", "--absolute-git-dir").stdout.strip())
    assert Store.open(worktree_git) is None  # refs and objects live in another folder
    git(repo, "config", "extensions.partialclone", "origin")
    assert Store.open(repo / ".git") is None


def test_changes_of_new_commits_are_what_git_log_shows(repo: Path) -> None:
    """Every path each new commit set, with renames, deletions, type and mode changes
    and nested folders, in `git log --raw -m --no-renames` order."""
    commit(repo, {"a/b/c.txt": "c\n", "a/d.txt": "d\n", "top.txt": "t\n"}, "base")
    base = git(repo, "rev-parse", "HEAD").stdout.strip()
    commit(repo, {"a/b/c.txt": "c2\n", "a/b/new.txt": "n\n", "z.txt": "z\n"}, "edit")
    git(repo, "mv", "a/d.txt", "a/moved.txt")
    commit(repo, {"top.txt": None}, "move and delete")
    (repo / "a" / "moved.txt").chmod(0o755)
    git(repo, "add", "a/moved.txt")
    commit(repo, {"a/b2": "file where a folder name sorts\n"}, "mode change")
    git(repo, "rm", "-q", "-r", "a/b")
    commit(repo, {"a/b/x.txt": "x\n"}, "folder replaced")
    store = Store.open(repo / ".git")
    assert store is not None
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    line = recent.new_commits(store, [head], {base}, set())
    assert line is not None and len(line) == 4
    got = [(c.blob, c.path, c.commit.sha) for c in recent.changes(store, line)]
    blobs = {b for b, _, _ in got}
    by_git = attribute.introductions(repo / ".git", blobs, [head], [base])
    want = sorted(((a.blob, a.path, a.commit.sha, a.order) for places in by_git.values()
                   for a in places), key=lambda row: row[3])
    assert got == [row[:3] for row in want]
    meta = {c.sha: c.meta for c in line}
    for places in by_git.values():
        for a in places:
            assert meta[a.commit.sha] == a.commit  # author, dates, subject as git gives them


def test_new_commits_with_merges_are_listed_as_git_log_lists_them(repo: Path) -> None:
    """Merges, branches grown from two old tips, commits made in the same second and a
    commit dated in the past: in `git log TIPS --not OLD`'s order, and what each put
    where as `git log --raw -m` shows it (first appearances depend on that order)."""
    commit(repo, {"a.txt": "a\n"}, "base")
    git(repo, "checkout", "-q", "-b", "side")
    commit(repo, {"s.txt": "s\n"}, "side base")
    old = {git(repo, "rev-parse", ref).stdout.strip() for ref in ("main", "side")}
    commit(repo, {"c.txt": "c\n", "a.txt": "a on side\n"}, "side 1")
    (repo / "late.txt").write_text("dated in the past\n")
    git(repo, "add", "late.txt")
    git(repo, "commit", "-q", "-m", "side 2", env=clean_env(
        GIT_COMMITTER_DATE="2001-02-03T04:05:06+00:00",
        GIT_AUTHOR_DATE="2001-02-03T04:05:06+00:00"))
    git(repo, "checkout", "-q", "main")
    commit(repo, {"b.txt": "b\n", "a.txt": "a on main\n"}, "main 1")
    git(repo, "merge", "-q", "--no-ff", "-X", "theirs", "-m", "merge side", "side")
    commit(repo, {"d.txt": "d\n"}, "after merge")
    git(repo, "checkout", "-q", "-b", "topic", "HEAD~1")
    commit(repo, {"t.txt": "t\n", "c.txt": "c on topic\n"}, "topic")
    git(repo, "checkout", "-q", "main")

    def as_git_lists_them(tips: list[str], count: int) -> None:
        store = Store.open(repo / ".git")  # as each scan opens it
        assert store is not None
        found = recent.new_commits(store, tips, old, set())
        assert found is not None
        spec = "".join(f"{t}\n" for t in tips) + "".join(f"^{o}\n" for o in old)
        by_git = subprocess.run(["git", "-C", str(repo), "log", "--stdin", "--date-order",
                                 "--format=%H"],
                                input=spec, capture_output=True, text=True, check=True,
                                env=clean_env()).stdout.split()
        assert [c.sha for c in found] == by_git and len(by_git) == count
        got = [(c.blob, c.path, c.commit.sha) for c in recent.changes(store, found)]
        introduced = attribute.introductions(repo / ".git", {b for b, _, _ in got}, tips,
                                             list(old))
        want = sorted(((a.blob, a.path, a.commit.sha, a.order)
                       for places in introduced.values() for a in places),
                      key=lambda row: row[3])
        assert got == [row[:3] for row in want]

    listed = git(repo, "for-each-ref", "--format=%(objectname)").stdout.split()
    tips = [*dict.fromkeys([*listed, git(repo, "rev-parse", "HEAD").stdout.strip()])]
    as_git_lists_them(tips, 6)
    # a new root (an orphan branch): its files against nothing, as git log shows them
    git(repo, "checkout", "-q", "--orphan", "pages")
    git(repo, "rm", "-q", "-r", "--cached", ".")
    commit(repo, {"index.html": "<p>pages</p>\n"}, "a new root")
    commit(repo, {"more.html": "<p>more</p>\n"}, "more pages")
    as_git_lists_them([*tips, git(repo, "rev-parse", "HEAD").stdout.strip()], 8)
    # a commit an earlier scan read is no shape read here (it is reached from old history)
    store = Store.open(repo / ".git")
    assert store is not None
    assert recent.new_commits(store, tips, old, {bytes.fromhex(tips[0])}) is None


@pytest.mark.parametrize("shape", ["line", "tagged", "merge", "fetched", "orphan",
                                   "from-old-commit", "deleted"])
def test_a_re_scan_from_the_files_reports_what_git_would(
        cli: Cli, repo: Path, planted: dict[str, Any],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    """After new commits of each shape, a re-scan reading the files (or falling back to
    git where it must) gives the report and cache a re-scan through git gives."""
    history(cli, repo)
    saved = repo.parent / "saved-cache"
    shutil.copytree(repo / ".git" / "keyscan", saved)
    key, secret = fake_key_id(), fake_secret()
    if shape == "from-old-commit":
        git(repo, "checkout", "-q", "-b", "old", "HEAD~3")
    commit(repo, {"new/creds.ini": pair_text(key, secret)}, "add creds", "Mallory")
    commit(repo, {"new/other.txt": "other\n"}, f"note {fake_key_id()}", "Mallory")
    if shape == "tagged":
        git(repo, "tag", "-a", "v2", "-m", f"release with {fake_key_id()}")
    if shape == "merge":
        git(repo, "checkout", "-q", "feature")
        git(repo, "merge", "-q", "--no-ff", "-m", "merge main", "main",
            env=clean_env(GIT_AUTHOR_NAME="Ivan"))
    if shape == "orphan":  # a new root: an unrelated history in the same repository
        git(repo, "checkout", "-q", "--orphan", "pages")
        commit(repo, {"pages/leak.txt": f"id {fake_key_id()}\n"}, "pages")
    if shape == "fetched":  # a fetch into a mirror: many refs moved at once
        for i in range(40):
            git(repo, "update-ref", f"refs/remotes/origin/b{i}", "HEAD" if i % 2 else "HEAD~1")
    if shape == "deleted":  # a cached finding's blob gone from the store
        gone = git(repo, "rev-parse", "HEAD~2:new.env").stdout.strip()
        obj = repo / ".git" / "objects" / gone[:2] / gone[2:]
        obj.chmod(0o644)
        obj.unlink()
    used: list[bool] = []
    from keyscan import history as history_module
    real = history_module._read_recent

    def spy(*args: Any) -> Any:
        out = real(*args)
        used.append(out is not None)
        return out

    monkeypatch.setattr(history_module, "_read_recent", spy)
    reports = []
    caches = []
    for reader in ("files", "git"):
        if reader == "git":
            monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
        shutil.rmtree(repo / ".git" / "keyscan")
        shutil.copytree(saved, repo / ".git" / "keyscan")
        _, _, doc = history(cli, repo)
        doc["summary"].pop("seconds", None)
        reports.append(doc)
        state: Any = cache.read_state(repo / ".git" / "keyscan" / cache.STATE)
        state["contains"] = {c: sorted(refs) for c, refs in state["contains"].items()}
        state.pop("added"), state.pop("count")  # git also lists the trees, never read
        state.pop("loose_ns")  # when the scan started
        caches.append(state)
    assert reports[0] == reports[1]
    assert caches[0] == caches[1]
    assert used[0] == (shape != "from-old-commit")  # there git walks
    found = {f["key_id"]: f for f in reports[0]["findings"]}
    if shape == "fetched":  # the key's commit is HEAD~1: every fetched ref holds it
        assert {f"refs/remotes/origin/b{i}" for i in range(40)} <= set(found[key]["refs"])
    assert found[key]["commit"]["author_name"] == "Mallory"
    assert found[key]["path"] == "new/creds.ini"


def test_a_corrupt_new_object_sends_the_re_scan_to_git(cli: Cli, repo: Path) -> None:
    """A new object that does not read cleanly from the files is left to git, which
    reports it; the rest of the change is still scanned."""
    commit(repo, {"a.txt": "a\n"}, "a")
    history(cli, repo)
    key = fake_key_id()
    commit(repo, {"kept.txt": f"id {key}\n", "bad.txt": "soon corrupt\n"}, "two files")
    blob = git(repo, "rev-parse", "HEAD:bad.txt").stdout.strip()
    obj = repo / ".git" / "objects" / blob[:2] / blob[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"this is not zlib data")
    _, found, doc = history(cli, repo)
    assert [f["key_id"] for f in found] == [key]
    assert any(blob in s["path"] for s in doc["skipped"])


def test_a_re_scan_from_the_files_says_what_it_cannot_cover(cli: Cli, repo: Path) -> None:
    """Submodules and Git LFS are noted from HEAD's files, read without git."""
    commit(repo, {".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n",
                  ".gitmodules": '[submodule "lib"]\n\tpath = lib\n\turl = ../lib\n'}, "setup")
    history(cli, repo)
    commit(repo, {"more.txt": "more\n"}, "more")
    _, _, doc = history(cli, repo)
    _, _, fresh = history(cli, repo, "--no-cache")
    assert doc["notes"] == fresh["notes"]
    assert any("submodules are not followed" in n for n in doc["notes"])
    assert any("Git LFS" in n for n in doc["notes"])


def test_a_re_scan_from_the_files_starts_no_git_process(repo: Path, tmp_path: Path) -> None:
    """A commit on a branch, on the default branch, a merge, a fetch moving forty refs:
    each is found, listed, read, attributed and reported without running git (nor
    importing subprocess): the re-scan's cost is keyscan's alone."""
    import sys

    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    code = ("import sys; from keyscan.cli import main; "
            f"code = main(['scan', '--history', {str(repo)!r}, '--format', 'json']); "
            "print('subprocess' in sys.modules, code, file=sys.stderr)")

    def scan(**env: str) -> tuple[str, dict[str, Any]]:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=clean_env(**env), check=False)
        return proc.stderr.strip().splitlines()[-1], json.loads(proc.stdout)

    assert scan()[0] == "True 1"  # the first scan reads the whole history through git
    later = fake_key_id()
    git(repo, "checkout", "-q", "-b", "topic")
    commit(repo, {"b.txt": f"id {later}\n"}, "b")
    git(repo, "checkout", "-q", "-")
    trace = tmp_path / "git-trace"
    said, doc = scan(GIT_TRACE=str(trace))
    assert said == "False 1"
    assert not trace.exists() or trace.read_text() == ""
    assert {f["key_id"] for f in doc["findings"]} == {key, later}
    commit(repo, {"a.txt": None}, "the key leaves main")  # the default branch moves
    said, doc = scan(GIT_TRACE=str(trace))
    assert said == "False 1" and not trace.exists()
    assert {f["key_id"]: f["in_head"] for f in doc["findings"]} == {key: False, later: False}
    git(repo, "merge", "-q", "--no-ff", "-m", "merge topic", "topic")
    said, doc = scan(GIT_TRACE=str(trace))
    assert said == "False 1" and not trace.exists()
    assert {f["key_id"]: f["in_head"] for f in doc["findings"]} == {key: False, later: True}
    commit(repo, {"c.txt": "c\n"}, "c")
    for i in range(40):
        git(repo, "update-ref", f"refs/remotes/origin/b{i}", "HEAD")
    said, doc = scan(GIT_TRACE=str(trace))
    assert said == "False 1" and not trace.exists()
    assert len(next(f for f in doc["findings"] if f["key_id"] == later)["refs"]) == 42


def test_what_a_re_scan_writes_back_is_what_a_fresh_scan_writes(
        cli: Cli, repo: Path, planted: dict[str, Any]) -> None:  # noqa: F811
    """Cached findings and places that did not change are written back as read; the
    result is the cache a scan of the whole history makes."""
    history(cli, repo)
    git(repo, "checkout", "-q", "-b", "more")
    commit(repo, {"more.txt": f"id {fake_key_id()}\n"}, "more")
    history(cli, repo)
    state = repo / ".git" / "keyscan" / cache.STATE
    again: Any = cache.read_state(state)
    history(cli, repo, "--no-cache")
    shutil.rmtree(repo / ".git" / "keyscan")
    history(cli, repo)
    fresh: Any = cache.read_state(state)
    assert again["findings"] == fresh["findings"]
    assert again["messages"] == fresh["messages"]

    def places(doc: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
        return {b: {(r[0], r[1]) for r in rows} for b, rows in doc["appearances"].items()}

    assert places(again) == places(fresh)
