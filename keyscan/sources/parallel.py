"""History objects read and matched by a pool of worker processes, one per core.

Two kinds of work: runs of delta-chain roots of a pack (`find_in_packs`: each worker
rebuilds those chains in-process, sources/packs.py), or contiguous chunks of an object
list, each worker with its own `git cat-file` (`find_in_objects`: pack order, so delta
bases stay warm in each worker's git; reading through a pipe costs the kernel as much
CPU as git spends decompressing, so one reader cannot keep up with git). Workers match
everything they read and send back only what the parent needs:
the few objects with findings, each with its credentials as plain rows (in memory,
through the pool's own pipe; nothing is written or logged), and the ids of any they
could not read. No content crosses a process boundary. The parent's background git
processes started before the fork get no stdin pipe, so no worker can hold one open;
the walk that feeds git through stdin starts only once the workers exist.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from keyscan.match import PartRow, to_rows
from keyscan.rules import RuleSet
from keyscan.sources import history as source
from keyscan.sources import packs
from keyscan.sources.history import ObjectRef, message_of, read_objects

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

_CHUNK_BYTES = 1024 * 1024 * 1024


@dataclass(slots=True)
class Found:
    hits: list[tuple[ObjectRef, list[list[PartRow]]]] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    interrupted: bool = False  # Ctrl-C: the chunks finished before it
    failed: list[tuple[int, int]] = field(default_factory=list)  # (pack, p): git reads them
    # (blob, member, why): what of an archive was not read (`Matcher.unread`)
    unread: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, part: Found) -> None:
        self.hits.extend(part.hits)
        self.bad.extend(part.bad)
        self.failed.extend(part.failed)
        self.unread.extend(part.unread)
        self.objects += part.objects
        self.bytes += part.bytes


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
    # few, big chunks: each new `cat-file` starts with a cold delta-base cache, which on
    # long delta chains costs more than an uneven split
    jobs = [(_scan_chunk, (git_dir, chunk)) for chunk in chunks(refs, workers * 2)]
    return _in_workers(jobs, rules, workers, on_progress, on_started)


def _in_workers(jobs: Sequence[tuple[Callable[..., Found], tuple[Any, ...]]], rules: RuleSet,
                workers: int, on_progress: Callable[[int, int], None],
                on_started: Callable[[], None]) -> Found:
    """Run `jobs` in a pool of forked workers, each with its own matcher; Ctrl-C stops
    them and keeps what the finished jobs found."""
    found = Found()
    # fork: workers start in milliseconds and need no re-import of __main__; with the
    # fork start method the pool creates all its workers at the first submit
    context = multiprocessing.get_context("fork")
    done = context.Array("q", 2)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_start_worker, initargs=(rules, done)) as pool:
        futures = {pool.submit(fn, *args) for fn, args in jobs}
        on_started()
        try:
            while futures:
                finished, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    found.add(future.result())
                on_progress(done[0], done[1])
        except KeyboardInterrupt:
            found.interrupted = True
            # what the workers had read, though their jobs never came back
            found.objects, found.bytes = max(found.objects, done[0]), max(found.bytes, done[1])
            _stop(pool)
    return found


def pack_jobs(plans: Sequence[packs.PackPlan], parts: int) -> list[tuple[int, list[int]]]:
    """Runs of chain roots (pack order) of about equal rebuilt bytes, about `parts` of them."""
    total = sum(plan.weight[p] for plan in plans for p in plan.roots)
    target = max(total // max(parts, 1) + 1, 1)
    jobs: list[tuple[int, list[int]]] = []
    for number, plan in enumerate(plans):
        run: list[int] = []
        size = 0
        for p in plan.roots:
            if size >= target:
                jobs.append((number, run))
                run, size = [], 0
            run.append(p)
            size += plan.weight[p] + 200
        if run:
            jobs.append((number, run))
    return jobs


_plans: Sequence[packs.PackPlan] = ()  # set before the workers fork: they share it
_max_size = 0


def find_in_packs(plans: Sequence[packs.PackPlan], rules: RuleSet, max_size: int,
                  workers: int, on_progress: Callable[[int, int], None],
                  on_started: Callable[[], None]) -> Found:
    """Every scanned-kind object in `plans`, rebuilt and matched where it is read.

    With more than one worker, runs of chain roots go to forked workers; only the
    objects with findings come back, as rows. Entries that cannot be rebuilt, and
    objects over `max_size` (never rebuilt), come back as `failed`: git reads those."""
    global _plans, _max_size
    _plans, _max_size = plans, max_size
    total = sum(plan.weight[p] for plan in plans for p in plan.roots)
    if workers <= 1 or total <= source.PARALLEL_BYTES:
        found = Found()
        _start_worker(rules, None)
        global _done
        _done = _Counters(on_progress)
        on_started()
        for number, roots in pack_jobs(plans, 1):
            part = _scan_roots(number, roots)
            found.add(part)
            if part.interrupted:  # Ctrl-C: every object matched so far is whole
                found.interrupted = True
                break
        return found
    # rebuilding needs no warm cache (each chain is walked whole), so many small jobs
    # balance the cores without cost
    jobs = [(_scan_roots, job) for job in pack_jobs(plans, workers * 8)]
    return _in_workers(jobs, rules, workers, on_progress, on_started)


def _scan_roots(number: int, roots: list[int]) -> Found:
    assert _matcher is not None
    matcher = _matcher
    plan = _plans[number]
    kinds, emit, max_size = plan.kind, plan.emit, _max_size
    found = Found()
    reported = [0, 0]

    def on_object(p: int, content: bytes) -> None:
        if not emit[p]:
            return
        kind = kinds[p]
        if kind not in packs.KINDS:  # a type the plan could not tell: git reads it
            found.failed.append((number, p))
            return
        data = content if kind == packs.BLOB else message_of(packs.KINDS[kind], content)
        creds = matcher.find(data) if data else []
        if creds:
            found.hits.append((packs.ref_of(plan, p, len(content)), to_rows(creds)))
        if matcher.unread:
            sha = plan.sha(p).hex()
            found.unread += [(sha, m, why) for m, why in matcher.unread]
        # counted once matched: a Ctrl-C in between leaves no half-read object counted
        found.objects += 1
        found.bytes += len(content)
        if found.bytes - reported[1] > _REPORT_BYTES or found.objects - reported[0] >= 256:
            _add_progress(found.objects - reported[0], found.bytes - reported[1])
            reported[:] = [found.objects, found.bytes]

    try:
        packs.walk(plan, roots, on_object, lambda p: found.failed.append((number, p)),
                   max_size)
    except KeyboardInterrupt:  # only in-process: workers ignore SIGINT
        found.interrupted = True
    _add_progress(found.objects - reported[0], found.bytes - reported[1])
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
    _matcher = Matcher(rules)
    if done is None:
        return  # in-process: signals stay the parent's
    # Ctrl-C on a terminal reaches the whole process group: the parent alone decides,
    # and stops the workers; and a worker never outlives its parent (Linux).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()


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
        if _matcher.unread:
            found.unread += [(obj.sha, m, why) for m, why in _matcher.unread]
    _add_progress(found.objects - reported_objects, found.bytes - reported)
    return found


_REPORT_BYTES = 32 * 1024 * 1024
_done: Any = None  # shared counters: objects and bytes read by all workers


def _add_progress(objects: int, size: int) -> None:
    if _done is not None:
        with _done.get_lock():
            _done[0] += objects
            _done[1] += size
        if isinstance(_done, _Counters):
            _done.report()


class _Counters(list[int]):
    """Progress counters for work done in this process (the shape of the workers' shared
    array), reported as they grow."""

    def __init__(self, on_progress: Callable[[int, int], None]) -> None:
        super().__init__([0, 0])
        self.on_progress = on_progress

    def get_lock(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def report(self) -> None:
        self.on_progress(self[0], self[1])
