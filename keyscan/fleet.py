"""`keyscan audit`: many repositories at once, each one a Dask task.

    keyscan audit --repos repos.txt -o findings.jsonl              # a LocalCluster here
    keyscan audit --repos repos.txt --scheduler tcp://host:8786    # an existing cluster

Each task (fleet_repo.audit_repository) clones or fetches one repository, scans its
whole history with the incremental cache and returns a plain dict, already redacted.
Results stream back as they finish: findings to JSON Lines, a status row per
repository, SARIF per repository on request. A repository that fails is a row with
its error; a worker that dies has its task run again elsewhere (Dask's own retries).
Dask is imported only here, inside the command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keyscan.errors import EXIT_AWS_FAILED, EXIT_CLEAN, EXIT_ERROR, KeyscanError
from keyscan.fleet_repo import DONE, ERROR, RepoJob, display_name, failed, is_url, slug


def read_repo_list(spec: str) -> list[str]:
    """The repositories of a list file (or stdin), in order, each once; `#` starts a
    comment, at the start of a line or after a space (a URL's `#fragment` stays)."""
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyscanError(f"cannot read the repository list {spec}: {exc.strerror}") from None
    lines = (_COMMENT.sub("", line).strip() for line in text.splitlines())
    return list(dict.fromkeys(line for line in lines if line))


_COMMENT = re.compile(r"(?:^|\s)#.*$")


def make_jobs(sources: list[str], args: argparse.Namespace, rules: Any) -> list[RepoJob]:
    from keyscan.aws.classify import Accounts, parse_accounts
    from keyscan.scan import DEFAULT_MAX_FILE_SIZE

    accounts = Accounts(ours=parse_accounts(args.our_account),
                        canaries=parse_accounts(args.canary_account))
    workdir = str(args.workdir.resolve()) if args.workdir else ""
    named = {(display_name(s) if is_url(s) else str(Path(s).resolve())): s for s in sources}
    return [RepoJob(source=src if is_url(src) else str(Path(src).resolve()),
                    name=name,
                    workdir=workdir, rules=rules,
                    max_file_size=args.max_file_size or DEFAULT_MAX_FILE_SIZE,
                    unreachable=args.unreachable, accounts=accounts,
                    sarif=args.sarif_dir is not None, timeout=args.timeout or None)
            for name, src in named.items()]


def cmd_audit(args: argparse.Namespace) -> int:
    from keyscan.cache import user_cache_folder
    from keyscan.fleet_state import AuditState, settings_digest
    from keyscan.report import fleet as report
    from keyscan.rules import load_rules

    started = time.perf_counter()
    rules = load_rules(args.rules)
    jobs = make_jobs(read_repo_list(args.repos), args, rules)
    if not jobs:
        raise KeyscanError(f"no repositories listed in {args.repos}: one path or URL a line")
    workdir = args.workdir or user_cache_folder() / "fleet"
    state = AuditState(workdir, settings_digest(rules.digest, jobs[0].max_file_size,
                                                args.unreachable, jobs[0].accounts))
    out = report.FindingsFile(args.output)
    audit = _Audit(args, state, out, len(jobs))
    try:
        todo = []
        for job in jobs:
            earlier = state.done(job.name, job.sarif) if args.resume else None
            if earlier is not None:
                audit.add(_resumed(earlier), record=False)
            else:
                todo.append(job)
        if todo:
            _run(todo, args, audit)
        verify_note = audit.verify() if args.verify else ""
        audit.flush()
    finally:
        out.close()
        audit.progress.clear()
    return audit.finish(time.perf_counter() - started, workdir, verify_note)


def _resumed(payload: dict[str, Any]) -> dict[str, Any]:
    row = {**payload["row"], "status": DONE}
    return {**payload, "row": row}


class _Audit:
    """Collects results as they arrive: writes findings, records state, shows progress."""

    def __init__(self, args: argparse.Namespace, state: Any, out: Any, total: int) -> None:
        self.args, self.state, self.out = args, state, out
        self.rows: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.aws_errors: list[str] = []
        show = args.progress if args.progress is not None else sys.stderr.isatty()
        self.progress = _Progress(total, show)

    def add(self, payload: dict[str, Any], record: bool = True) -> None:
        from keyscan.report import fleet as report

        if record:
            self.state.record(payload)
        self.rows.append(payload["row"])
        if self.args.verify:  # written once IAM has answered for every key
            self.findings.extend(payload["findings"])
        else:
            self.out.write(payload["findings"])
        if payload.get("sarif") and self.args.sarif_dir is not None:
            report.write_sarif(self.args.sarif_dir, slug(payload["row"]["repo"]),
                               payload["sarif"])
        self.progress.update(self.rows)

    def verify(self) -> str:
        from keyscan.aws import fleet as aws_fleet

        self.progress.clear()
        keys, self.aws_errors = aws_fleet.verify_rows(self.findings, self.args)
        return f"ownership: {keys} distinct key IDs checked against IAM " \
               f"({sum(aws_fleet.askable(r) for r in self.findings)} leaked findings)"

    def flush(self) -> None:
        if self.args.verify:
            self.out.write(self.findings)

    def finish(self, seconds: float, workdir: Path, verify_note: str) -> int:
        from keyscan.report import fleet as report
        from keyscan.report import write_private

        summary = report.totals(self.rows, seconds)
        notes = [verify_note] if verify_note else []
        status_path = self.args.status or workdir / "status.json"
        write_private(status_path, report.status_document(self.rows, summary, notes))
        sys.stderr.write(report.status_table(self.rows))
        for note in notes:
            print(f"keyscan: note: {note}", file=sys.stderr)
        for error in self.aws_errors:
            print(f"keyscan: error: {error}", file=sys.stderr)
        print(report.summary_line(summary) + f" (status: {status_path})", file=sys.stderr)
        code: int = self.args.exit_code
        if summary["leaks"] and code:
            return code
        # `--exit-code 0` lets leaks pass, never a repository left unscanned
        if summary["by_status"].get(ERROR) or summary["by_status"].get("timeout"):
            return EXIT_ERROR
        return EXIT_AWS_FAILED if self.aws_errors else EXIT_CLEAN


def _run(jobs: list[RepoJob], args: argparse.Namespace, audit: _Audit) -> None:
    """Submit every repository and take results in the order they finish."""
    from keyscan.fleet_repo import audit_repository

    as_completed = _distributed().as_completed

    with _client(args) as client:
        link = _dashboard(client)
        if link:
            print(f"keyscan: Dask dashboard: {link}", file=sys.stderr)
        futures = {client.submit(audit_repository, job, key=f"keyscan-audit-{slug(job.name)}",
                                 retries=args.retries, pure=False): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            # result(), not status: a finished result held by a worker that dies before
            # it is fetched (another task killed it) is "lost" and computed again; result()
            # waits for that, and raises what made the task fail
            try:
                payload = future.result()
            except Exception as exc:  # only its type is reported (`_task_error`)
                payload = failed(job.name, ERROR, _task_error(exc))
            future.release()
            audit.add(payload)


def _task_error(exc: BaseException) -> str:
    """Why a task failed outside the scan (its type only: never scanned content)."""
    if type(exc).__name__ == "KilledWorker":
        return "the workers running it died repeatedly (out of memory?): see their logs"
    return f"the task failed after its retries: {type(exc).__name__}"


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    """A client of the given scheduler, or of a local cluster sized to this machine."""
    import logging

    dist = _distributed()
    Client, LocalCluster = dist.Client, dist.LocalCluster
    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout=args.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise KeyscanError(f"cannot reach the Dask scheduler at {args.scheduler} "
                               f"({type(exc).__name__}): is `dask scheduler` running there, "
                               "and the address right?") from None
        with client:
            yield client
        return
    workers = args.workers or len(os.sched_getaffinity(0))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=":0",  # any free port
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _distributed() -> Any:
    """dask.distributed, imported only when an audit runs (its API is untyped)."""
    try:
        import distributed
    except ImportError:
        raise KeyscanError("keyscan audit needs Dask: pip install 'keyscan[fleet]' "
                           "(or 'dask[distributed]')") from None
    return distributed


def _dashboard(client: Any) -> str:
    """The dashboard's address when it serves one (it needs bokeh on the scheduler)."""
    import urllib.request

    if "dashboard" not in client.scheduler_info().get("services", {}):
        return ""
    link = str(client.dashboard_link)
    try:
        with urllib.request.urlopen(link, timeout=2) as answer:
            return link if answer.status == 200 else ""
    except OSError:  # 404 without bokeh, or not reachable from here
        return ""


class _Progress:
    """Repositories done / total, bytes and leaks so far, on one line of a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._shown = False

    def update(self, rows: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        failed_count = sum(r["status"] in (ERROR, "timeout") for r in rows)
        line = (f"keyscan audit: {len(rows)}/{self.total} repositories, "
                f"{sum(r['bytes'] for r in rows) / 1e6:.1f} MB, "
                f"{sum(r['leaks'] for r in rows)} leaks, {failed_count} failed")
        sys.stderr.write(f"\r\x1b[K{line}")
        sys.stderr.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._shown = False
