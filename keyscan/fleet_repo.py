"""One repository of a fleet audit: clone or fetch it, scan its whole history, and hand
back a plain dict that is already redacted. This is the code that runs on Dask workers.

Each worker thread keeps one scanner process (`serve`, below) and gives it one
repository at a time. So a per-repository timeout kills that process and the git
processes it started, never the worker; a crash costs one repository; and nothing
scanned enters the worker's memory, its logs or the scheduler: only the redacted dict.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from keyscan.aws.classify import Accounts
from keyscan.errors import KeyscanError
from keyscan.report.redact import masked_query, userinfo_end, without_userinfo
from keyscan.rules import RuleSet

SCANNED = "scanned"  # the whole history was read
PARTIAL = "partial"  # scanned, but some objects could not be read (corrupt, missing)
ERROR = "error"  # not scanned: clone failed, not a repository, ...
TIMEOUT = "timeout"  # stopped after --timeout seconds
DONE = "done"  # --resume: scanned by an earlier run with the same rules

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP = re.compile(r"^[^/\s:@]+@[^/\s:]+:")  # git@host:org/repo.git
_SCP_PASSWORD = re.compile(r"^([^/\s:@]+):[^/\s@]+@(?=[^/\s:@]+:)")
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")  # git's remote-helper form: ext::CMD


@dataclass(frozen=True, slots=True)
class RepoJob:
    """Everything a worker needs for one repository; pickled to the worker."""

    source: str  # a local path or a clone URL, as listed
    name: str  # what reports call it: the URL without credentials
    workdir: str  # where URLs are mirrored on the worker's machine; "" = user cache
    rules: RuleSet
    max_file_size: int
    unreachable: bool = False
    accounts: Accounts = field(default_factory=Accounts)
    sarif: bool = False
    timeout: float | None = None  # seconds, clone included


def is_url(source: str) -> bool:
    return bool(_URL.match(source) or _SCP.match(source))


def display_name(source: str) -> str:
    """The source with any password or token in the URL masked."""
    if not _URL.match(source):
        scp = _SCP_PASSWORD.match(source)  # user:password@host:path: git sees no password
        return f"{scp[1]}:***@{source[scp.end():]}" if scp else source
    scheme, rest = source.split("://", 1)
    scheme = scheme.lower()
    # the credentials end where git's own masking (report/redact.py) says: an unencoded
    # "#" or "?" in a password would end the host for urlsplit, which then saw no
    # credentials and showed them all
    end = userinfo_end(rest)
    if end < 0:
        return masked_query(f"{scheme}://{rest}")
    userinfo, host = rest[:end], rest[end + 1:]
    user, has_password, _ = userinfo.partition(":")
    if has_password:
        userinfo = f"{user}:***"
    elif scheme in ("http", "https"):
        userinfo = "***"  # a token given as the user name
    return masked_query(f"{scheme}://{userinfo}@{host}")


def slug(name: str) -> str:
    """A file-name-safe, unique label for a repository."""
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.rstrip("/").rsplit("/", 1)[-1])[:40]
    return f"{tail.strip('._') or 'repo'}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


# -- on the Dask worker -------------------------------------------------------------------

_local = threading.local()


def audit_repository(job: RepoJob) -> dict[str, Any]:
    """The Dask task: one repository, scanned in this thread's scanner process."""
    scanner: _Scanner | None = getattr(_local, "scanner", None)
    if scanner is None or scanner.proc.poll() is not None:
        scanner = _local.scanner = _Scanner()
    started = time.perf_counter()
    try:
        return scanner.run(job)
    except TimeoutError:
        scanner.kill()
        return failed(job.name, TIMEOUT, f"stopped after {job.timeout:g} s (--timeout)",
                      time.perf_counter() - started)
    except _ScannerDied as died:
        scanner.kill()
        return failed(job.name, ERROR, str(died), time.perf_counter() - started)


def failed(name: str, status: str, error: str, seconds: float = 0.0) -> dict[str, Any]:
    """The result of a repository that could not be scanned."""
    row = {"repo": name, "status": status, "findings": 0, "leaks": 0, "blobs": 0, "bytes": 0,
           "seconds": round(seconds, 3), "error": error, "skipped": 0, "notes": [],
           **_facts_row(None)}
    return {"row": row, "findings": [], "sarif": None}


class _ScannerDied(Exception):
    pass


class _Scanner:
    """A long-lived `serve` process: jobs in (pickled), one JSON line per result out."""

    def __init__(self) -> None:
        # Dask gives its workers MALLOC_TRIM_THRESHOLD_=65536 (for its memory accounting);
        # inherited, it makes the scan and git ~20% slower, returning memory all the time
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from keyscan.fleet_repo import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True,  # own process group: a timeout kills its git
        )
        atexit.register(self.close)

    def close(self) -> None:
        """The worker is shutting down: the scanner exits at the end of its input."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def run(self, job: RepoJob) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            pickle.dump(job, self.proc.stdin)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _ScannerDied(self._death()) from None
        ready, _, _ = select.select([self.proc.stdout], [], [], job.timeout)
        if not ready:
            raise TimeoutError
        line = self.proc.stdout.readline()
        if not line:
            raise _ScannerDied(self._death())
        payload: dict[str, Any] = json.loads(line)
        return payload

    def _death(self) -> str:
        code = self.proc.wait()
        why = f"signal {-code}" if code < 0 else f"exit {code}"
        return f"the scan process died ({why}): out of memory? see the worker's system log"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        _local.scanner = None


# -- in the scanner process ---------------------------------------------------------------


def serve() -> None:
    """Scan each job read from stdin; write one JSON line per job to the original stdout.

    Anything else that writes to stdout (it should not) goes to /dev/null, so the
    results channel stays clean; stderr is /dev/null already.
    """
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    _exit_with_parent(os.getppid())
    while True:
        try:
            job = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        out.write(json.dumps(scan_one(job)) + "\n")
        out.flush()


def _exit_with_parent(parent: int) -> None:
    """The worker died: stop this scan and its git processes rather than linger."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def scan_one(job: RepoJob) -> dict[str, Any]:
    """Clone or fetch, scan the full history with the incremental cache, redact."""
    from keyscan import gitrepo
    from keyscan.history import HistoryOptions, scan_history
    from keyscan.scan import ScanOptions

    started = time.perf_counter()
    gitrepo.forget()  # a long-lived scanner: nothing remembered from the last repository
    try:
        target = checkout(job)
        result = scan_history(
            target, job.rules, ScanOptions(max_file_size=job.max_file_size),
            HistoryOptions(unreachable=job.unreachable, progress=False, workers=1))
        repo = gitrepo.discover(target)
        facts = gitrepo.facts(repo.git_dir) if repo is not None else None
    except KeyscanError as exc:
        return failed(job.name, ERROR, _without(str(exc), job), time.perf_counter() - started)
    except Exception as exc:  # no traceback: it could hold scanned content
        return failed(job.name, ERROR, f"internal error: {type(exc).__name__}",
                      time.perf_counter() - started)
    return _payload(job, result, time.perf_counter() - started, facts)


def _facts_row(facts: Any) -> dict[str, Any]:
    """The repository's facts as status-row fields (empty when it was not scanned)."""
    from keyscan.gitrepo import Facts

    f = facts if isinstance(facts, Facts) else Facts()
    return {"default_branch": f.default_branch, "branches": f.branches, "tags": f.tags,
            "last_commit": f.last_commit}


def _payload(job: RepoJob, result: Any, seconds: float, facts: Any = None) -> dict[str, Any]:
    from keyscan.aws.classify import classify_all
    from keyscan.model import ScanResult, Status
    from keyscan.report import json as json_report

    assert isinstance(result, ScanResult)
    findings = classify_all(result.findings, job.accounts)
    unreadable = [s for s in result.skipped if s.reason.startswith(("corrupt", "missing"))]
    problems = [*result.errors, *(f"{s.path}: {s.reason}" for s in unreadable[:3])]
    if len(unreadable) > 3:
        problems.append(f"and {len(unreadable) - 3} more unreadable objects")
    row = {"repo": job.name, "status": PARTIAL if problems else SCANNED,
           "findings": len(findings), "leaks": sum(f.status is Status.LEAK for f in findings),
           "blobs": result.stats.files, "bytes": result.stats.bytes,
           "seconds": round(seconds, 3), "error": "; ".join(problems),
           "skipped": len(result.skipped), "notes": list(result.notes), **_facts_row(facts)}
    sarif = None
    if job.sarif:
        from keyscan.report import sarif as sarif_report

        result.findings = findings
        sarif = sarif_report.render(result, reveal=False)
    rows = [{"repo": job.name, **json_report.finding_dict(f, reveal=False)} for f in findings]
    return {"row": row, "findings": rows, "sarif": sarif}


def _without(message: str, job: RepoJob) -> str:
    """An error message with any credentials of a URL (git's own wording too) masked."""
    if job.source != job.name:
        message = message.replace(job.source, job.name)
    return without_userinfo(message)


# -- clone or fetch ------------------------------------------------------------------------


def checkout(job: RepoJob) -> Path:
    """The repository to scan: a local path as is, a URL as a bare mirror in the workdir."""
    if _HELPER.match(job.source) and not Path(job.source).exists():
        helper = job.source.split("::", 1)[0]
        raise KeyscanError(f"refused: {helper}:: names a git remote helper, which may run "
                           "commands; list the repository by its URL or path")
    if not is_url(job.source):
        return Path(job.source)
    from keyscan.cache import user_cache_folder

    mirrors = Path(job.workdir or user_cache_folder() / "fleet") / "mirrors"
    mirrors.mkdir(parents=True, exist_ok=True, mode=0o700)
    mirror = mirrors / f"{slug(job.name)}.git"
    from keyscan import gitrepo

    with _locked(mirror.with_suffix(".lock")):
        try:
            if (mirror / "HEAD").exists():
                gitrepo.fetch(mirror, job.source)
            else:
                _clone(job, mirror)
        except KeyscanError as exc:
            raise KeyscanError(_without(str(exc), job)) from None
    return mirror


def _clone(job: RepoJob, mirror: Path) -> None:
    """A full bare mirror (every ref, every blob), renamed into place only when whole
    (the caller holds the mirror's lock)."""
    import shutil
    import tempfile

    from keyscan import gitrepo

    # the clone of a scan stopped by --timeout (or killed with its worker) was left
    # half-made: removed now, under the mirror's lock, so no one else is writing it
    for stale in mirror.parent.glob(f".clone-{mirror.stem}+*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".clone-{mirror.stem}+", dir=mirror.parent))
    try:
        gitrepo.mirror(job.source, tmp / "repo.git")
        (tmp / "repo.git").rename(mirror)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One clone or fetch of a mirror at a time on this machine."""
    fh: IO[str]
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
