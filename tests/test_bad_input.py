"""Bad input: each case is built for real, and keyscan says what it did with it, finishes
the rest of the scan and exits with the right code.

Cases already proven elsewhere are not repeated here; docs/hardening.md lists every case
with the test that proves it (test_worktree.py, test_history.py, test_staged.py,
test_rules.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import fake_key_id, fake_secret
from repos import CliResult, clean_env, git

Cli = Callable[..., CliResult]


def credentials(key: str | None = None) -> str:
    return (f"[default]\naws_access_key_id = {key or fake_key_id()}\n"
            f"aws_secret_access_key = {fake_secret()}\n")


def scan(cli: Cli, *args: str | Path) -> tuple[int, dict[str, Any], str]:
    result = cli("scan", *args, "--format", "json")
    assert result.code in (0, 1), result.err
    return result.code, result.json, result.err


def commit_file(repo: Path, name: str | bytes, text: str, message: str = "c") -> str:
    path = os.path.join(os.fsencode(repo), os.fsencode(name))
    with open(path, "wb") as fh:
        fh.write(text.encode())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def loose(repo: Path, sha: str) -> Path:
    return repo / ".git" / "objects" / sha[:2] / sha[2:]


# -- history: a damaged object store ---------------------------------------------------------


def test_a_missing_commit_parent(cli: Cli, repo: Path) -> None:
    old, new = fake_key_id(), fake_key_id()
    parent = commit_file(repo, "old.ini", credentials(old), "old")
    child = commit_file(repo, "new.ini", credentials(new), "new")
    loose(repo, parent).unlink()
    code, doc, err = scan(cli, "--history", repo, "--no-cache")
    assert code == 1
    # every object still in the store is read: both keys' blobs are there
    assert {f["key_id"] for f in doc["findings"]} == {old, new}
    [error] = doc["errors"]
    assert f"parents of commit {child}" in error and "read every object" in error
    assert f"keyscan: error: walking the history: {error.split(': ', 1)[1]}" in err


def test_a_corrupt_packfile(cli: Cli, repo: Path) -> None:
    packed = fake_key_id()
    commit_file(repo, "a.ini", credentials(packed), "packed")
    commit_file(repo, "filler.txt", "".join(f"line {i}\n" for i in range(2000)), "filler")
    git(repo, "repack", "-adq")
    later = fake_key_id()
    commit_file(repo, "b.ini", credentials(later), "loose, after the repack")
    [pack] = (repo / ".git" / "objects" / "pack").glob("*.pack")
    blob = git(repo, "rev-parse", "HEAD~1:filler.txt").stdout.strip()
    offset = _pack_offset(repo, pack, blob)
    pack.chmod(0o644)
    with open(pack, "r+b") as fh:  # scramble the filler blob's compressed bytes
        fh.seek(offset + 8)
        fh.write(b"\xde\xad\xbe\xef" * 8)
    code, doc, _ = scan(cli, "--history", repo, "--no-cache")
    assert code == 1
    assert {f["key_id"] for f in doc["findings"]} == {packed, later}
    assert any(blob in s["path"] and "corrupt" in s["reason"] for s in doc["skipped"])


def _pack_offset(repo: Path, pack: Path, sha: str) -> int:
    out = git(repo, "verify-pack", "-v", str(pack.with_suffix(".idx"))).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == sha:
            return int(parts[4])
    raise AssertionError(f"{sha} not in the pack")


# -- repository shapes ------------------------------------------------------------------------


def test_a_linked_worktree(cli: Cli, repo: Path, tmp_path: Path) -> None:
    main_key, side_key = fake_key_id(), fake_key_id()
    commit_file(repo, "main.ini", credentials(main_key))
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    commit_file(linked, "side.ini", credentials(side_key), "side work")
    code, doc, _ = scan(cli, linked)
    assert code == 1 and sorted(f["path"] for f in doc["findings"]) == ["main.ini", "side.ini"]
    code, doc, _ = scan(cli, "--history", linked, "--no-cache")
    assert {f["key_id"] for f in doc["findings"]} == {main_key, side_key}
    assert cli("scan", "--staged", linked).code == 0


def test_an_lfs_pointer_is_scanned_as_the_text_it_is(cli: Cli, repo: Path) -> None:
    pointer = ("version https://git-lfs.github.com/spec/v1\n"
               f"oid sha256:{os.urandom(32).hex()}\nsize 104857600\n")
    commit_file(repo, "model.bin", pointer)
    commit_file(repo, ".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
    commit_file(repo, "k.ini", credentials())
    code, doc, _ = scan(cli, repo)
    assert code == 1 and [f["path"] for f in doc["findings"]] == ["k.ini"]
    assert doc["skipped"] == []  # nothing fetched, nothing failed
    code, doc, err = scan(cli, "--history", repo, "--no-cache")
    assert code == 1 and [f["path"] for f in doc["findings"]] == ["k.ini"]
    # what was not scanned is said: the LFS content behind the pointers
    lfs_notes = [n for n in doc["notes"] if "Git LFS" in n]
    assert len(lfs_notes) == 1 and "Git LFS" in err
    commit_file(repo, ".gitattributes", "# *.bin filter=lfs diff=lfs merge=lfs -text\n")
    _, doc, _ = scan(cli, "--history", repo, "--no-cache")
    assert not [n for n in doc["notes"] if "Git LFS" in n]  # LFS no longer in use at HEAD


def test_ten_thousand_refs(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit_file(repo, "a.ini", credentials(key))
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    refs = "".join(f"create refs/heads/b{i} {head}\n" for i in range(5000))
    refs += "".join(f"create refs/tags/t{i} {head}\n" for i in range(5000))
    subprocess.run(["git", "-C", str(repo), "update-ref", "--stdin"], input=refs, text=True,
                   check=True, env=clean_env())
    started = time.monotonic()
    code, doc, _ = scan(cli, "--history", repo, "--no-cache")
    assert time.monotonic() - started < 30
    assert code == 1
    [finding] = doc["findings"]
    assert finding["key_id"] == key and len(finding["refs"]) == 10_001


# -- files -------------------------------------------------------------------------------------


def test_a_2gb_sparse_file_is_skipped_and_reported(cli: Cli, tmp_path: Path) -> None:
    big = tmp_path / "disk.img"
    with open(big, "wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: no disk used, no memory read
    (tmp_path / "k.ini").write_text(credentials())
    started = time.monotonic()
    code, doc, err = scan(cli, tmp_path)
    assert time.monotonic() - started < 10
    assert code == 1 and [f["path"] for f in doc["findings"]] == ["k.ini"]
    [skipped] = doc["skipped"]
    assert skipped["path"] == "disk.img"
    assert "size limit" in skipped["reason"] and "--max-file-size" in skipped["reason"]
    assert "1 skipped" in err


def test_a_50mb_single_line_file(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    size = 50 * 1024 * 1024
    (tmp_path / "bundle.min.js").write_bytes(b"x" * size + f" {key}".encode())
    started = time.monotonic()
    code, doc, _ = scan(cli, tmp_path)
    assert time.monotonic() - started < 20
    assert code == 1
    [finding] = doc["findings"]
    assert (finding["key_id"], finding["line"], finding["column"]) == (key, 1, size + 2)


@pytest.mark.parametrize("name", [b"two\nlines.ini", b'say "hi".ini', b"it's.ini",
                                  b"caf\xe9.ini", b"tab\there.ini"],
                         ids=["newline", "double-quote", "quote", "latin1", "tab"])
def test_odd_file_names_in_history(cli: Cli, repo: Path, name: bytes) -> None:
    key = fake_key_id()
    commit_file(repo, name, credentials(key))
    commit_file(repo, "later.txt", "nothing\n")
    code, doc, _ = scan(cli, "--history", repo, "--no-cache")
    assert code == 1
    [finding] = doc["findings"]
    # shown as in the working tree (test_worktree.py ODD_NAMES): control characters and
    # bytes that are not UTF-8 escaped, so a path is always one line
    shown = name.decode("latin-1").replace("\n", "\\n").replace("\t", "\\t") \
        .replace("\xe9", "\\xe9")
    assert (finding["key_id"], finding["path"]) == (key, shown)
    text = cli("scan", "--history", repo, "--no-cache")
    assert text.code == 1 and f"{shown}:2:21" in text.out


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_a_device_file_is_skipped(cli: Cli, tmp_path: Path) -> None:
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("no CAP_MKNOD here")
    (tmp_path / "k.ini").write_text(credentials())
    code, doc, _ = scan(cli, tmp_path)
    assert code == 1 and [f["path"] for f in doc["findings"]] == ["k.ini"]
    [skipped] = doc["skipped"]
    assert skipped["path"] == "null" and "not a regular file" in skipped["reason"]


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["rules: [unclosed\n", "no_such_setting: 1\n",
                                  "max_file_size: lots\n", "- a list\n- not a mapping\n"],
                         ids=["yaml", "unknown-key", "bad-size", "not-a-mapping"])
def test_a_malformed_config(cli: Cli, repo: Path, text: str) -> None:
    pytest.importorskip("keyscan.config", reason="config files arrive with issue 5")
    (repo / ".keyscan.yaml").write_text(text)
    commit_file(repo, "k.ini", credentials())
    result = cli("scan", repo)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith("keyscan: error: ") and ".keyscan.yaml" in line
    assert "Traceback" not in result.err and result.out == ""


# -- a report given to `keyscan deactivate --report` ------------------------------------------


def _reports(good: str) -> dict[str, bytes]:
    return {
        "truncated": good.encode()[: len(good) // 2],
        "empty": b"",
        "binary": os.urandom(256),
        "sarif": json.dumps({"version": "2.1.0", "runs": []}).encode(),
        "a list": b"[1, 2, 3]",
        "findings not a list": json.dumps({"findings": {"a": 1}}).encode(),
        "wrong types": json.dumps({"findings": [{"key_id": "x", "status": "bogus"}]}).encode(),
        "jsonl": b"\n".join(json.dumps(f).encode() for f in json.loads(good)["findings"]),
    }


def test_a_truncated_or_foreign_report_touches_nothing(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "k.ini").write_text(credentials())
    good = cli("scan", folder, "-f", "json").out
    from keyscan.aws import session

    def never(*_: object) -> None:
        raise AssertionError("AWS was contacted")
    monkeypatch.setattr(session, "boto_session", never)
    log = tmp_path / "audit.jsonl"
    for case, data in _reports(good).items():
        report = tmp_path / f"{case}.json"
        report.write_bytes(data)
        result = cli("deactivate", "--report", report, "--yes", "--audit-log", log)
        assert result.code == 2, (case, result.err)
        [line] = result.err.strip().splitlines()
        assert line.startswith("keyscan: error: ") and str(report) in line, case
        assert "keyscan scan --format json" in line  # what to do instead
        assert result.out == "" and not log.exists()
    missing = cli("deactivate", "--report", tmp_path / "nope.json", "--yes")
    assert missing.code == 2 and "cannot read the report" in missing.err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the repository away")
def test_a_repository_git_refuses_for_its_owner_says_so(repo: Path) -> None:
    """A checkout owned by another user (a CI container's uid): git's safe.directory
    check refuses it. keyscan says that, and what to run, instead of "not a git
    repository" (or scanning it as a plain folder)."""
    from repos import commit_all, run_keyscan

    (repo / "a.txt").write_text("a\n")
    commit_all(repo)
    sub = repo / "sub"
    sub.mkdir()
    for path in [repo, *repo.rglob("*")]:
        os.lchown(path, 65534, 65534)
    (repo / ".git" / "config").chmod(0o644)
    for args in (["--history"], ["--staged"], []):
        proc = run_keyscan(["scan", *args, sub])
        assert proc.returncode == 2, (args, proc.stderr)
        assert "safe.directory" in proc.stderr and "another user" in proc.stderr, args


def test_git_missing_from_path_is_a_clear_error_in_every_scan(repo: Path, tmp_path: Path
                                                             ) -> None:
    """A repository is found from its files before any git runs: with no git on PATH
    (a slim CI image), each scan says to install git; a history scan said "internal
    error: FileNotFoundError" (ImportError once gitpython opened the repository)."""
    import sys

    commit_file(repo, "a.txt", "a\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    for args in (["--history"], ["--history", "--no-cache"], [], ["--staged"]):
        proc = subprocess.run([sys.executable, "-m", "keyscan", "scan", *args, str(repo)],
                              capture_output=True, text=True, check=False,
                              env={**clean_env(), "PATH": str(empty)})
        assert (proc.returncode, proc.stderr.strip()) == (2, "keyscan: error: git is not "
                                                          "installed or not on PATH: "
                                                          "install git"), args


def test_a_repository_under_a_folder_named_like_a_variable(tmp_path: Path) -> None:
    """gitpython expands "$HOME" in a repository path unless told not to: it warned on
    stderr and looked for another folder. The history scan of a repository under a
    folder literally named `$HOME` finds a key in a commit message, with its author,
    and says nothing else."""
    from repos import run_keyscan

    repo = tmp_path / "$HOME" / "r"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    key = fake_key_id()
    git(repo, "commit", "-q", "--allow-empty", "-m", f"old key {key}",
        env=clean_env(GIT_AUTHOR_NAME="Odd", GIT_AUTHOR_EMAIL="odd@example.com"))

    result = run_keyscan(["scan", "--history", repo, "--no-cache", "--format", "json"])

    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("keyscan: 1 leak"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    [found] = json.loads(result.stdout)["findings"]
    assert (found["key_id"], found["commit"]["author_name"]) == (key, "Odd")
