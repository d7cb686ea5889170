"""`keyscan scan --staged`: what the next commit would hold, read from the index.

Also as a plain git hook (no framework), including `git commit -a` and `git commit PATH`,
where git hands the hook a temporary index through GIT_INDEX_FILE.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import fake_key_id, fake_secret
from repos import KEYSCAN_BIN, CliResult, clean_env, commit_all, git, run_keyscan

Cli = Callable[..., CliResult]


def staged_json(cli: Cli, repo: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli("scan", "--staged", "--format", "json", *extra, cwd=repo)
    assert result.code in (0, 1), result.err
    return result.code, result.json


def leak_paths(doc: dict[str, Any]) -> list[str]:
    return sorted(f["path"] for f in doc["findings"] if f["status"] == "leak")


@pytest.fixture
def project(repo: Path) -> Path:
    """A repository with one commit and nothing staged."""
    (repo / "README.md").write_text("# demo\n")
    (repo / "app.py").write_text("print('hi')\n")
    commit_all(repo, "initial")
    return repo


def test_a_staged_key_is_found_with_its_place(cli: Cli, project: Path) -> None:
    key = fake_key_id()
    (project / "settings.py").write_text(f"import os\n\nAWS_KEY = '{key}'\n")
    git(project, "add", "settings.py")
    code, doc = staged_json(cli, project)
    assert code == 1
    assert doc["mode"] == "staged"
    (f,) = doc["findings"]
    assert (f["path"], f["line"], f["column"], f["key_id"]) == ("settings.py", 3, 12, key)
    assert f["source"] == "staged" and f["blob"]


def test_a_staged_file_starting_with_a_byte_order_mark_is_scanned(cli: Cli,
                                                                  project: Path) -> None:
    key = fake_key_id()
    (project / "notes.txt").write_bytes(b"\xff\xfe" + f"aws_access_key_id = {key}\n".encode())
    git(project, "add", "notes.txt")
    code, doc = staged_json(cli, project)
    assert code == 1
    assert [(f["path"], f["key_id"], f["line"]) for f in doc["findings"]] == [
        ("notes.txt", key, 1)]


def test_nothing_staged_is_clean(cli: Cli, project: Path) -> None:
    result = cli("scan", "--staged", cwd=project)
    assert result.code == 0 and result.out == ""


def test_the_index_is_scanned_not_the_working_file(cli: Cli, project: Path) -> None:
    key = fake_key_id()
    target = project / "config.ini"
    target.write_text(f"key = {key}\n")
    git(project, "add", "config.ini")
    target.write_text("key = read from the environment\n")  # fixed, but not staged
    code, doc = staged_json(cli, project)
    assert code == 1 and leak_paths(doc) == ["config.ini"]


def test_an_unstaged_key_does_not_block(cli: Cli, project: Path) -> None:
    target = project / "config.ini"
    target.write_text("key = from the environment\n")
    git(project, "add", "config.ini")
    target.write_text(f"key = {fake_key_id()}\n")  # in the work tree only
    code, doc = staged_json(cli, project)
    assert code == 0 and doc["findings"] == []


def test_only_changed_files_are_scanned(cli: Cli, repo: Path) -> None:
    (repo / "old.ini").write_text(f"key = {fake_key_id()}\n")
    commit_all(repo, "an old leak already in history")
    (repo / "new.txt").write_text("hello\n")
    git(repo, "add", "new.txt")
    code, doc = staged_json(cli, repo)
    assert code == 0 and doc["summary"]["files"] == 1


def test_before_the_first_commit_everything_staged_is_scanned(cli: Cli, repo: Path) -> None:
    (repo / "a.ini").write_text(f"aws_secret_access_key = {fake_secret()}\n")
    (repo / "b.txt").write_text("fine\n")
    git(repo, "add", ".")
    code, doc = staged_json(cli, repo)
    assert code == 1 and leak_paths(doc) == ["a.ini"]


def test_an_empty_repository_with_nothing_staged_is_clean(cli: Cli, repo: Path) -> None:
    assert cli("scan", "--staged", cwd=repo).code == 0


def test_a_staged_deletion_is_not_a_leak(cli: Cli, repo: Path) -> None:
    (repo / "k.ini").write_text(f"key = {fake_key_id()}\n")
    commit_all(repo)
    git(repo, "rm", "-q", "k.ini")
    code, doc = staged_json(cli, repo)
    assert code == 0 and doc["findings"] == []


def test_a_renamed_file_with_a_key_is_still_reported(cli: Cli, repo: Path) -> None:
    (repo / "k.ini").write_text(f"key = {fake_key_id()}\n")
    commit_all(repo)
    git(repo, "mv", "k.ini", "moved.ini")
    code, doc = staged_json(cli, repo)
    assert code == 1 and leak_paths(doc) == ["moved.ini"]


def test_paths_are_from_the_repository_root_when_run_in_a_subfolder(cli: Cli,
                                                                    project: Path) -> None:
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    (sub / "k.py").write_text(f"K = '{fake_key_id()}'\n")
    git(project, "add", ".")
    result = cli("scan", "--staged", "--format", "json", cwd=sub)
    assert result.code == 1
    assert leak_paths(result.json) == ["src/deep/k.py"]


def test_odd_names_and_binary_content_in_the_index(cli: Cli, project: Path) -> None:
    key = fake_key_id()
    raw_names = [b"with space.ini", b"new\nline.ini", b"caf\xe9.ini"]
    for name in raw_names:
        with open(os.path.join(os.fsencode(project), name), "wb") as fh:
            fh.write(f"aws_access_key_id = {key}\n".encode())
    (project / "blob.bin").write_bytes(b"\0\1\2" + key.encode() + b"\0\xff")
    git(project, "add", ".")
    code, doc = staged_json(cli, project)
    assert code == 1
    assert leak_paths(doc) == ["blob.bin", "caf\\xe9.ini", "new\\nline.ini", "with space.ini"]


def test_a_staged_file_over_the_size_limit_stops_the_commit(cli: Cli, project: Path) -> None:
    """The hook fails closed: a staged file it cannot read would go in unscanned (a key
    at the end of a big dump), so it says which and how to scan it, and exits 2."""
    (project / "dump.sql").write_text("-- x\n" * 1000 + f"{fake_key_id()}\n")
    git(project, "add", "dump.sql")
    result = cli("scan", "--staged", "--format", "json", "--max-file-size", "1k", cwd=project)
    assert result.code == 2
    assert [s["path"] for s in result.json["skipped"]] == ["dump.sql"]
    assert "dump.sql" in result.json["errors"][0] and "max_file_size" in result.err
    code, doc = staged_json(cli, project, "--max-file-size", "1M")
    assert code == 1 and leak_paths(doc) == ["dump.sql"]


def test_a_staged_object_missing_from_the_store_stops_the_commit_and_says_why(
        cli: Cli, project: Path) -> None:
    """The advice was to raise the size limit, whatever the cause."""
    missing = "1" * 40
    git(project, "update-index", "--add", "--cacheinfo", f"100644,{missing},gone.txt")
    result = cli("scan", "--staged", cwd=project)
    assert result.code == 2
    assert "missing from the object store" in result.err and "git fsck" in result.err
    assert "max_file_size" not in result.err


def test_the_first_commit_of_a_sha256_repository(cli: Cli, tmp_path: Path) -> None:
    repo = tmp_path / "sha256"
    repo.mkdir()
    git(repo, "init", "-q", "--object-format=sha256")
    (repo / "clean.txt").write_text("fine\n")
    git(repo, "add", ".")
    assert staged_json(cli, repo)[0] == 0
    (repo / "k.ini").write_text(f"key = {fake_key_id()}\n")
    git(repo, "add", ".")
    code, doc = staged_json(cli, repo)
    assert code == 1 and leak_paths(doc) == ["k.ini"]


def test_staged_outside_a_repository_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("scan", "--staged", tmp_path)
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "not inside a git work tree" in line


def test_a_temporary_index_from_git_index_file_is_honoured(project: Path) -> None:
    """What `git commit -a` does: stage into a temporary index and point the hook at it."""
    key = fake_key_id()
    (project / "app.py").write_text(f"KEY = '{key}'\n")
    temp_index = project / ".git" / "next-index.tmp"
    env = clean_env(GIT_INDEX_FILE=str(temp_index))
    git(project, "read-tree", "HEAD", env=env)
    git(project, "add", "app.py", env=env)

    with_temp = run_keyscan(["scan", "--staged", "--format", "json"], cwd=project, env=env)
    assert with_temp.returncode == 1, with_temp.stderr
    assert key in with_temp.stdout
    with_default = run_keyscan(["scan", "--staged"], cwd=project)
    assert with_default.returncode == 0, with_default.stdout


# -- as a plain git hook ----------------------------------------------------------------------


@pytest.fixture
def hooked(project: Path) -> Path:
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\nexec '{KEYSCAN_BIN}' scan --staged\n")
    hook.chmod(0o755)
    return project


def test_a_plain_hook_blocks_git_commit_a(hooked: Path) -> None:
    key = fake_key_id()
    (hooked / "app.py").write_text(f"KEY = '{key}'\n")  # tracked, modified, not staged
    proc = git(hooked, "commit", "-a", "-m", "oops", check=False)
    assert proc.returncode != 0
    assert "app.py:1:8" in proc.stdout + proc.stderr
    assert git(hooked, "rev-list", "--count", "HEAD").stdout.strip() == "1"


def test_a_plain_hook_blocks_a_partial_commit_of_a_path(hooked: Path) -> None:
    (hooked / "app.py").write_text(f"KEY = '{fake_key_id()}'\n")
    (hooked / "README.md").write_text("# demo, edited\n")
    git(hooked, "add", "README.md")
    proc = git(hooked, "commit", "-m", "only app.py", "--", "app.py", check=False)
    assert proc.returncode != 0
    assert "app.py" in proc.stdout + proc.stderr


def test_a_plain_hook_lets_a_clean_commit_a_through(hooked: Path) -> None:
    (hooked / "app.py").write_text("print('clean')\n")
    (hooked / "config.ini").write_text(f"key = {fake_key_id()}\n")  # untracked: not in -a
    proc = git(hooked, "commit", "-a", "-m", "clean", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_staged_under_pre_commit_refs_scans_the_commits_they_name(cli: Cli, project: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    """pre-commit exports PRE_COMMIT_FROM_REF / PRE_COMMIT_TO_REF for `pre-commit run
    --from-ref A --to-ref B`, with nothing staged: the hook's `--staged` then scans A..B."""
    base = git(project, "rev-parse", "HEAD").stdout.strip()
    key = fake_key_id()
    (project / "deploy.cfg").write_text(f"aws_access_key_id = {key}\n")
    git(project, "add", "deploy.cfg")
    git(project, "commit", "-q", "-m", "key")
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", base)
    monkeypatch.setenv("PRE_COMMIT_TO_REF", "HEAD")

    code, doc = staged_json(cli, project)

    assert code == 1 and doc["mode"] == "history"
    assert [(f["path"], f["key_id"]) for f in doc["findings"]] == [("deploy.cfg", key)]
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", "HEAD")
    assert staged_json(cli, project)[0] == 0


def test_files_named_are_scanned_from_the_index_changed_or_not(cli: Cli, repo: Path) -> None:
    """The hook's file list (pre-commit passes every tracked file for `pre-commit run
    --all-files`): a key committed past the hook is found in an unchanged file."""
    key, fixed_key = fake_key_id(), fake_key_id()
    (repo / "src").mkdir()
    (repo / "src" / "old.ini").write_text(f"key = {key}\n")
    (repo / "app.py").write_text("print('hi')\n")
    commit_all(repo, "a key committed with --no-verify")
    (repo / "src" / "old.ini").write_text(f"key = {fixed_key}\n")  # in the work tree only
    assert staged_json(cli, repo)[0] == 0  # nothing staged: nothing changed
    code, doc = staged_json(cli, repo, "--files", "app.py", "src/old.ini")
    assert code == 1 and doc["summary"]["files"] == 2
    assert [(f["path"], f["key_id"]) for f in doc["findings"]] == [("src/old.ini", key)]
    # a folder names the files below it; from a subfolder, names are from there
    assert leak_paths(staged_json(cli, repo, "--files", "src")[1]) == ["src/old.ini"]
    result = cli("scan", "--staged", "--format", "json", "--files", "old.ini",
                 cwd=repo / "src")
    assert result.code == 1 and leak_paths(result.json) == ["src/old.ini"]
    # a name the index does not hold is said, not passed over
    code, doc = staged_json(cli, repo, "--files", "app.py", "notes.txt")
    assert code == 0 and doc["skipped"] == [
        {"path": "notes.txt", "reason": "not in the index: nothing staged to scan "
                                        "(`git add` it first)"}]
    # --files with no name (pre-commit with no file to pass): what is staged, as without
    assert staged_json(cli, repo, "--files")[1]["summary"]["files"] == 0


def test_files_names_literal_paths_and_only_goes_with_staged(
        cli: Cli, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "[a].txt").write_text(f"key = {fake_key_id()}\n")
    (repo / "a.txt").write_text("nothing\n")
    commit_all(repo)
    code, doc = staged_json(cli, repo, "--files", "[a].txt")
    assert code == 1 and leak_paths(doc) == ["[a].txt"]  # not the glob [a] -> a.txt
    code, doc = staged_json(cli, repo, "--files", "*.txt")
    assert code == 0 and [s["path"] for s in doc["skipped"]] == ["*.txt"]
    with pytest.raises(SystemExit) as exc:
        cli("scan", repo, "--files", "a.txt")
    assert exc.value.code == 2 and "use it with --staged" in capsys.readouterr().err


def test_files_after_a_double_dash_are_files_even_named_like_options(cli: Cli,
                                                                    repo: Path) -> None:
    """The hook's entry is `--files --`: pre-commit appends the staged names, and a file
    named `--help` printed the help and exited 0 (the key beside it passed), `-rf` made
    the hook fail on an unknown option, and `--` was dropped unscanned."""
    (repo / "app.py").write_text("print('hi')\n")
    commit_all(repo)
    names = ["--help", "-rf", "--", "--version", "deploy.cfg"]
    for name in names:
        (repo / name).write_text(f"aws_access_key_id = {fake_key_id()}\n")
    git(repo, "add", "--", *names)
    code, doc = staged_json(cli, repo, "--files", "--", *names)
    assert code == 1 and leak_paths(doc) == sorted(names)
    assert staged_json(cli, repo, "--files", "--", "app.py")[0] == 0
    assert staged_json(cli, repo, "--files", "--")[1]["summary"]["files"] == 5  # all staged


def test_a_long_file_list_is_looked_up_in_one_listing_of_the_index(cli: Cli,
                                                                    repo: Path) -> None:
    """`pre-commit run --all-files` passes every tracked file, ~10k names a batch: git
    matched each index entry against each name (0.7 s for 10k names in a 10k-file index,
    growing with both). Past a few hundred names the index is listed once and the names
    looked up: the same entries, the same names said to be unmatched."""
    import time

    from keyscan import gitrepo

    key = fake_key_id()
    (repo / "sub").mkdir()
    (repo / "sub" / "deploy.cfg").write_text(f"aws_access_key_id = {key}\n")
    (repo / "top.txt").write_text("nothing\n")
    commit_all(repo)
    blob = git(repo, "hash-object", "-w", "top.txt").stdout.strip()
    subprocess.run(["git", "-C", str(repo), "update-index", "--index-info"], check=True,
                   input="".join(f"100644 {blob}\td/f{i}.txt\n" for i in range(10_000)),
                   text=True, env=clean_env())
    names = [f"../d/f{i}.txt" for i in range(10_000)]

    started = time.perf_counter()
    entries, unmatched = gitrepo.index_entries(repo / "sub", [*names, "deploy.cfg", "gone"])
    took = time.perf_counter() - started

    assert len(entries) == 10_001 and unmatched == ["gone"]
    assert took < 0.3, took  # git's matching took 0.7 s
    # looked up as git matches them: folders, `./`, `..`, a trailing slash
    few = ["../d/f1.txt", "deploy.cfg", "./deploy.cfg", "../sub", "../top.txt/", "../d/f2"]
    by_git = gitrepo.index_entries(repo / "sub", few)
    by_lookup = gitrepo.index_entries(repo / "sub", [*few, *["x"] * 300])
    assert by_lookup == (by_git[0], [*by_git[1], *["x"] * 300])
    assert by_git[1] == ["../top.txt/", "../d/f2"]
    result = cli("scan", "--staged", "--format", "json", "--files", "--", *names, "deploy.cfg",
                 cwd=repo / "sub")
    assert result.code == 1 and leak_paths(result.json) == ["sub/deploy.cfg"]
    assert result.json["summary"]["files"] == 10_001


def test_a_path_with_a_merge_conflict_is_said_not_passed_over(cli: Cli, project: Path) -> None:
    """In a merge with conflicts the index holds no one content of a path (stages 1-3):
    `--staged` listed nothing and said `0 files`, whatever the other branch brought."""
    git(project, "checkout", "-q", "-b", "other")
    (project / "app.py").write_text(f"KEY = '{fake_key_id()}'\n")
    commit_all(project, "theirs")
    git(project, "checkout", "-q", "-")
    (project / "app.py").write_text("print('ours')\n")
    commit_all(project, "ours")
    assert git(project, "merge", "other", check=False).returncode != 0  # the conflict

    code, doc = staged_json(cli, project)
    assert code == 0 and doc["skipped"] == [{"path": "app.py", "reason": (
        "unmerged: a conflict to resolve, not scanned (`git add` it once resolved, then "
        "scan again)")}]
    git(project, "add", "app.py")  # resolved as it is, conflict markers and key included
    code, doc = staged_json(cli, project)
    assert code == 1 and leak_paths(doc) == ["app.py"]


def test_files_from_outside_the_repository_scanned_is_a_clear_error(
        cli: Cli, project: Path, tmp_path: Path) -> None:
    """`--files` names files from the current folder: from another repository, its
    index was read and its blobs looked up in the one scanned, and the hook said the
    repository was damaged (`git fsck`)."""
    (project / "deploy.cfg").write_text(f"aws_access_key_id = {fake_key_id()}\n")
    git(project, "add", "deploy.cfg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git(elsewhere, "init", "-q")
    (elsewhere / "deploy.cfg").write_text("nothing\n")
    git(elsewhere, "add", "deploy.cfg")
    for cwd in (elsewhere, tmp_path):
        result = cli("scan", "--staged", project, "--files", "deploy.cfg", cwd=cwd)
        assert result.code == 2 and "git fsck" not in result.err
        assert f"not in the repository at {project.resolve()}" in result.err
    result = cli("scan", "--staged", project, "--files", "deploy.cfg", cwd=project)
    assert result.code == 1
