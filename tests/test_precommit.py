"""keyscan as a pre-commit hook: the README's plain hook, and the real pre-commit framework
installing keyscan's hook from this repository and running it.

pre-commit clones the project at a commit (its HEAD) and pip-installs it into a hook
environment, so this checks the *committed* `.pre-commit-hooks.yaml` and code:
uncommitted changes in the project are not seen. The first commit builds the hook
environment (pip, about half a minute); PRE_COMMIT_HOME is shared by the session so
that happens once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import fake_key_id, fake_secret
from repos import KEYSCAN_BIN, PROJECT, clean_env, git

INSTALL_TIMEOUT = 600  # seconds: the first commit pip-installs keyscan and its dependencies
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)

PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture(scope="session")
def project_rev() -> str:
    proc = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("the project is not a git checkout: pre-commit needs a rev to install")
    return proc.stdout.strip()


@pytest.fixture
def hook_env(pre_commit_home: Path) -> dict[str, str]:
    return clean_env(PRE_COMMIT_HOME=str(pre_commit_home))


@pytest.fixture
def framework_repo(tmp_path: Path, project_rev: str, hook_env: dict[str, str]) -> Path:
    """A repository whose .pre-commit-config.yaml uses keyscan's hook, installed."""
    repo = tmp_path / "service"
    repo.mkdir()
    git(repo, "init", "-q", env=hook_env)
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {PROJECT}\n    rev: {project_rev}\n    hooks:\n      - id: keyscan\n")
    (repo / "app.py").write_text("print('hello')\n")
    subprocess.run([*PRE_COMMIT, "install"], cwd=repo, env=hook_env, check=True,
                   capture_output=True)
    git(repo, "add", ".", env=hook_env)
    first = commit(repo, hook_env, "initial")
    assert first.returncode == 0, first.stdout + first.stderr
    return repo


def test_the_hook_definition_scans_what_is_staged() -> None:
    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks["keyscan"]
    # the files pre-commit passes are read from the index, not the work tree
    # after `--`, a file named `--help` or `-rf` is a file, not an option
    assert hook["entry"].split() == ["keyscan", "scan", "--staged", "--files", "--"]
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    assert hook.get("always_run") is True  # with no file: all staged changes


def readme_plain_hook() -> str:
    """The README's shell lines that install the hook without the framework."""
    section = (PROJECT / "README.md").read_text().split("## Pre-commit hook")[1]
    after = section.split("## ")[0].split("Without it")[1]
    return after.split("```sh\n")[1].split("```")[0]


def test_the_readme_plain_hook_blocks_a_key(repo: Path) -> None:
    """The README's hook, installed as written, runs on `git commit` and blocks a key."""
    env = clean_env(PATH=f"{KEYSCAN_BIN.parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["sh", "-c", readme_plain_hook()], cwd=repo, env=env, check=True)
    (repo / "app.py").write_text("print('hello')\n")
    git(repo, "add", "app.py", env=env)
    assert commit(repo, env, "initial").returncode == 0
    (repo / "deploy.cfg").write_text(f"aws_access_key_id = {fake_key_id()}\n")
    git(repo, "add", "deploy.cfg", env=env)

    blocked = commit(repo, env, "add deploy config")

    assert blocked.returncode != 0 and commits(repo) == 1
    assert "deploy.cfg:1:21" in blocked.stdout + blocked.stderr


def commit(repo: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), "commit", "-m", message], env=env,
                          capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)


def commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD").stdout)


def test_a_commit_with_a_key_is_blocked_and_told_what_to_do(framework_repo: Path,
                                                           hook_env: dict[str, str]) -> None:
    key, secret = fake_key_id(), fake_secret()
    (framework_repo / "deploy.cfg").write_text(
        f"[aws]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    git(framework_repo, "add", "deploy.cfg", env=hook_env)

    blocked = commit(framework_repo, hook_env, "add deploy config")
    said = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0
    assert commits(framework_repo) == 1
    assert "keyscan" in said and "Failed" in said
    assert "deploy.cfg:2:21" in said  # where
    assert key in said and secret[4:12] not in said  # which key, secret redacted
    assert "Remove" in said and "Rotate" in said and "keyscan:allow" in said  # what to do

    (framework_repo / "deploy.cfg").write_text("[aws]\nprofile = deploy\n")
    git(framework_repo, "add", "deploy.cfg", env=hook_env)
    clean = commit(framework_repo, hook_env, "read credentials from a profile")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert commits(framework_repo) == 2


def test_the_hook_checks_the_index_not_the_working_file(framework_repo: Path,
                                                        hook_env: dict[str, str]) -> None:
    target = framework_repo / "app.py"
    target.write_text(f"KEY = '{fake_key_id()}'\n")
    git(framework_repo, "add", "app.py", env=hook_env)
    target.write_text("import os\nKEY = os.environ['KEY']\n")  # fixed, but the fix not staged
    staged_key = commit(framework_repo, hook_env, "staged key, clean file")
    assert staged_key.returncode != 0
    assert "app.py:1:8" in staged_key.stdout + staged_key.stderr
    assert target.read_text().startswith("import os")  # pre-commit put the work tree back

    git(framework_repo, "add", "app.py", env=hook_env)
    target.write_text(f"KEY = '{fake_key_id()}'  # local experiment, never staged\n")
    clean_index = commit(framework_repo, hook_env, "clean index, key only in the file")
    assert clean_index.returncode == 0, clean_index.stdout + clean_index.stderr
    assert "never staged" in target.read_text()
    assert "KEY = os.environ" in git(framework_repo, "show", "HEAD:app.py").stdout


def test_a_staged_file_named_like_an_option_does_not_pass_the_key_beside_it(
        framework_repo: Path, hook_env: dict[str, str]) -> None:
    """pre-commit appends the staged names to the entry: a file named `--help` made
    keyscan print its help and exit 0, and the commit of a key beside it went through."""
    (framework_repo / "--help").write_text("how to deploy\n")
    (framework_repo / "deploy.cfg").write_text(f"aws_access_key_id = {fake_key_id()}\n")
    git(framework_repo, "add", "--", "--help", "deploy.cfg", env=hook_env)

    blocked = commit(framework_repo, hook_env, "docs and config")

    assert blocked.returncode != 0 and commits(framework_repo) == 1
    assert "deploy.cfg:1:21" in blocked.stdout + blocked.stderr


def test_pre_commit_run_from_ref_to_ref_scans_those_commits(framework_repo: Path,
                                                            hook_env: dict[str, str]) -> None:
    """`pre-commit run --from-ref A --to-ref B` (pre-commit's way to check a branch in
    CI) stages nothing: the hook scans the commits A..B that pre-commit names, not the
    empty index, and so fails on a key committed past the hook (`--no-verify`)."""
    base = git(framework_repo, "rev-parse", "HEAD", env=hook_env).stdout.strip()
    key = fake_key_id()
    (framework_repo / "deploy.cfg").write_text(f"aws_access_key_id = {key}\n")
    git(framework_repo, "add", "deploy.cfg", env=hook_env)
    git(framework_repo, "commit", "-q", "--no-verify", "-m", "key past the hook", env=hook_env)
    (framework_repo / "notes.txt").write_text("nothing secret\n")
    git(framework_repo, "add", "notes.txt", env=hook_env)
    assert commit(framework_repo, hook_env, "clean").returncode == 0

    ranged = subprocess.run([*PRE_COMMIT, "run", "--from-ref", base, "--to-ref", "HEAD"],
                            cwd=framework_repo, env=hook_env, capture_output=True, text=True,
                            timeout=INSTALL_TIMEOUT, check=False)
    clean = subprocess.run([*PRE_COMMIT, "run", "--from-ref", "HEAD~1", "--to-ref", "HEAD"],
                           cwd=framework_repo, env=hook_env, capture_output=True, text=True,
                           timeout=INSTALL_TIMEOUT, check=False)

    assert ranged.returncode == 1, ranged.stdout + ranged.stderr
    assert "deploy.cfg:1:21" in ranged.stdout and key in ranged.stdout
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_pre_commit_run_all_files_checks_every_tracked_file(framework_repo: Path,
                                                           hook_env: dict[str, str]) -> None:
    """`pre-commit run --all-files` (a CI step, or checking a repository on adoption)
    stages nothing: the hook scanned the empty index and passed whatever the files held.
    It now scans the staged content of the files pre-commit names."""
    key = fake_key_id()
    (framework_repo / "deploy.cfg").write_text(f"aws_access_key_id = {key}\n")
    git(framework_repo, "add", "deploy.cfg", env=hook_env)
    git(framework_repo, "commit", "-q", "--no-verify", "-m", "key past the hook", env=hook_env)

    def run_all() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*PRE_COMMIT, "run", "--all-files"], cwd=framework_repo,
                              env=hook_env, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT, check=False)

    found = run_all()
    assert found.returncode == 1, found.stdout + found.stderr
    assert "deploy.cfg:1:21" in found.stdout and key in found.stdout
    (framework_repo / "deploy.cfg").write_text("profile = deploy\n")
    git(framework_repo, "add", "deploy.cfg", env=hook_env)
    clean = run_all()
    assert clean.returncode == 0, clean.stdout + clean.stderr
