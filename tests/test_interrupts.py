"""Ctrl-C (SIGINT) during a history scan: a partial report, a consistent cache, no orphans.

The scan runs as a real child process on a repository built with `git fast-import`;
its matcher is slowed down (a sleep per object) so that a small repository takes a few
seconds and the signal lands while objects are being read, in the serial reader and in
the worker processes alike. Ctrl-C during deactivation is in tests/aws/test_faults.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakes import fake_key_id
from repos import clean_env, git, run_keyscan

COMMITS = 1200
KEY_EVERY = 100

# keyscan's own CLI with a matcher that takes 2 ms an object (inherited by forked workers)
SLOW_KEYSCAN = """
import sys, time
import keyscan.match as match
from keyscan.sources import history as source
find = match.Matcher.find
def slow(self, data):
    time.sleep(0.002)
    return find(self, data)
match.Matcher.find = slow
source.PARALLEL_BYTES = int(sys.argv[1])
from keyscan.cli import main
sys.exit(main(sys.argv[2:]))
"""


def many_commits(repo: Path, commits: int, keys: list[str]) -> None:
    """`commits` commits touching ten files, a key in every KEY_EVERY-th, via fast-import."""
    chunks = []
    for i in range(commits):
        text = f"line {i}\n" * 20
        if i % KEY_EVERY == 0:
            key = fake_key_id()
            keys.append(key)
            text += f"key = {key}\n"
        blob = text.encode()
        message = f"change {i}\n".encode()
        chunks.append(
            b"commit refs/heads/main\n"
            + f"committer Test <t@example.com> {1_700_000_000 + i} +0000\n".encode()
            + b"data %d\n%s" % (len(message), message)
            + f"M 100644 inline data/f{i % 10}.txt\n".encode()
            + b"data %d\n%s\n" % (len(blob), blob))
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(chunks),
                   check=True, env=clean_env())
    git(repo, "reset", "-q", "--hard", "main")


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    repo = tmp_path_factory.mktemp("interrupts") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    keys: list[str] = []
    many_commits(repo, COMMITS, keys)
    return repo, keys


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _sigint_as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("workers", ["serial", "parallel"])
def test_sigint_during_a_history_scan(big_repo: tuple[Path, list[str]], workers: str) -> None:
    repo, keys = big_repo
    cache = repo / ".git" / "keyscan"
    shutil.rmtree(cache, ignore_errors=True)  # a first scan: every object to read
    env = clean_env(KEYSCAN_WORKERS="1" if workers == "serial" else "2")
    parallel_bytes = "0" if workers == "parallel" else str(1 << 40)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_KEYSCAN, parallel_bytes, "scan", "--history", str(repo),
         "-f", "json", "--progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        # as from a terminal: a shell's background job (`cmd &`) starts with SIGINT ignored,
        # and Python then never turns it into KeyboardInterrupt
        preexec_fn=_sigint_as_from_a_terminal)
    err: list[bytes] = []
    assert proc.stderr is not None
    stderr_fd = proc.stderr.fileno()
    reader = threading.Thread(target=lambda: err.extend(iter(
        lambda: os.read(stderr_fd, 4096), b"")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while b"objects," not in b"".join(err):  # the progress line: reading has started
        assert proc.poll() is None, b"".join(err)
        assert time.monotonic() < deadline, "the scan never started reading"
        time.sleep(0.02)
    children = _descendants(proc.pid)
    if workers == "parallel":
        assert children, "expected worker processes"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    out = proc.stdout.read()  # the report, until the scan exits
    proc.wait(timeout=30)
    reader.join(timeout=10)
    stderr = b"".join(err).decode()

    assert proc.returncode == 130, stderr
    assert "interrupted: partial results" in stderr
    assert "keyscan: interrupted" in stderr
    summary = [line for line in stderr.split("\r")[-1].splitlines()
               if line.startswith("keyscan: ") and " objects, " in line]
    assert summary, stderr  # the one-line summary of what was read
    report = json.loads(out)
    total = 2 * COMMITS
    assert 0 < report["summary"]["files"] < total
    assert {f["key_id"] for f in report["findings"]} <= set(keys)
    assert "Traceback" not in stderr

    # nothing half-written: the cache holds no state until a scan completes
    assert not [p.name for p in cache.iterdir() if p.name != "lock"]
    again = run_keyscan(["scan", "--history", repo, "-f", "json"])
    assert again.returncode == 1, again.stderr
    assert "damaged" not in again.stderr
    assert {f["key_id"] for f in json.loads(again.stdout)["findings"]} == set(keys)

    time.sleep(0.2)
    assert not [p for p in children if _alive(p)], "a worker or git outlived the scan"


def test_a_worker_dies_with_its_parent() -> None:
    """A killed parent (no chance to clean up) takes its workers along (Linux)."""
    script = (
        "import os, sys, time\n"
        "from keyscan.sources import parallel\n"
        "from keyscan.rules import load_rules\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    parallel._start_worker(load_rules())\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "print(pid, flush=True)\n"
        "time.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    time.sleep(0.5)  # the worker has set its parent-death signal by now
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)
    if os.path.exists(f"/proc/{worker}"):
        with_status = Path(f"/proc/{worker}/stat").read_text()
        assert ") Z" in with_status or ") X" in with_status


# the same, for files: the matcher slowed down, and the file count at which workers start
SLOW_FILE_SCAN = """
import sys, time
import keyscan.match as match
import keyscan.scan as scan
find = match.Matcher.find
def slow(self, data):
    time.sleep(0.002)
    return find(self, data)
match.Matcher.find = slow
scan._PARALLEL_FILES = int(sys.argv[1])
from keyscan.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("workers", ["serial", "parallel"])
def test_sigint_during_a_file_scan(tmp_path: Path, workers: str) -> None:
    """Ctrl-C while files are read: a partial report of what was read, said to be
    partial, exit 130; no traceback, no worker left behind."""
    folder = tmp_path / "files"
    folder.mkdir()
    keys = []
    for i in range(3000):
        text = f"line {i}\n"
        if i % 300 == 0:
            keys.append(fake_key_id())
            text += f"key = {keys[-1]}\n"
        (folder / f"f{i:04}.txt").write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_FILE_SCAN, "2000" if workers == "parallel" else str(10**9),
         "scan", str(folder), "-f", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(KEYSCAN_WORKERS="2"),
        preexec_fn=_sigint_as_from_a_terminal)
    time.sleep(2.0)  # start-up and listing, then some 2 ms files
    assert proc.poll() is None, "the scan ended before the signal"
    children = _descendants(proc.pid)
    if workers == "parallel":
        assert children, "expected worker processes"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    stderr = err.decode()
    assert proc.returncode == 130, stderr
    assert "interrupted: partial results" in stderr and "Traceback" not in stderr
    report = json.loads(out)
    assert 0 < report["summary"]["files"] < 3000
    assert {f["key_id"] for f in report["findings"]} <= set(keys)
    time.sleep(0.2)
    assert not [p for p in children if _alive(p)], "a worker outlived the scan"
