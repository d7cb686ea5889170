"""`keyscan audit`: a dozen real repositories through a real Dask cluster, two ways.

1. the embedded default: `keyscan audit --workers 2` starts a LocalCluster of two
   worker processes on 127.0.0.1;
2. a separately started `dask scheduler` and two `dask worker` processes on 127.0.0.1,
   reached with `--scheduler`; one worker is killed in the middle of a task.

Both audits: keys planted in some repositories, one with a corrupt object, one whose
.git is broken, a path that does not exist, a URL that cannot be cloned, a file:// URL
that is cloned. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fakes import fake_key_id, fake_secret
from repos import clean_env, commit_all, git, run_keyscan

DASK = Path(sys.executable).parent / "dask"

pytestmark = pytest.mark.timeout(120)


@dataclass
class Fleet:
    root: Path
    listing: Path
    keys: dict[str, str] = field(default_factory=dict)  # repository name -> key ID
    secrets: list[str] = field(default_factory=list)

    def path(self, name: str) -> str:
        return str((self.root / name).resolve())


def _repo(root: Path, name: str, files: dict[str, str]) -> Path:
    path = root / name
    path.mkdir(parents=True)
    git(path, "init", "-q")
    (path / "README.md").write_text(f"{name}\n")
    commit_all(path, "initial")
    for file, text in files.items():
        (path / file).write_text(text)
        commit_all(path, f"add {file}")
    return path


def _planted(fleet: Fleet, name: str, secret: bool = True) -> None:
    key, value = fake_key_id(), fake_secret()
    text = f"aws_access_key_id = {key}\n"
    if secret:
        text += f"aws_secret_access_key = {value}\n"
        fleet.secrets.append(value)
    _repo(fleet.root, name, {"deploy.env": text})
    git(fleet.root / name, "rm", "-q", "deploy.env")  # gone from HEAD, still in history
    commit_all(fleet.root / name, "remove credentials")
    fleet.keys[name] = key


@pytest.fixture
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """A fresh fleet per test: each audit starts without incremental caches."""
    root = tmp_path_factory.mktemp("fleet")
    fleet = Fleet(root=root, listing=root / "repos.txt")
    for name in ("leaky-a", "leaky-b", "kill-worker-once"):
        _planted(fleet, name)
    _planted(fleet, "id-only", secret=False)
    for i in range(4):
        _repo(root, f"clean-{i}", {"main.py": f"print({i})\n"})
    corrupt = _repo(root, "corrupt-object", {"data.txt": "some data\n"})
    blob = git(corrupt, "rev-parse", "HEAD:data.txt").stdout.strip()
    loose = corrupt / ".git" / "objects" / blob[:2] / blob[2:]
    loose.chmod(stat.S_IWUSR | stat.S_IRUSR)
    loose.write_bytes(b"not a zlib stream")
    broken = _repo(root, "broken-git", {})
    (broken / ".git" / "HEAD").write_text("garbage\n")
    shutil.rmtree(broken / ".git" / "refs")
    lines = ["# the fleet", *(fleet.path(p.name) for p in sorted(root.iterdir()) if p.is_dir()),
             "", str(root / "does-not-exist"), f"file://{fleet.path('leaky-a')}",
             f"file://{root / 'no-such-remote.git'}"]
    fleet.listing.write_text("\n".join(lines) + "\n")
    return fleet


def _git_wrapper(folder: Path, marker: Path) -> Path:
    """A `git` for the workers: kills its worker at the first git call on the repository
    named kill-worker-once, sleeps on the one named slow-*; otherwise the real git."""
    real = shutil.which("git")
    folder.mkdir(exist_ok=True)
    script = folder / "git"
    script.write_text(f"""#!/bin/sh
case "$*" in
  *kill-worker-once*)
    if [ ! -e "{marker}" ]; then
      touch "{marker}"
      kill -9 "$(cut -d' ' -f4 /proc/$PPID/stat)"  # the scanner's parent: the worker
      sleep 30
    fi ;;
  *slow-*) sleep 60 ;;
esac
exec {real} "$@"
""")
    script.chmod(0o755)
    return folder


def _worker_env(tmp: Path, marker: Path) -> dict[str, str]:
    wrapper = _git_wrapper(tmp / "bin", marker)
    return clean_env(PATH=f"{wrapper}{os.pathsep}{os.environ['PATH']}",
                     XDG_CACHE_HOME=str(tmp / "cache"))


def _rows(status_file: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads(status_file.read_text())
    return {r["repo"]: r for r in doc["repositories"]}


def _findings(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.read_text().splitlines()]


def _check_audit(fleet: Fleet, out: Path, rows: dict[str, dict[str, Any]],
                 resumed: bool = False) -> None:
    """What a security engineer checks after an audit of the fleet (or its --resume)."""
    for name in ("leaky-a", "leaky-b", "id-only", "kill-worker-once",
                 *(f"clean-{i}" for i in range(4))):
        row = rows[fleet.path(name)]
        assert row["status"] == ("done" if resumed else "scanned"), \
            (row["status"], row.get("error"))
    corrupt = rows[fleet.path("corrupt-object")]
    assert corrupt["status"] == ("done" if resumed else "partial")
    assert "corrupt" in corrupt["error"]
    assert rows[fleet.path("broken-git")]["status"] == "error"
    missing = rows[str(fleet.root / "does-not-exist")]
    assert missing["status"] == "error" and "does not exist" in missing["error"]
    unclonable = rows[f"file://{fleet.root / 'no-such-remote.git'}"]
    assert unclonable["status"] == "error" and "git clone" in unclonable["error"]
    cloned = rows[f"file://{fleet.path('leaky-a')}"]
    assert cloned["status"] == ("done" if resumed else "scanned") and cloned["leaks"] == 1, \
        (cloned["status"], cloned.get("error"))

    if not resumed:  # what the audit says of each repository besides its leaks
        newest = git(fleet.root / "leaky-a", "log", "-1", "--format=%cI").stdout.strip()
        for name in (fleet.path("leaky-a"), f"file://{fleet.path('leaky-a')}"):
            facts = {k: rows[name][k] for k in ("default_branch", "branches", "tags")}
            assert facts == {"default_branch": "main", "branches": 1, "tags": 0}, name
            assert datetime.fromisoformat(rows[name]["last_commit"]) == \
                datetime.fromisoformat(newest)
        assert rows[str(fleet.root / "does-not-exist")]["last_commit"] == ""

    findings = _findings(out)
    schema = json.loads((resources.files("keyscan") / "schema" / "report.schema.json")
                        .read_text())
    finding_schema = jsonschema.Draft202012Validator(
        {**schema["$defs"]["finding"], "$defs": schema["$defs"]})
    for f in findings:  # the published schema's findings, each with its repository
        finding_schema.validate(f)
    by_repo: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_repo.setdefault(f["repo"], []).append(f)
    for name, key in fleet.keys.items():
        assert [f["key_id"] for f in by_repo[fleet.path(name)]] == [key]
        assert rows[fleet.path(name)]["leaks"] == 1
    assert by_repo[f"file://{fleet.path('leaky-a')}"][0]["key_id"] == fleet.keys["leaky-a"]
    assert by_repo[fleet.path("leaky-a")][0]["kind"] == "pair"
    assert by_repo[fleet.path("leaky-a")][0]["commit"]["message"] == "add deploy.env"
    assert not any(fleet.path(f"clean-{i}") in by_repo for i in range(4))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def _assert_no_secret(fleet: Fleet, *places: Path | str) -> None:
    for place in places:
        text = place if isinstance(place, str) else "".join(
            p.read_text(errors="replace") for p in
            ([place] if place.is_file() else [f for f in place.rglob("*") if f.is_file()
                                                and "objects" not in f.parts]))
        for secret in fleet.secrets:
            assert secret not in text, f"a secret leaked into {place}"


def test_audit_on_the_embedded_local_cluster(fleet: Fleet, tmp_path: Path) -> None:
    marker = tmp_path / "already-killed"
    marker.touch()  # this audit kills no worker; the slow repository times out instead
    slow = _repo(tmp_path, "slow-repo", {})
    listing = tmp_path / "repos.txt"
    listing.write_text(fleet.listing.read_text() + f"{slow}\n")
    out, status, work = tmp_path / "findings.jsonl", tmp_path / "status.json", tmp_path / "w"
    args = ["audit", "--repos", listing, "--workers", "2", "--workdir", work, "-o", out,
            "--status", status, "--sarif-dir", tmp_path / "sarif", "--timeout", "5"]
    env = _worker_env(tmp_path, marker)

    first = run_keyscan(args, env=env)
    assert first.returncode == 1, first.stderr
    rows = _rows(status)
    _check_audit(fleet, out, rows)
    assert rows[str(slow)]["status"] == "timeout"
    assert "REPOSITORY" in first.stderr and "leaks" in first.stderr
    sarif = json.loads(next((tmp_path / "sarif").glob("leaky-b-*.sarif")).read_text())
    assert sarif["runs"][0]["results"][0]["ruleId"] == "aws-access-key-id"

    resumed = run_keyscan([*args, "--resume"], env=env)
    assert resumed.returncode == 1, resumed.stderr
    again = _rows(status)
    _check_audit(fleet, out, again, resumed=True)  # earlier findings still reported
    assert again[str(slow)]["status"] == "timeout"  # tried again
    _assert_no_secret(fleet, out, status, work, tmp_path / "sarif", first.stdout,
                      first.stderr, resumed.stderr)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list[Path]]]:
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, any free port."""
    marker = tmp_path / "killed-once"
    env = _worker_env(tmp_path, marker)
    scheduler_file = tmp_path / "scheduler.json"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    procs = [subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=logs[0].open("w"))]
    try:
        address = _wait_for_address(scheduler_file)
        procs += [subprocess.Popen(
            [str(DASK), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--no-dashboard", "--name", f"w{i}"],
            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
            for i, log in enumerate(logs[1:], 1)]
        _wait_for_workers(address, 2)
        yield address, {**env, "KILL_MARKER": str(marker)}, logs
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_address(scheduler_file: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if scheduler_file.exists():
            try:
                return str(json.loads(scheduler_file.read_text())["address"])
            except ValueError:
                pass  # being written
        time.sleep(0.1)
    raise AssertionError("dask scheduler did not start")


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=30)


def test_audit_on_a_separately_started_dask_cluster(
        fleet: Fleet, tmp_path: Path, dask_cluster: tuple[str, dict[str, str], list[Path]]
) -> None:
    address, env, logs = dask_cluster
    out, status, work = tmp_path / "findings.jsonl", tmp_path / "status.json", tmp_path / "w"
    args = ["audit", "--repos", fleet.listing, "--scheduler", address, "--workdir", work,
            "-o", out, "--status", status]

    result = run_keyscan(args, env=env)
    assert result.returncode == 1, result.stderr
    assert Path(env["KILL_MARKER"]).exists(), "the worker-killing repository never ran"
    _check_audit(fleet, out, _rows(status))  # kill-worker-once included: retried, scanned

    resumed = run_keyscan([*args, "--resume"], env=env)
    assert resumed.returncode == 1, resumed.stderr
    rows = _rows(status)
    assert {r["status"] for n, r in rows.items() if n.startswith(fleet.path("leaky"))} \
        == {"done"}
    assert rows[fleet.path("broken-git")]["status"] == "error"
    assert {f["key_id"] for f in _findings(out)} == set(fleet.keys.values())
    _assert_no_secret(fleet, out, status, work, result.stdout, result.stderr, *logs)


def test_a_scheduler_that_is_not_there_is_one_clear_error(tmp_path: Path, fleet: Fleet
                                                          ) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing listens on it
    result = run_keyscan(["audit", "--repos", fleet.listing, "--scheduler",
                          f"tcp://127.0.0.1:{port}", "--connect-timeout", "1",
                          "--workdir", tmp_path / "w"])
    assert result.returncode == 2
    assert "cannot reach the Dask scheduler" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_clone_url_that_would_run_a_command_is_refused(tmp_path: Path) -> None:
    """A repository list is input too: a URL naming git's `ext` remote helper (which
    runs a command) is refused before git runs, with one clear line."""
    from keyscan import gitrepo
    from keyscan.errors import KeyscanError

    marker = tmp_path / "ran"
    for url in (f"ext::sh -c touch% {marker}", f"ext://sh -c touch% {marker}"):
        with pytest.raises(KeyscanError, match=r"git clone of .* failed"):
            gitrepo.mirror(url, tmp_path / "mirror.git")
    assert not marker.exists() and not (tmp_path / "mirror.git").exists()


def test_a_remote_helper_line_in_the_list_is_refused_not_taken_for_a_missing_path(
        tmp_path: Path) -> None:
    """`ext::…` in the repository list was taken for a local path ("does not exist"):
    safe, but it hid that the line was refused. Also in a `--sarif-dir` folder made 0700."""
    from keyscan.errors import KeyscanError
    from keyscan.fleet_repo import RepoJob, checkout
    from keyscan.report.fleet import write_sarif
    from keyscan.rules import load_rules

    marker = tmp_path / "ran"
    job = RepoJob(source=f"ext::sh -c touch% {marker}", name="x", workdir=str(tmp_path),
                  rules=load_rules(), max_file_size=1 << 20)
    with pytest.raises(KeyscanError, match=r"refused: ext:: names a git remote helper"):
        checkout(job)
    assert not marker.exists()
    folder = tmp_path / "sarif"
    write_sarif(folder, "repo", "{}")
    assert folder.stat().st_mode & 0o777 == 0o700


def test_repository_list_and_names(tmp_path: Path) -> None:
    from keyscan.fleet import read_repo_list
    from keyscan.fleet_repo import display_name, is_url

    listing = tmp_path / "list.txt"
    listing.write_text("# comment\n\n /srv/a \n/srv/a\nhttps://x:tok@host/o/r.git\n"
                       "/srv/b   # the billing service\n/srv/c#2\n")
    assert read_repo_list(str(listing)) == ["/srv/a", "https://x:tok@host/o/r.git", "/srv/b",
                                            "/srv/c#2"]
    assert display_name("https://x:tok@host/o/r.git") == "https://x:***@host/o/r.git"
    assert display_name("https://tok@host/o/r.git") == "https://***@host/o/r.git"
    assert display_name("ssh://git@host/o/r.git") == "ssh://git@host/o/r.git"
    # a password or token with an unencoded "#" or "?" is masked too, as a whole
    assert display_name("https://x:pa#ss@host/o/r.git") == "https://x:***@host/o/r.git"
    assert display_name("https://x:pa?ss@host/o/r.git") == "https://x:***@host/o/r.git"
    assert display_name("https://to#ken@host/o/r.git") == "https://***@host/o/r.git"
    assert display_name("HTTPS://tok@host") == "https://***@host"
    assert display_name("https://host/o/r.git?x=1#y") == "https://host/o/r.git?x=1#y"
    # a password with an unencoded "/", one in git's scp form, a token in the query
    assert display_name("https://x:pa/ss@host/o/r.git") == "https://x:***@host/o/r.git"
    assert display_name("https://host:8443/o/r@v1.git") == "https://host:8443/o/r@v1.git"
    assert display_name("x:pw@host:o/r.git") == "x:***@host:o/r.git"
    assert display_name("git@host:o/r.git") == "git@host:o/r.git"
    assert display_name("https://host/o/r.git?access_token=abc&x=1") == \
        "https://host/o/r.git?access_token=***&x=1"
    assert display_name("https://host/o/r.git?private_token=abc") == \
        "https://host/o/r.git?private_token=***"
    assert is_url("git@github.com:o/r.git") and not is_url("/srv/a")


def test_git_messages_mask_every_url_credential() -> None:
    from keyscan.report.redact import without_userinfo

    said = ("fatal: unable to access 'https://x:pa/ss@host/o/r.git/': Could not resolve "
            "host: x; also https://t0k3n@h2/r and https://h3/r?access_token=abc&y=2")
    masked = without_userinfo(said)
    assert "pa/ss" not in masked and "t0k3n" not in masked and "abc" not in masked, masked
    assert "https://***@host/o/r.git/" in masked and "https://***@h2/r" in masked
    assert "https://h3/r?access_token=***&y=2" in masked
    assert without_userinfo("fetch https://host:8443/o/r.git failed") == \
        "fetch https://host:8443/o/r.git failed"


def test_token_bucket_paces_every_thread_together() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from keyscan.aws.fleet import TokenBucket

    bucket = TokenBucket(rate=20)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: bucket.take(), range(11)))
    assert time.monotonic() - started >= 0.45  # 1 at once, then 10 at 20 a second


def _small_fleet(tmp_path: Path) -> Fleet:
    fleet = Fleet(root=tmp_path / "repos", listing=tmp_path / "repos.txt")
    _planted(fleet, "leaky-a")
    _repo(fleet.root, "clean-0", {"main.py": "print(0)\n"})
    return fleet


def test_exit_code_zero_lets_leaks_pass_but_not_an_unscanned_repository(tmp_path: Path
                                                                        ) -> None:
    """`--exit-code 0` (report leaks, do not fail on them) still fails the run when a
    repository could not be scanned: the leaks found elsewhere must not hide it."""
    fleet = _small_fleet(tmp_path)
    fleet.listing.write_text(f"{fleet.path('leaky-a')}\n{tmp_path / 'gone'}\n")
    args = ["audit", "--repos", fleet.listing, "--workers", "1", "--workdir", tmp_path / "w",
            "-o", tmp_path / "f.jsonl", "--exit-code", "0"]

    result = run_keyscan(args)

    assert result.returncode == 2, result.stderr
    assert len(_findings(tmp_path / "f.jsonl")) == 1
    fleet.listing.write_text(f"{fleet.path('leaky-a')}\n")
    assert run_keyscan(args).returncode == 0  # leaks alone: the code asked for


def test_a_clone_stopped_by_the_timeout_is_not_left_behind(tmp_path: Path) -> None:
    """A clone killed by --timeout leaves a half-made copy in the workdir; the next clone
    of that repository removes it, rather than piling up one a run."""
    fleet = _small_fleet(tmp_path)
    source = fleet.root / "slow-clone"
    shutil.copytree(fleet.root / "leaky-a", source)
    fleet.listing.write_text(f"file://{source}\n")
    work = tmp_path / "w"
    args = ["audit", "--repos", fleet.listing, "--workers", "1", "--workdir", work,
            "-o", tmp_path / "f.jsonl", "--status", tmp_path / "status.json"]
    mirrors = work / "mirrors"

    stopped = run_keyscan([*args, "--timeout", "3"],
                          env=_worker_env(tmp_path, tmp_path / "no-kill"))
    assert _rows(tmp_path / "status.json")[f"file://{source}"]["status"] == "timeout", \
        stopped.stderr
    assert list(mirrors.glob(".clone-*"))  # what the killed clone left

    again = run_keyscan(args)
    assert again.returncode == 1, again.stderr
    assert _rows(tmp_path / "status.json")[f"file://{source}"]["status"] == "scanned"
    assert not list(mirrors.glob(".clone-*"))


def test_resume_gives_each_report_asked_for_now(tmp_path: Path) -> None:
    """--resume reuses an earlier result only when it answers this run: a SARIF report
    is written for a repository done earlier, and a finding is classified with the
    accounts given now (--our-account), not those of the earlier run."""
    from keyscan.attribute import account_id

    fleet = _small_fleet(tmp_path)
    fleet.listing.write_text(f"{fleet.path('leaky-a')}\n{fleet.path('clean-0')}\n")
    out, sarif = tmp_path / "f.jsonl", tmp_path / "sarif"
    args = ["audit", "--repos", fleet.listing, "--workers", "1", "--workdir", tmp_path / "w",
            "-o", out, "--status", tmp_path / "status.json"]
    assert run_keyscan(args).returncode == 1
    assert _findings(out)[0]["classification"] == "unknown"

    with_sarif = run_keyscan([*args, "--resume", "--sarif-dir", sarif])
    assert with_sarif.returncode == 1, with_sarif.stderr
    assert {p.name.split("-")[0] for p in sarif.glob("*.sarif")} == {"leaky", "clean"}
    shutil.rmtree(sarif)
    resumed = run_keyscan([*args, "--resume", "--sarif-dir", sarif])
    assert "2 done earlier" in resumed.stderr  # the reports come from the state now
    assert len(list(sarif.glob("*.sarif"))) == 2

    ours = account_id(fleet.keys["leaky-a"])
    mine = run_keyscan([*args, "--resume", "--our-account", ours])
    assert mine.returncode == 1, mine.stderr
    assert [f["classification"] for f in _findings(out)] == ["ours"]
    _assert_no_secret(fleet, out, tmp_path / "w", sarif)
