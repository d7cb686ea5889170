"""`keyscan scan [PATH]`: the files as they are now, in a repository or a plain folder.

Every story builds real files (and real git repositories) in a temporary folder,
runs the CLI and checks what a user reads in the JSON report.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import fake_key_id, fake_secret
from repos import KEYSCAN_BIN, CliResult, clean_env, commit_all, git, run_keyscan

Cli = Callable[..., CliResult]


def scan(cli: Cli, target: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli("scan", target, "--format", "json", *extra)
    assert result.code in (0, 1), result.err
    return result.code, result.json


def paths_of(doc: dict[str, Any], status: str = "leak") -> list[str]:
    return sorted(f["path"] for f in doc["findings"] if f["status"] == status)


def credentials(key: str | None = None, secret: str | None = None) -> str:
    return (f"[default]\naws_access_key_id = {key or fake_key_id()}\n"
            f"aws_secret_access_key = {secret or fake_secret()}\n")


# -- which files -------------------------------------------------------------------------


def test_a_repository_scans_what_git_would_commit(cli: Cli, repo: Path) -> None:
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    (repo / "committed.ini").write_text(credentials())
    (repo / "forced.log").write_text(credentials())
    commit_all(repo)
    git(repo, "add", "-f", "forced.log")
    git(repo, "commit", "-qm", "force-add an ignored name")
    (repo / "new-untracked.env").write_text(credentials())
    (repo / "debug.log").write_text(credentials())
    (repo / "build").mkdir()
    (repo / "build" / "out.ini").write_text(credentials())

    code, doc = scan(cli, repo)
    assert code == 1
    assert paths_of(doc) == ["committed.ini", "forced.log", "new-untracked.env"]


def test_a_folder_git_ignores_named_on_the_command_line_says_so(cli: Cli, repo: Path) -> None:
    """`keyscan scan build/` where .gitignore has build/: nothing git would commit, so
    nothing read; it said '0 leaks, 0 files' and no more, as if the folder were clean."""
    (repo / ".gitignore").write_text("build/\n")
    (repo / "build" / "deep").mkdir(parents=True)
    (repo / "build" / "deep" / "k.ini").write_text(credentials())
    (repo / "empty").mkdir()
    commit_all(repo)
    for target in (repo / "build", repo / "build" / "deep"):
        result = cli("scan", target)
        assert result.code == 0
        assert "0 files" in result.err
        assert "ignored by git" in result.err and "none of its files was read" in result.err
    assert "ignored" not in cli("scan", repo / "empty").err  # empty, not ignored
    assert cli("scan", repo / "build" / "deep" / "k.ini").code == 1  # a file named: read


def test_a_file_deleted_from_the_work_tree_is_not_an_error(cli: Cli, repo: Path) -> None:
    (repo / "gone.ini").write_text(credentials())
    (repo / "kept.txt").write_text("hello\n")
    commit_all(repo)
    (repo / "gone.ini").unlink()
    code, doc = scan(cli, repo)
    assert code == 0 and doc["errors"] == [] and doc["findings"] == []


def test_a_subfolder_of_a_repository_scans_only_that_folder(cli: Cli, repo: Path) -> None:
    (repo / "app").mkdir()
    (repo / "app" / "config.ini").write_text(credentials())
    (repo / "other.ini").write_text(credentials())
    commit_all(repo)
    code, doc = scan(cli, repo / "app")
    assert code == 1
    assert paths_of(doc) == ["app/config.ini"]  # named from the root, as --staged names it
    code, doc = scan(cli, repo / "app" / "config.ini")
    assert paths_of(doc) == ["app/config.ini"]


def test_a_subfolder_scan_applies_the_roots_settings_ignore_file_and_baseline(
        cli: Cli, repo: Path) -> None:
    """Settings, .keyscanignore and baselines made at the root name paths from the root:
    they hold when only part of the repository is scanned."""
    for name in ("app", "fixtures", "known"):
        (repo / name).mkdir()
        (repo / name / "k.ini").write_text(credentials())
    commit_all(repo)
    (repo / ".keyscan.yaml").write_text("allow_paths: ['fixtures/*']\n")
    assert cli("baseline", repo, "--output", repo / "bl.json").code == 0  # app/, known/
    whole = cli("scan", repo, "-f", "json").json["findings"]
    ignored = next(f["fingerprint"] for f in whole if f["path"] == "app/k.ini")
    (repo / ".keyscanignore").write_text(f"{ignored}  # reviewed\n")
    assert cli("scan", repo / "app", "-f", "json").json["findings"] == []
    assert cli("scan", repo / "fixtures", "-f", "json").json["findings"] == []
    known = cli("scan", repo / "known", "-f", "json", "--baseline", repo / "bl.json")
    assert known.code == 0 and known.json["summary"]["baselined"] == 1
    assert known.json["baseline"]["stale"] == []  # the rest of the tree was not scanned


def test_a_folder_whose_name_starts_with_two_dots_is_named_from_the_root(
        cli: Cli, repo: Path) -> None:
    """`..cache` is inside the repository: its files are named from the root as every
    other subfolder's (it was taken for a path out of the repository, so allow_paths,
    .keyscanignore and baselines missed its findings)."""
    for name in ("..cache", "...", "..a/b"):
        (repo / name).mkdir(parents=True)
        (repo / name / "k.ini").write_text(credentials())
    commit_all(repo)
    whole = {f["path"]: f["fingerprint"] for f in scan(cli, repo)[1]["findings"]}
    assert sorted(whole) == [".../k.ini", "..a/b/k.ini", "..cache/k.ini"]
    for name in ("..cache", "...", "..a/b", "..a"):
        part = {f["path"]: f["fingerprint"] for f in scan(cli, repo / name)[1]["findings"]}
        assert part and part.items() <= whole.items(), name
    (repo / ".keyscan.yaml").write_text("allow_paths: ['..cache/*']\n")
    code, doc = scan(cli, repo / "..cache")
    assert code == 0 and doc["summary"]["allowed_by_path"] == 1


def test_a_plain_folder_scans_every_regular_file(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-repo"
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / ".env").write_text(credentials())
    (folder / "deep" / "er" / "x.log").write_text(credentials())
    (folder / "notes.md").write_text("nothing here\n")
    code, doc = scan(cli, folder)
    assert code == 1
    assert paths_of(doc) == [".env", "deep/er/x.log"]
    assert doc["summary"]["files"] == 3


def test_a_folder_thousands_deep_is_walked(cli: Cli, tmp_path: Path) -> None:
    """A plain folder 1500 levels deep (an unpacked archive can be): walked without
    recursion (os.walk raised RecursionError: an internal error, nothing scanned)."""
    folder = tmp_path / "deep"
    deepest = os.fsencode(folder)
    os.mkdir(deepest)
    for _ in range(1500):
        deepest = os.path.join(deepest, b"d")
        os.mkdir(deepest)
    with open(os.path.join(deepest, b"k.ini"), "w") as fh:
        fh.write(credentials())
    (folder / "top.ini").write_text(credentials())
    try:
        code, doc = scan(cli, folder)
        assert code == 1
        assert paths_of(doc) == ["d/" * 1500 + "k.ini", "top.ini"]
    finally:  # pytest's clean-up of tmp_path recurses too
        os.remove(os.path.join(deepest, b"k.ini"))
        while deepest != os.fsencode(folder):
            os.rmdir(deepest)
            deepest = os.path.dirname(deepest)


def test_a_file_whose_size_the_system_does_not_know_is_read_to_its_end(
        cli: Cli, tmp_path: Path) -> None:
    """/proc/PID/environ (and /sys, some FUSE files) say size 0 and hold more: read to
    the end, not to the size stat gave (one byte was read: a key there went unseen)."""
    key, secret = fake_key_id(), fake_secret()
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": key,
           "AWS_SECRET_ACCESS_KEY": secret}
    child = subprocess.Popen(["sleep", "30"], env=env)
    try:
        environ = Path(f"/proc/{child.pid}/environ")
        if not environ.exists() or environ.stat().st_size != 0:
            pytest.skip("needs Linux's /proc")
        code, doc = scan(cli, environ)
        assert code == 1
        assert [(f["key_id"], f["kind"]) for f in doc["findings"]] == [(key, "pair")]
        code, doc = scan(cli, environ, "--max-file-size", "10")
        assert code == 0 and doc["findings"] == []
        assert [s["path"] for s in doc["skipped"]] == ["environ"]
        assert "size limit" in doc["skipped"][0]["reason"]
    finally:
        child.kill()
        child.wait()


def test_a_single_file_can_be_scanned(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "one.ini").write_text(credentials())
    (tmp_path / "two.ini").write_text(credentials())
    code, doc = scan(cli, tmp_path / "one.ini")
    assert code == 1
    assert paths_of(doc) == ["one.ini"]


def test_an_empty_repository_is_clean(cli: Cli, repo: Path) -> None:
    result = cli("scan", repo)
    assert result.code == 0
    assert result.out == ""
    assert "0 leaks" in result.err


def test_an_empty_folder_is_clean(cli: Cli, tmp_path: Path) -> None:
    assert cli("scan", tmp_path).code == 0


def test_a_path_that_does_not_exist_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("scan", tmp_path / "no-such-dir")
    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.strip().splitlines()
    assert line.startswith("keyscan: error:") and "no-such-dir" in line
    assert "does not exist" in line


def test_the_default_target_is_the_current_folder(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text(credentials())
    result = cli("scan", "--format", "json", cwd=tmp_path)
    assert result.code == 1
    assert paths_of(result.json) == ["a.ini"]


# -- what is inside files ------------------------------------------------------------------


def test_a_key_in_a_binary_file_is_found(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    blob = bytes(range(256)) * 4 + b"\0\0" + key.encode() + b"\0\x01\x02" + bytes(range(256))
    (tmp_path / "app.bin").write_bytes(blob)
    code, doc = scan(cli, tmp_path)
    assert code == 1
    assert [f["key_id"] for f in doc["findings"]] == [key]


def test_a_key_in_a_sqlite_database_is_found(cli: Cli, tmp_path: Path) -> None:
    # SQLite stores a row's text values back to back: the key touches its neighbours
    key, other = fake_key_id(), fake_key_id("ASIA")
    with sqlite3.connect(tmp_path / "app.db") as db:
        db.execute("create table settings (id integer primary key, name text, value text,"
                   " note text)")
        db.execute("insert into settings (name, value, note) values"
                   " ('aws_access_key_id', ?, 'deploy user')", (key,))
        db.execute("create table cache (k text)")
        db.execute("insert into cache values (?)", (other,))
    db.close()
    code, doc = scan(cli, tmp_path)
    assert code == 1
    assert {f["key_id"] for f in doc["findings"]} == {key, other}
    assert {f["path"] for f in doc["findings"]} == {"app.db"}


def test_longer_text_in_a_binary_holds_no_key_ids(cli: Cli, tmp_path: Path) -> None:
    """A Unicode name table (in every build of a library that knows character names)
    stores names without spaces: "...CAUCASIANALBANIANCITATION..." holds an ASIA and
    16 capitals; an embedded base64 file (node's WebAssembly) holds ID-shaped runs too.
    A key ID stored next to other values, touching them, is still found."""
    key, touching, beside = fake_key_id(), fake_key_id(), fake_key_id()
    table = (b"PROSGEGRAMMENIDASIAOMEGAMUSICALSYMBOLTEMPUSIMPERFECTUM"
             b"DRYTATTOOEDZATACAUCASIANALBANIANCITATIONLZPALMYRENE"
             b"STACCATOTETRAGRAMDEFECTIVENESS")
    wasm = base64.b64encode(bytes(range(256)) * 4)
    embedded = wasm[:300] + b"y" + fake_key_id("ABIA").encode() + b"A+" + wasm[300:600]
    row = b"accessKeyId" + beside.encode() + fake_secret().encode() + b"deploy"  # SQLite-like
    blob = (b"\x7fELF\0\0" + table + b"\0" + embedded + b"\0\x03" + key.encode() + b"\0"
            + b"KEY" + touching.encode() + b"\x01\x02" + row + b"\0")
    (tmp_path / "names.so").write_bytes(blob)
    _code, doc = scan(cli, tmp_path)
    assert sorted(f["key_id"] for f in doc["findings"]) == sorted([key, touching, beside])


def test_a_wide_string_key_inside_a_binary_is_found(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    wide = f"AccessKey={key}".encode("utf-16-le")
    blob = b"MZ\x90\0" + bytes(range(256)) * 8 + wide + b"\0" * 64
    (tmp_path / "tool.exe").write_bytes(blob)
    _code, doc = scan(cli, tmp_path)
    assert [(f["key_id"], f["encoding"]) for f in doc["findings"]] == [(key, "utf-16")]


def test_a_key_in_an_uncompressed_archive_is_found(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    with zipfile.ZipFile(tmp_path / "bundle.jar", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("config/app.properties", f"aws.accessKeyId={key}\n")
    code, doc = scan(cli, tmp_path)
    assert code == 1
    assert [(f["path"], f["key_id"]) for f in doc["findings"]] == [("bundle.jar", key)]


def test_invalid_utf8_around_a_key(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    before = b"caf\xe9 \xc3\x28 \x80\x81\xfe "
    content = b"line one \xff\n" + before + key.encode() + b" \xe9t\xe9\n"
    (tmp_path / "latin1.txt").write_bytes(content)
    code, doc = scan(cli, tmp_path)
    assert code == 1
    (f,) = doc["findings"]
    assert (f["key_id"], f["line"]) == (key, 2)
    assert f["column"] == len(before.decode("utf-8", "replace")) + 1


@pytest.mark.parametrize("codec,bom", [
    ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""),
    ("utf-16-be", b""),
], ids=["le-bom", "be-bom", "le-no-bom", "be-no-bom"])
def test_utf16_files(cli: Cli, tmp_path: Path, codec: str, bom: bytes) -> None:
    key, secret = fake_key_id(), fake_secret()
    text = (f'Windows Registry Editor\r\n\r\n  "AccessKey"="{key}"\r\n'
            f'"SecretAccessKey"="{secret}"\r\n')
    (tmp_path / "export.reg").write_bytes(bom + text.encode(codec))
    code, doc = scan(cli, tmp_path, "--show-secrets")
    assert code == 1
    (f,) = doc["findings"]
    assert (f["kind"], f["key_id"], f["secret"]) == ("pair", key, secret)
    assert (f["line"], f["column"]) == (3, 16)


@pytest.mark.parametrize("bom", [b"\xff\xfe", b"\xfe\xff"], ids=["le", "be"])
def test_ascii_after_a_utf16_byte_order_mark_is_still_scanned(cli: Cli, tmp_path: Path,
                                                              bom: bytes) -> None:
    key, secret = fake_key_id(), fake_secret()
    text = f"aws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    (tmp_path / "x.txt").write_bytes(bom + text.encode())
    code, doc = scan(cli, tmp_path, "--show-secrets")
    assert code == 1
    (f,) = doc["findings"]
    assert (f["kind"], f["key_id"], f["secret"], f["encoding"]) == ("pair", key, secret, "plain")
    assert (f["line"], f["column"]) == (1, 21)  # the mark is not a character


def test_a_log_that_starts_in_utf16_and_goes_on_in_ascii(cli: Cli, tmp_path: Path) -> None:
    wide_key, key, secret = fake_key_id(), fake_key_id(), fake_secret()
    lines = [f"{i:04d} service started\r\n" for i in range(150)]
    lines[2] = f"0002 AccessKey={wide_key}\r\n"
    head = "".join(lines).encode("utf-16-le")
    assert len(head) > 4096  # longer than the part that tells UTF-16 from bytes
    tail = f"aws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    (tmp_path / "service.log").write_bytes(head + tail.encode())
    code, doc = scan(cli, tmp_path, "--show-secrets")
    assert code == 1
    found = sorted((f["line"], f["kind"], f["key_id"], f["secret"], f["encoding"])
                   for f in doc["findings"])
    # each once: the UTF-16 part's key is not reported again from the raw bytes
    assert found == [(3, "key-id", wide_key, None, "utf-16"),
                     (151, "pair", key, secret, "plain")]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_keyscan_allow_works_in_utf16_files_without_a_bom(cli: Cli, tmp_path: Path,
                                                          codec: str) -> None:
    text = f"key = {fake_key_id()}  # keyscan:allow\r\n"
    (tmp_path / "allowed.txt").write_bytes(text.encode(codec))
    code, doc = scan(cli, tmp_path)
    assert code == 0
    assert [f["status"] for f in doc["findings"]] == ["allowed"]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_line_endings_give_the_right_line_and_column(cli: Cli, tmp_path: Path,
                                                     newline: str) -> None:
    key = fake_key_id()
    lines = ["# settings", "", "name = demo", f"  key: '{key}'", "end"]
    (tmp_path / "f.yml").write_bytes(newline.join(lines).encode())
    _code, doc = scan(cli, tmp_path)
    (f,) = doc["findings"]
    assert (f["line"], f["column"]) == (4, 9)


def test_lines_and_columns_are_one_based(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    (tmp_path / "k").write_text(key)
    _code, doc = scan(cli, tmp_path)
    (f,) = doc["findings"]
    assert (f["line"], f["column"]) == (1, 1)


def test_columns_count_characters_not_bytes(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    (tmp_path / "k.txt").write_text(f"clé→ключ: {key}\n", encoding="utf-8")
    _code, doc = scan(cli, tmp_path)
    (f,) = doc["findings"]
    assert f["column"] == len("clé→ключ: ") + 1


# -- what is skipped, and said so --------------------------------------------------------------


def test_a_file_over_the_size_limit_is_skipped_and_reported(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "big.sql").write_text("-- dump\n" * 300 + credentials())
    (tmp_path / "small.ini").write_text(credentials())
    code, doc = scan(cli, tmp_path, "--max-file-size", "1k")
    assert code == 1
    assert paths_of(doc) == ["small.ini"]
    (skipped,) = doc["skipped"]
    assert skipped["path"] == "big.sql"
    assert "size limit" in skipped["reason"] and "--max-file-size" in skipped["reason"]
    assert doc["summary"]["skipped"] == 1

    text = cli("scan", tmp_path, "--max-file-size", "1k", "--verbose")
    assert "big.sql" in text.out and "size limit" in text.out
    assert "1 skipped" in text.err
    quiet = cli("scan", tmp_path, "--max-file-size", "1k")
    assert "1 skipped" in quiet.err  # never silent, even without --verbose


def test_the_size_limit_also_applies_in_a_repository(cli: Cli, repo: Path) -> None:
    (repo / "big.txt").write_text("x" * 5000 + fake_key_id())
    commit_all(repo)
    code, doc = scan(cli, repo, "--max-file-size", "4K")
    assert code == 0
    assert [s["path"] for s in doc["skipped"]] == ["big.txt"]


def test_symlinks_are_not_followed_by_default(cli: Cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secrets.ini").write_text(credentials())
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "readme.txt").write_text("hi\n")
    (folder / "linked.ini").symlink_to(outside / "secrets.ini")
    (folder / "linked-dir").symlink_to(outside, target_is_directory=True)

    code, doc = scan(cli, folder)
    assert code == 0
    assert sorted(s["path"] for s in doc["skipped"]) == ["linked-dir", "linked.ini"]
    assert all("symlink" in s["reason"] for s in doc["skipped"])

    code, doc = scan(cli, folder, "--follow-symlinks")
    assert code == 1
    assert paths_of(doc) == ["linked-dir/secrets.ini", "linked.ini"]


def test_a_symlink_loop_does_not_hang(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a" / "k.ini").write_text(credentials())
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    _code, doc = scan(cli, tmp_path, "--follow-symlinks")
    assert paths_of(doc) == ["a/k.ini"]
    # neither the loop nor a link to nothing is dropped silently
    why = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert why.keys() == {"a/loop", "gone"}
    assert "loop" in why["a/loop"] and "does not exist" in why["gone"]


def test_a_committed_symlink_is_not_followed(cli: Cli, repo: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.ini").write_text(credentials())
    (repo / "link.ini").symlink_to(tmp_path / "secret.ini")
    commit_all(repo)
    code, doc = scan(cli, repo)
    assert code == 0
    assert [s["path"] for s in doc["skipped"]] == ["link.ini"]


def test_a_fifo_is_skipped_and_the_scan_continues(cli: Cli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "k.ini").write_text(credentials())
    code, doc = scan(cli, tmp_path)
    assert code == 1
    assert paths_of(doc) == ["k.ini"]
    assert [s["path"] for s in doc["skipped"]] == ["pipe"]


def _unreadable_story(folder: Path, repo: bool) -> None:
    if repo:
        git(folder, "init", "-q")
    (folder / "locked.ini").write_text(credentials())
    (folder / "locked-dir").mkdir()
    (folder / "locked-dir" / "k.ini").write_text(credentials())
    (folder / "open.ini").write_text(credentials())


def _lock(folder: Path) -> None:
    (folder / "locked.ini").chmod(0)
    (folder / "locked-dir").chmod(0)


def _check_unreadable(code: int, doc: dict[str, Any]) -> None:
    assert code == 1
    assert paths_of(doc) == ["open.ini"]
    skipped = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert sorted(skipped) == ["locked-dir", "locked.ini"]
    assert all("permission denied" in reason for reason in skipped.values())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("repo", [False, True], ids=["folder", "repo"])
def test_unreadable_files_and_folders_are_reported_and_the_scan_continues(
        cli: Cli, tmp_path: Path, repo: bool) -> None:
    _unreadable_story(tmp_path, repo)
    _lock(tmp_path)
    try:
        _check_unreadable(*scan(cli, tmp_path))
    finally:
        (tmp_path / "locked.ini").chmod(0o600)
        (tmp_path / "locked-dir").chmod(0o700)


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to drop to an unprivileged user")
@pytest.mark.parametrize("repo", [False, True], ids=["folder", "repo"])
def test_unreadable_files_and_folders_are_reported_for_an_ordinary_user(repo: bool) -> None:
    """The same story when the suite runs as root: keyscan runs as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="keyscan-unreadable-"))
    try:
        _unreadable_story(folder, repo)
        for path in [folder, *folder.rglob("*")]:
            os.lchown(path, NOBODY, NOBODY)  # git refuses a repository owned by another user
        _lock(folder)
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             str(KEYSCAN_BIN), "scan", str(folder), "--format", "json"],
            capture_output=True, text=True, check=False, cwd=folder,
            env=clean_env(HOME=str(folder)))
        assert proc.stdout, proc.stderr
        _check_unreadable(proc.returncode, json.loads(proc.stdout))
    finally:
        (folder / "locked-dir").chmod(0o700)
        shutil.rmtree(folder)


# -- names -----------------------------------------------------------------------------

ODD_NAMES = {
    "space": (b"my config file.ini", "my config file.ini"),
    "newline": (b"two\nlines.ini", "two\\nlines.ini"),
    "tab": (b"tab\there.ini", "tab\\there.ini"),
    "latin1": (b"caf\xe9.ini", "caf\\xe9.ini"),
    "unicode": ("naïve ключ.ini".encode(), "naïve ключ.ini"),
}


@pytest.mark.parametrize("case", sorted(ODD_NAMES))
@pytest.mark.parametrize("where", ["folder", "repo-tracked", "repo-untracked"])
def test_odd_file_names(cli: Cli, tmp_path: Path, case: str, where: str) -> None:
    raw, shown = ODD_NAMES[case]
    target = tmp_path / "t"
    target.mkdir()
    if where != "folder":
        git(target, "init", "-q")
    sub = os.path.join(os.fsencode(target), b"sub dir")
    os.mkdir(sub)
    with open(os.path.join(sub, raw), "wb") as fh:
        fh.write(credentials().encode())
    if where == "repo-tracked":
        commit_all(target)
    code, doc = scan(cli, target)
    assert code == 1
    assert paths_of(doc) == [f"sub dir/{shown}"]
    text = cli("scan", target)
    assert f"sub dir/{shown}:2:21" in text.out


# -- inline allow ----------------------------------------------------------------------


def test_keyscan_allow_suppresses_a_finding_and_the_summary_counts_it(cli: Cli,
                                                                       tmp_path: Path) -> None:
    key = fake_key_id()
    (tmp_path / "fixture.py").write_text(
        f'TEST_KEY = "{key}"  # keyscan:allow (a revoked key used in tests)\n')
    result = cli("scan", tmp_path)
    assert result.code == 0
    assert key not in result.out
    assert "1 allowed by keyscan:allow" in result.err
    code, doc = scan(cli, tmp_path)
    assert code == 0
    assert doc["summary"]["allowed"] == 1 and doc["summary"]["leaks"] == 0
    assert [f["status"] for f in doc["findings"]] == ["allowed"]
    verbose = cli("scan", tmp_path, "--verbose")
    assert "ALLOWED" in verbose.out and "fixture.py:1:13" in verbose.out


def test_keyscan_allow_only_covers_its_own_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text(f"a = {fake_key_id()}  # keyscan:allow\n" + "\n" * 8
                                    + f"b = {fake_key_id()}\n")
    code, doc = scan(cli, tmp_path)
    assert code == 1
    assert sorted(f["status"] for f in doc["findings"]) == ["allowed", "leak"]
    assert doc["summary"]["allowed"] == 1


def test_keyscan_allow_on_a_key_id_does_not_allow_a_secret_on_another_line(
        cli: Cli, tmp_path: Path) -> None:
    """An allowed example key ID and, two lines below, a real secret: they pair, and the
    pair is a leak (the mark covers its line only). Marking both lines allows it."""
    key, secret = fake_key_id(), fake_secret()
    text = (f'EXAMPLE_ID = "{key}"  # keyscan:allow\n\n'
            f'AWS_SECRET_ACCESS_KEY = "{secret}"\n')
    (tmp_path / "settings.py").write_text(text)
    code, doc = scan(cli, tmp_path)
    assert code == 1 and [f["status"] for f in doc["findings"]] == ["leak"]
    (tmp_path / "settings.py").write_text(text.replace('"\n', '"  # keyscan:allow\n'))
    code, doc = scan(cli, tmp_path)
    assert code == 0 and [f["status"] for f in doc["findings"]] == ["allowed"]


def test_many_files_one_bad_does_not_stop_the_scan(cli: Cli, tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i:02}.txt").write_text(f"value {i}\n")
    (tmp_path / "f15.txt").write_bytes(b"\xff\xfe\x00\xd8")  # a BOM and half a surrogate
    (tmp_path / "f29.txt").write_text(credentials())
    os.mkfifo(tmp_path / "f16.txt.fifo")
    code, doc = scan(cli, tmp_path)
    assert code == 1 and paths_of(doc) == ["f29.txt"]


def test_the_installed_command_scans_a_repository(repo: Path) -> None:
    (repo / "k.ini").write_text(credentials())
    commit_all(repo)
    proc = run_keyscan(["scan", "."], cwd=repo)
    assert proc.returncode == 1
    assert "k.ini:2:21" in proc.stdout
    assert "\033[" not in proc.stdout  # not a TTY: no colour
    assert "leak" in proc.stderr


def test_a_nested_repository_is_reported_not_silently_skipped(cli: Cli, repo: Path) -> None:
    nested = repo / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "k.ini").write_text(credentials())
    (repo / "a.txt").write_text("hi\n")
    code, doc = scan(cli, repo)
    assert code == 0
    (skipped,) = doc["skipped"]
    assert skipped["path"].rstrip("/") == "vendor/lib"
    assert "scan it on its own" in skipped["reason"]
    code, doc = scan(cli, nested)
    assert code == 1 and paths_of(doc) == ["k.ini"]


def test_the_console_script_flushes_everything_before_it_exits(tmp_path: Path) -> None:
    """The installed `keyscan` skips the interpreter's teardown: a report far larger than
    a pipe's buffer still arrives whole, the exit code is kept, and a reader that stops
    early gets no traceback."""
    keys = [fake_key_id() for _ in range(400)]
    (tmp_path / "many.txt").write_text("".join(f"id {k}\n" for k in keys))
    proc = subprocess.run([str(KEYSCAN_BIN), "scan", str(tmp_path), "--format", "json"],
                          capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 1
    assert len(proc.stdout) > 65536
    assert {f["key_id"] for f in json.loads(proc.stdout)["findings"]} == set(keys)
    assert "leaks" in proc.stderr
    head = subprocess.run(f"'{KEYSCAN_BIN}' scan '{tmp_path}' --format json | head -c 10",
                          shell=True, capture_output=True, text=True, env=clean_env())
    assert head.stdout == proc.stdout[:10]
    assert "Traceback" not in head.stderr


def test_a_file_swapped_after_its_check_is_never_followed_nor_waited_on(tmp_path: Path) -> None:
    """Between the check of a path and its opening, a symlink or a FIFO may take the
    file's place: the read neither follows the link nor blocks on the FIFO."""
    import contextlib
    import errno
    import time

    from keyscan.sources.worktree import _read_file

    secret = tmp_path / "outside.txt"
    secret.write_text("not yours\n")
    link = tmp_path / "link.txt"
    link.symlink_to(secret)
    with pytest.raises(OSError) as exc:
        _read_file(os.fsencode(link), 10, 1 << 20)
    assert exc.value.errno == errno.ELOOP
    assert _read_file(os.fsencode(link), 10, 1 << 20, follow_symlinks=True) == b"not yours\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with contextlib.suppress(BlockingIOError):  # no writer: at once, empty or EAGAIN
        assert _read_file(os.fsencode(fifo), 0, 1 << 20) == b""
    assert time.monotonic() - started < 5


def test_a_repositorys_git_folder_named_is_a_clear_error(cli: Cli, repo: Path) -> None:
    """`keyscan scan repo/.git` passed on git's 'must be run in a work tree'."""
    for folder in (repo / ".git", repo / ".git" / "objects"):
        result = cli("scan", folder)
        assert result.code == 2
        assert "in the repository's git folder" in result.err
        assert f"keyscan scan --history {repo}" in result.err
