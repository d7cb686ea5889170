"""History objects read and matched by a pool of worker processes, one `git cat-file` each.

Reading a history through a pipe costs the kernel as much CPU as git spends
decompressing it, so one reader process cannot keep up with git. Workers take
contiguous chunks of the object list (pack order, so delta bases stay warm in each
worker's git), match everything they read and send back only object ids: the ids of
the few objects with findings, and of any they could not read. No content and no
secret crosses a process boundary. Workers are forked before the parent starts any
thread or pipe of its own for the scan.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from keyscan.rules import RuleSet
from keyscan.sources.history import ObjectRef, message_of, read_objects

PARALLEL_BYTES = 64 * 1024 * 1024  # below this, worker start-up costs more than it saves
_CHUNK_BYTES = 96 * 1024 * 1024


@dataclass(slots=True)
class Found:
    hits: list[ObjectRef] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0


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
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_start_worker, initargs=(rules,)) as pool:
        futures = [pool.submit(_scan_chunk, git_dir, chunk)
                   for chunk in chunks(refs, workers * 4)]
        on_started()
        for future in as_completed(futures):
            part = future.result()
            found.hits.extend(part.hits)
            found.bad.extend(part.bad)
            found.objects += part.objects
            found.bytes += part.bytes
            on_progress(found.objects, found.bytes)
    return found


_matcher = None


def _start_worker(rules: RuleSet) -> None:
    global _matcher
    from keyscan.match import Matcher

    _matcher = Matcher(rules)


def _scan_chunk(git_dir: Path, refs: list[ObjectRef]) -> Found:
    assert _matcher is not None
    kinds = {r.sha: r for r in refs}
    found = Found()
    for obj in read_objects(git_dir, refs):
        if obj.data is None:
            why = "corrupt: git could not read it" if obj.kind == "corrupt" else "missing"
            found.bad.append((obj.sha, why))
            continue
        found.objects += 1
        found.bytes += len(obj.data)
        data = obj.data if obj.kind == "blob" else message_of(obj.kind, obj.data)
        if data and _matcher.find(data):
            found.hits.append(kinds[obj.sha])
    return found
