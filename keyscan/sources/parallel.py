"""History objects read and matched by a pool of worker processes, one `git cat-file` each.

Reading a history through a pipe costs the kernel as much CPU as git spends
decompressing it, so one reader process cannot keep up with git. Workers take
contiguous chunks of the object list (pack order, so delta bases stay warm in each
worker's git), match everything they read and send back only what the parent needs:
the few objects with findings, each with its credentials as plain rows (in memory,
through the pool's own pipe; nothing is written or logged), and the ids of any they
could not read. No content crosses a process boundary. Workers are forked before the
parent starts any thread or pipe of its own for the scan.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyscan.match import PartRow, to_rows
from keyscan.rules import RuleSet
from keyscan.sources.history import ObjectRef, message_of, read_objects

PARALLEL_BYTES = 64 * 1024 * 1024  # below this, worker start-up costs more than it saves
_CHUNK_BYTES = 1024 * 1024 * 1024


@dataclass(slots=True)
class Found:
    hits: list[tuple[ObjectRef, list[list[PartRow]]]] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    interrupted: bool = False  # Ctrl-C: the chunks finished before it


def worker_count() -> int:
    """CPUs this process may use; 1 inside a daemon process (e.g. a Dask worker), which
    may not start processes of its own, or when KEYSCAN_WORKERS says so."""
    if multiprocessing.current_process().daemon:
        return 1
    configured = os.environ.get("KEYSCAN_WORKERS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def chunks(refs: Sequence[ObjectRef], parts: int) -> list[list[ObjectRef]]:
    """Contiguous runs of about equal bytes, at least `parts` of them."""
    total = sum(r.size for r in refs)
    target = max(min(_CHUNK_BYTES, total // max(parts, 1) + 1), 1)
    out: list[list[ObjectRef]] = [[]]
    size = 0
    for ref in refs:
        if size >= target:
            out.append([])
            size = 0
        out[-1].append(ref)
        size += ref.size + 200  # headers and per-object work
    return [c for c in out if c]


def find_in_objects(git_dir: Path, refs: Sequence[ObjectRef], rules: RuleSet, workers: int,
                    on_progress: Callable[[int, int], None],
                    on_started: Callable[[], None]) -> Found:
    """`on_started` runs once every worker exists: start threads or pipes only then."""
    found = Found()
    # fork: workers start in milliseconds and need no re-import of __main__; with the
    # fork start method the pool creates all its workers at the first submit
    context = multiprocessing.get_context("fork")
    done = context.Array("q", 2)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_start_worker, initargs=(rules, done)) as pool:
        # few, big chunks: each new `cat-file` starts with a cold delta-base cache,
        # which on long delta chains costs more than an uneven split
        futures = {pool.submit(_scan_chunk, git_dir, chunk)
                   for chunk in chunks(refs, workers * 2)}
        on_started()
        try:
            while futures:
                finished, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    part = future.result()
                    found.hits.extend(part.hits)
                    found.bad.extend(part.bad)
                    found.objects += part.objects
                    found.bytes += part.bytes
                on_progress(done[0], done[1])
        except KeyboardInterrupt:
            found.interrupted = True
            # what the workers had read, though their chunks never came back
            found.objects, found.bytes = max(found.objects, done[0]), max(found.bytes, done[1])
            _stop(pool)
    return found


def _stop(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C: end the workers now rather than let them finish every queued chunk."""
    for process in list((pool._processes or {}).values()):
        process.terminate()  # its `git cat-file` dies on the closed pipe
    pool.shutdown(wait=True, cancel_futures=True)


_matcher = None


def _start_worker(rules: RuleSet, done: Any) -> None:
    global _matcher, _done
    from keyscan.match import Matcher

    _done = done
    # Ctrl-C on a terminal reaches the whole process group: the parent alone decides,
    # and stops the workers; and a worker never outlives its parent (Linux).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    _matcher = Matcher(rules)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own pipes end the workers
        pass


def _scan_chunk(git_dir: Path, refs: list[ObjectRef]) -> Found:
    assert _matcher is not None
    kinds = {r.sha: r for r in refs}
    found = Found()
    reported = reported_objects = 0
    for obj in read_objects(git_dir, refs):
        if obj.data is None:
            why = "corrupt: git could not read it" if obj.kind == "corrupt" else "missing"
            found.bad.append((obj.sha, why))
            continue
        found.objects += 1
        found.bytes += len(obj.data)
        if found.bytes - reported > _REPORT_BYTES or found.objects - reported_objects >= 64:
            _add_progress(found.objects - reported_objects, found.bytes - reported)
            reported, reported_objects = found.bytes, found.objects
        data = obj.data if obj.kind == "blob" else message_of(obj.kind, obj.data)
        creds = _matcher.find(data) if data else []
        if creds:
            found.hits.append((kinds[obj.sha], to_rows(creds)))
    _add_progress(found.objects - reported_objects, found.bytes - reported)
    return found


_REPORT_BYTES = 32 * 1024 * 1024
_done: Any = None  # shared counters: objects and bytes read by all workers


def _add_progress(objects: int, size: int) -> None:
    if _done is not None:
        with _done.get_lock():
            _done[0] += objects
            _done[1] += size
