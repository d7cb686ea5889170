"""Every object in git's pack files, read in-process: each delta applied to its base once.

A history is mostly deltas: the botocore benchmark holds 5.9 GB of blob versions in an
84 MB pack. `git cat-file --batch` rebuilds each version and then copies it through a
pipe, which on a 2-core machine costs the kernel as much CPU as git spends rebuilding.
Here the pack is memory-mapped and walked as git's own `index-pack` walks it: every
base object is inflated once, and each delta chain is followed depth-first with its
base still in memory, so every object is rebuilt exactly once, with one copy, and
handed to the matcher without crossing a process boundary.

Only what this module can read for certain is read here. Loose objects, objects in
alternate stores, SHA-256 repositories, index versions other than 2, any entry that
does not inflate or apply cleanly, and any object over the size limit (each with every
delta built on it) are left to the `git cat-file` path, which reports what git cannot
read and skips what is too large from its size alone.

The plan (`plan_pack`) is compact arrays, built once in the parent and shared with
forked workers; `walk` rebuilds the objects under a range of chain roots.
"""

from __future__ import annotations

import mmap
import os
import pickle
import struct
import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keyscan.cache import IdSet
from keyscan.sources import history
from keyscan.sources.history import ObjectRef
from keyscan.sources.store import StoreError
from keyscan.sources.store import apply_delta as apply_delta_py

_COMMIT, _TREE, BLOB, _TAG, _OFS_DELTA, _REF_DELTA = 1, 2, 3, 4, 6, 7
KINDS = {_COMMIT: "commit", BLOB: "blob", _TAG: "tag"}  # what a history scan reads
_SCANNED = bytes(1 if k in KINDS else 0 for k in range(256))
_IDX_V2 = b"\xfftOc\x00\x00\x00\x02"
_DROP_BYTES = 64 * 1024 * 1024  # compressed bytes read between page-cache drops (RSS)

_inflate: Callable[[bytes], bytes] = zlib.decompress
try:  # zlib-ng inflates git's objects ~2x faster than the system zlib, same format
    from zlib_ng import zlib_ng as _zlib_ng

    _inflate = _zlib_ng.decompress
except ImportError:  # pragma: no cover - a platform without zlib-ng wheels
    pass

try:  # dulwich's C delta applier: one copy per object, no Python loop over opcodes
    from dulwich._pack import apply_delta as _apply_delta_c
except ImportError:  # pragma: no cover - dulwich ships compiled wheels for our targets
    _apply_delta_c = None


# an entry that does not inflate or apply: git is asked for it instead
PackError = StoreError


@dataclass(slots=True)
class PackPlan:
    """One pack file, entries in pack order (p = 0..n-1)."""

    path: Path
    ids: IdSet  # the index's ids (sorted)
    order: array  # type: ignore[type-arg]  # p -> position in `ids`
    kind: bytearray  # the object type of each entry (deltas take their base's), 0: unknown
    start: array  # type: ignore[type-arg]  # offset of the zlib data
    end: array  # type: ignore[type-arg]  # offset after it
    base: array  # type: ignore[type-arg]  # p of the delta base, -1 for a whole object
    first: array  # type: ignore[type-arg]  # first delta built on p, -1 if none
    next: array  # type: ignore[type-arg]  # next delta on the same base, -1 if none
    size: array  # type: ignore[type-arg]  # inflated size of each entry (a delta's own)
    weight: array  # type: ignore[type-arg]  # about the bytes rebuilt under each root
    roots: list[int]  # p of every whole object of a scanned kind, pack order
    emit: bytearray  # 1: scan this entry (not a duplicate of an earlier pack's)
    broken: list[int]  # entries that cannot be walked (bad header, base elsewhere),
    # with every delta built on them: git reads those

    def __len__(self) -> int:
        return len(self.ids)

    def sha(self, p: int) -> bytes:
        return self.ids[int(self.order[p])]

    def __contains__(self, sha: bytes) -> bool:
        return sha in self.ids

    def position(self, sha: bytes) -> int:
        """p of an id in this pack (ValueError if absent)."""
        return self.order.index(self.ids.index(sha))

    def _mask(self) -> bytes:
        """1 for each entry a scan reads (blobs, commits, tags; no duplicates), else 0."""
        mask = bytes(self.kind.translate(_SCANNED))
        if 0 in self.emit:
            mask = bytes(a & b for a, b in zip(mask, self.emit, strict=True))
        return mask

    @property
    def count(self) -> int:
        return self._mask().count(1)


def supported(objects: Path) -> bool:
    """Whether this store's objects can all be listed from its own packs and folders."""
    return not (objects / "info" / "alternates").exists()


def pack_indexes(objects: Path) -> list[Path]:
    folder = objects / "pack"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("pack-*.idx") if p.with_suffix(".pack").is_file())


loose_objects = history.loose_objects  # sources/history.py: re-scans list them too


def index_ids(path: Path) -> IdSet:
    """The ids a pack index lists; none if it cannot be read or is of another format."""
    try:
        index = read_index(path)
    except OSError:
        return IdSet()
    return index[0] if index is not None else IdSet()


def read_index(path: Path) -> tuple[IdSet, array] | None:  # type: ignore[type-arg]
    """Object ids and pack offsets from a version-2 pack index; None for another format."""
    data = path.read_bytes()
    if data[:8] != _IDX_V2 or len(data) < 8 + 1024:
        return None
    n = struct.unpack_from(">I", data, 8 + 255 * 4)[0]
    ids_at = 8 + 1024
    offsets_at = ids_at + 24 * n  # after the ids and their CRCs
    if len(data) < offsets_at + 4 * n + 40:
        return None
    shas = IdSet(data[ids_at : ids_at + 20 * n])
    small = array("I")
    small.frombytes(data[offsets_at : offsets_at + 4 * n])
    if sys.byteorder == "little":
        small.byteswap()
    offsets = array("q", small)
    large_at = offsets_at + 4 * n
    if n and max(small) & 0x80000000:  # packs over 2 GB: some offsets are 8 bytes
        for i, value in enumerate(small):
            if value & 0x80000000:  # an index into the 8-byte table
                offsets[i] = struct.unpack_from(">Q", data,
                                                large_at + 8 * (value & 0x7FFFFFFF))[0]
    return shas, offsets


DAMAGED = "damaged"  # plan_packs: a pack that cannot be read or mapped


def plan_packs(indexes: list[Path]) -> list[PackPlan | str | None]:
    """`plan_pack` for each index, in order; DAMAGED for a pack that cannot be read.
    With several packs (a clone fetched into many times) they are planned in two
    groups, one a core; a group of `NUMPY_ENTRIES` entries or more is planned by numpy
    in a forked helper (its import paid once for the group, and numpy kept out of the
    scanning processes), the rest here. Repeats across packs: `skip_repeats`."""
    sizes = [_index_size(idx) for idx in indexes]
    groups = [list(range(len(indexes)))]
    if len(indexes) > 1 and sum(sizes) >= _SPLIT_ENTRIES and hasattr(os, "fork"):
        groups = [[], []]
        load = [0, 0]  # biggest first, each to the less loaded side
        for n in sorted(range(len(indexes)), key=sizes.__getitem__, reverse=True):
            side = int(load[1] < load[0])
            load[side] += sizes[n]
            groups[side].append(n)
        groups = [sorted(g) for g in groups]
    helpers = {}
    for g, members in enumerate(groups):
        numpy = sum(sizes[n] for n in members) >= NUMPY_ENTRIES
        if len(indexes) > 1 and hasattr(os, "fork") and (g > 0 or numpy):
            helpers[g] = _fork(_plan_each, [indexes[n] for n in members], numpy)
    planned: dict[int, PackPlan | str | None] = {}
    for g, members in enumerate(groups):
        done = _join(helpers.get(g)) if g in helpers else None
        if not isinstance(done, list):  # no helper, or it failed: plan those here
            done = _plan_each([indexes[n] for n in members])
        planned.update(zip(members, done, strict=True))
    return [planned[n] for n in range(len(indexes))]


def _plan_each(indexes: list[Path], with_numpy: bool = False) -> list[PackPlan | str | None]:
    """`plan_pack` of each; `with_numpy`: by numpy, here (a forked helper's group)."""
    out: list[PackPlan | str | None] = []
    for idx in indexes:
        try:
            out.append(_planned(idx, _numpy_planner()) if with_numpy else plan_pack(idx))
        except (OSError, ValueError):  # unreadable or emptied: git says what it can read
            out.append(DAMAGED)
    return out


def _numpy_planner() -> Planner:
    from keyscan.sources import packs_np

    return packs_np.plan


def _index_size(idx: Path) -> int:
    """Entries an index lists, from its file size (about 28 bytes each in version 2)."""
    try:
        return max(0, idx.stat().st_size - 1072) // 28
    except OSError:
        return 0


def skip_repeats(plan: PackPlan, seen: set[bytes]) -> None:
    """Entries repeating ids planned from earlier packs (in `seen`) are rebuilt (a delta
    may need them) but not scanned again; this pack's ids join `seen`."""
    mine = set(plan.ids)
    again = mine & seen  # none, unless packs overlap (a fetch beside an old pack)
    if again:
        for p, i in enumerate(plan.order):
            if plan.ids[i] in again:
                plan.emit[p] = 0
    seen |= mine


def plan_pack(idx: Path) -> PackPlan | None:
    """Parse every entry header once: types, delta bases and the chains built on them.
    None when the index or pack is in a format this reader does not know."""
    if _index_size(idx) >= NUMPY_ENTRIES and hasattr(os, "fork"):
        planned = _join(_fork(_plan_with_numpy, idx))
        if isinstance(planned, PackPlan):
            return planned
        if planned == _UNKNOWN_FORMAT:
            return None
    return _planned(idx, _plan_in_python)  # small packs, or the helper failed


# From this many entries up, numpy plans the pack in a forked helper: its import (~0.1 s,
# ~30 MB) and its work arrays stay out of the scanning processes. The Python planner
# costs ~4 µs an entry.
NUMPY_ENTRIES = 40_000
_UNKNOWN_FORMAT = "unknown format"

Planner = Callable[[mmap.mmap, IdSet, array, int], "PackPlan"]  # type: ignore[type-arg]


def _planned(idx: Path, planner: Planner) -> PackPlan | None:
    """The plan `planner` makes of the pack of `idx`; None for a format not known here."""
    index = read_index(idx)
    if index is None:
        return None
    ids, offsets = index
    pack = idx.with_suffix(".pack")
    with pack.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm[:4] != b"PACK" or struct.unpack_from(">I", mm, 4)[0] not in (2, 3):
            return None
        plan = planner(mm, ids, offsets, len(mm) - 20)
    plan.path = pack
    return plan


def _plan_in_python(mm: mmap.mmap, ids: IdSet, offsets: array,  # type: ignore[type-arg]
                    size: int) -> PackPlan:
    order = array("i", sorted(range(len(ids)), key=offsets.__getitem__))
    starts = array("q", map(offsets.__getitem__, order))
    return _headers(mm, ids, order, starts, size)


def _plan_with_numpy(idx: Path) -> PackPlan | str:
    """`plan_pack` by packs_np (run in a forked helper: `plan_pack`)."""
    return _planned(idx, _numpy_planner()) or _UNKNOWN_FORMAT


@dataclass(slots=True)
class _Headers:
    """What the entry headers of pack positions lo..hi-1 say (arrays indexed p - lo)."""

    kind: bytearray  # 0 where a delta's base lies before lo: filled in once merged
    start: array  # type: ignore[type-arg]
    base: array  # type: ignore[type-arg]  # absolute p of the base, -1 for whole objects
    inflated: array  # type: ignore[type-arg]
    broken: list[int]
    ref_bases: list[tuple[int, bytes]]


_SPLIT_ENTRIES = 100_000  # above this, a forked helper parses half of the headers


def _headers(mm: mmap.mmap, ids: IdSet, order: array,  # type: ignore[type-arg]
             offsets: array, size: int) -> PackPlan:  # type: ignore[type-arg]
    n = len(ids)
    mid = n // 2 if n >= _SPLIT_ENTRIES and hasattr(os, "fork") else n
    helper = _fork(_parse, mm, offsets, mid, n) if mid < n else None
    part = _parse(mm, offsets, 0, mid)
    if mid < n:
        rest = _join(helper)
        _merge(part, rest if isinstance(rest, _Headers) else _parse(mm, offsets, mid, n))
    kind, start, base, inflated = part.kind, part.start, part.base, part.inflated
    broken, ref_bases = part.broken, part.ref_bases
    end = array("q", offsets[1:])
    end.append(size)
    if ref_bases:
        _link_ref_deltas([ids[i] for i in order], base, kind, ref_bases, broken)
    first = array("i", [-1]) * n
    nxt = array("i", [-1]) * n
    count = array("q", [1]) * n
    for p in range(n - 1, -1, -1):
        b = base[p]
        if b >= 0:
            nxt[p] = first[b]
            first[b] = p
            count[b] += count[p]  # exact for offset deltas, whose bases come first
    bad = set(broken)
    roots = [p for p in range(n) if base[p] == -1 and kind[p] in KINDS and p not in bad]
    weight = array("q", bytes(8 * n))
    for p in roots:
        weight[p] = inflated[p] * count[p]  # each delta rebuilds about its base's size
    plan = PackPlan(Path(), ids, order, kind, start, end, base, first, nxt, inflated, weight,
                    roots, bytearray(b"\x01") * n, [])
    for p in broken:
        _fail_tree(plan, p, plan.broken.append)
    return plan


def _parse(mm: mmap.mmap, offsets: array, lo: int, hi: int  # type: ignore[type-arg]
           ) -> _Headers:
    """Parse the entry headers of pack positions lo..hi-1."""
    m = hi - lo
    out = _Headers(bytearray(m), array("q", bytes(8 * m)), array("i", [-1]) * m,
                   array("q", bytes(8 * m)), [], [])
    kind, start, base, inflated = out.kind, out.start, out.base, out.inflated
    view = memoryview(mm)  # indexing it yields ints with no copy
    try:
        for p in range(lo, hi):
            off = offsets[p]
            i = p - lo
            try:
                c = view[off]
                t = (c >> 4) & 7
                length = c & 15
                k = off + 1
                shift = 4
                while c & 0x80:
                    c = view[k]
                    k += 1
                    length |= (c & 0x7F) << shift
                    shift += 7
                if t == _OFS_DELTA:
                    c = view[k]
                    k += 1
                    back = c & 0x7F
                    while c & 0x80:
                        c = view[k]
                        k += 1
                        back = ((back + 1) << 7) | (c & 0x7F)
                    b = bisect_left(offsets, off - back, 0, p)
                    if back <= 0 or b >= p or offsets[b] != off - back:
                        raise IndexError(off)
                    base[i] = b
                    if b >= lo:
                        kind[i] = kind[b - lo]
                elif t == _REF_DELTA:
                    out.ref_bases.append((p, bytes(view[k : k + 20])))
                    k += 20
                elif t in (_COMMIT, _TREE, BLOB, _TAG):
                    kind[i] = t
                else:
                    raise IndexError(off)
            except IndexError:
                out.broken.append(p)
                continue
            start[i] = k
            inflated[i] = length
    finally:
        view.release()
    return out


def _fork(fn: Callable[..., object], *args: object) -> tuple[int, int] | None:
    """`fn(*args)` in a forked process (the other core), its result sent back through
    a pipe (`_join`); None if it cannot be started (the caller does the work itself)."""
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the helper: compute, write, leave without running any cleanup
        code = 1
        try:
            os.close(read_end)
            payload = pickle.dumps(fn(*args), pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _join(helper: tuple[int, int] | None) -> object:
    """What the forked helper computed; None if it failed (or none was started)."""
    if helper is None:
        return None
    pid, read_end = helper
    with os.fdopen(read_end, "rb") as inp:
        payload = inp.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not payload:
        return None
    return pickle.loads(payload)  # from our own forked child, through our own pipe


def _merge(first: _Headers, rest: _Headers) -> None:
    """Append `rest` to `first`; deltas whose base was in `first` take its type."""
    lo = len(first.kind)
    first.kind += rest.kind
    first.start += rest.start
    first.base += rest.base
    first.inflated += rest.inflated
    first.broken += rest.broken
    first.ref_bases += rest.ref_bases
    kind, base = first.kind, first.base
    p = kind.find(0, lo)
    while p != -1:  # in pack order: a base always comes before its deltas
        b = base[p]
        if b >= 0:
            kind[p] = kind[b]
        p = kind.find(0, p + 1)


def _link_ref_deltas(shas: list[bytes], base: array, kind: bytearray,  # type: ignore[type-arg]
                     ref_bases: list[tuple[int, bytes]], broken: list[int]) -> None:
    """Deltas naming their base by id (thin or old packs): link those in this pack."""
    where = {sha: p for p, sha in enumerate(shas)}
    for p, sha in ref_bases:
        b = where.get(sha, -1)
        if b == -1 or b == p:
            broken.append(p)  # the base is elsewhere: git reads it
        else:
            base[p] = b
    # types follow the chains, whose bases may come later in the pack: a fetched thin
    # pack gets the bases its deltas name appended at its end, and the offset deltas
    # built on such a delta were parsed before it had a type
    p = kind.find(0)
    while p != -1:
        chain: list[int] = []
        q = p
        while q != -1 and not kind[q] and len(chain) <= len(shas):
            chain.append(q)
            q = base[q]
        for c in chain:
            kind[c] = kind[q] if q != -1 else 0
        p = kind.find(0, p + 1)


Emit = Callable[[int, bytes], None]


def walk(plan: PackPlan, roots: list[int], emit: Emit, failed: Callable[[int], None],
         max_size: int | None = None) -> None:
    """Rebuild every object under `roots` (depth-first, each once) and pass each one
    to `emit(p, content)`; an entry that cannot be rebuilt goes to `failed(p)`, with
    everything built on it. So does an object larger than `max_size`, before it is
    rebuilt: git then reports it from its size alone (and reads the deltas on it that
    are small), so no object over the limit is ever held in memory here."""
    limit = max_size if max_size is not None else 1 << 62
    try:
        with plan.path.open("rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # outlives the file
    except (OSError, ValueError):  # gone since planned (a `git gc` meanwhile), or emptied
        for root in roots:
            _fail_tree(plan, root, failed)
        return
    with mm:
        read = 0
        start, end, first, nxt, size = plan.start, plan.end, plan.first, plan.next, plan.size
        for root in roots:
            stack: list[tuple[int, bytes | None]] = [(root, None)]
            while stack:
                p, base = stack.pop()
                if base is None and size[p] > limit:
                    _fail_tree(plan, p, failed)
                    continue
                try:
                    raw = _inflate(mm[start[p] : end[p]])
                    if len(raw) != size[p]:
                        raise PackError("inflated size differs from the entry header")
                    if base is not None and _target_size(raw) > limit:
                        _fail_tree(plan, p, failed)
                        continue
                    content = raw if base is None else _apply(base, raw)
                except Exception:  # damaged data fails in many ways: git reads it instead
                    _fail_tree(plan, p, failed)
                    continue
                read += end[p] - start[p]
                emit(p, content)
                child = first[p]
                while child != -1:
                    stack.append((child, content))
                    child = nxt[child]
            if read > _DROP_BYTES:  # pages already read leave this process's RSS
                read = 0
                mm.madvise(mmap.MADV_DONTNEED)


def _fail_tree(plan: PackPlan, p: int, failed: Callable[[int], None]) -> None:
    todo = [p]
    while todo:
        q = todo.pop()
        failed(q)
        child = plan.first[q]
        while child != -1:
            todo.append(child)
            child = plan.next[child]


def _apply(base: bytes, delta: bytes) -> bytes:
    if _apply_delta_c is not None:
        try:  # checks the base size and every copy against it, like git
            chunks = _apply_delta_c(base, delta)
        except Exception as exc:  # dulwich's ApplyDeltaError and friends
            raise PackError(str(exc)) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return apply_delta_py(base, delta)


def _target_size(delta: bytes) -> int:
    """The size of the object a delta builds: its header's second number (read for
    every delta of the history, so without calls: ~2x `store.varint` twice)."""
    n = len(delta)
    at = 0
    while at < n and delta[at] & 0x80:  # the base's size: skipped
        at += 1
    at += 1
    value = shift = 0
    while at < n:
        c = delta[at]
        at += 1
        value |= (c & 0x7F) << shift
        if not c & 0x80:
            return value
        shift += 7
    raise PackError("truncated delta header")


def ref_of(plan: PackPlan, p: int, size: int) -> ObjectRef:
    return ObjectRef(plan.sha(p).hex(), KINDS.get(plan.kind[p], "blob"), size)
