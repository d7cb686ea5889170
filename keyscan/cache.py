"""The per-repository incremental cache under .git/keyscan/.

It holds object ids and findings, never a secret: the ids of objects already
scanned, the ref tips of the last scan (and which refs contained each commit that
held a finding), where each blob holding findings appears, and the hash of the rules
(a rules change invalidates everything). A finding is kept as the report needs it
without its object being read again: rule, line, column, status, the key ID (an
identifier, not a secret: AWS logs it in CloudTrail and every report shows it) and,
of a secret access key or session token, only what a redacted report shows (its
first characters and its length) and a keyed digest (`match.to_rows(seal=True)`). A scan
that must show or use the secrets themselves reads those objects again. Written
atomically under a lock, so two runs at once cannot corrupt it; a damaged cache is
rebuilt with a warning.

The state is kept in `marshal`'s format, not JSON: a re-scan after one commit reads and
writes it whole, and json took ~7 ms of that ~80 ms run against marshal's ~1.5 ms.
marshal trusts what it reads, and a cache decides what is not read again: the state
carries a MAC under a key of this user's (`cache_key`, in the user's cache folder), so
only a state this user's keyscan wrote is read. A damaged one, or one that came with a
copy of someone else's repository (a snapshot of a `.git` folder), is rebuilt: it can
neither hide a leak by listing its objects as scanned nor feed marshal crafted bytes.
The header names the marshal version too.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import mmap
import os
import struct
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, pairwise
from operator import itemgetter
from pathlib import Path

from keyscan.interrupt import held
from keyscan.record import field, record

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

VERSION = 8  # 6: state.bin (marshal) replaces state.json; 7: places in history order (a
# later-fetched older commit first), which a version-6 cache may hold out of order; 8:
# archives are looked into and found parts name their member (older results lack them)
STATE = "state.bin"
_OLD_STATE = "state.json"  # versions 1-5
_MAGIC = b"keyscan-cache\0"
_HEADER = struct.Struct(f">{len(_MAGIC)}sH32s")  # magic, marshal version, MAC of the body
_KEY_FILE = "cache.key"
_FIRST = itemgetter(0)


class IdSet:
    """A sorted table of 20-byte object ids, as stored in scanned.bin and in a pack
    index: membership by binary search, and no Python object per id (a set of 300k ids
    costs ~30 MB and ~0.05 s to build on every incremental scan; this costs the
    table's bytes)."""

    __slots__ = ("table",)

    def __init__(self, table: bytes | mmap.mmap = b"") -> None:
        self.table = table

    @classmethod
    def of(cls, ids: Iterable[bytes]) -> IdSet:
        return cls(b"".join(sorted(set(ids))))

    @classmethod
    def merged(cls, sets: Iterable[IdSet]) -> IdSet:
        """The union of sorted tables (a store's pack indexes): sorted as the runs they
        are, which Timsort merges in C, repeats then dropped. ~70 ms for 300k ids in 9
        tables, against ~230 ms for `of` (a set, then a sort of the set's order)."""
        ids = [b"", *sorted(chain.from_iterable(sets))]
        return cls(b"".join([sha for before, sha in pairwise(ids) if sha != before]))

    def __len__(self) -> int:
        return len(self.table) // 20

    def __iter__(self) -> Iterator[bytes]:
        # each id cut out in C (struct), not by a Python slice a step: 300k ids, 90 -> 64 ms
        return map(_FIRST, struct.iter_unpack("20s", self.table))

    def __getitem__(self, i: int) -> bytes:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.table[20 * i : 20 * i + 20]

    def index(self, sha: bytes) -> int:
        """Position of an id in the table (ValueError if absent)."""
        i = self._find(sha)
        if self.table[20 * i : 20 * i + 20] != sha:
            raise ValueError(sha.hex())
        return i

    def _find(self, sha: bytes) -> int:
        """Index of the first id >= sha."""
        return bisect_left(self, sha)

    def __contains__(self, sha: object) -> bool:
        if not isinstance(sha, bytes) or len(sha) != 20:
            return False
        i = self._find(sha)
        return self.table[20 * i : 20 * i + 20] == sha

    def union(self, other: IdSet) -> IdSet:
        if len(other) > len(self) // 8 + 64:  # many: one sort of both
            return IdSet.of([*self, *other])
        parts, prev = [], 0
        for sha in other:  # few: splice them in, in order
            i = self._find(sha)
            if self.table[20 * i : 20 * i + 20] != sha:
                parts += [self.table[20 * prev : 20 * i], sha]
                prev = i
        if not parts:
            return self
        return IdSet(b"".join([*parts, self.table[20 * prev :]]))

    def without(self, ids: Iterable[bytes]) -> IdSet:
        table = self.table
        for sha in ids:
            i = IdSet(table)._find(sha)
            if table[20 * i : 20 * i + 20] == sha:
                table = table[: 20 * i] + table[20 * i + 20 :]
        return IdSet(table)


class Scanned:
    """The ids of the objects already scanned: the sorted table of scanned.bin, mapped
    rather than read, and the ids added since it was written (scanned.add). A re-scan
    that reads a few new objects writes a few ids, not the whole table again."""

    __slots__ = ("added", "base", "base_changed")

    def __init__(self, base: IdSet, added: IdSet | None = None,
                 base_changed: bool = True) -> None:
        self.base = base
        self.added = added if added is not None else IdSet()
        self.base_changed = base_changed  # scanned.bin must be written again

    def __contains__(self, sha: object) -> bool:
        return sha in self.added or sha in self.base

    def __len__(self) -> int:
        return len(self.base) + len(self.added)

    def missing(self, ids: IdSet) -> list[bytes]:
        """Those of `ids` not scanned, in order: by set difference (a pack of 300k ids
        against the table: ~0.1 s, where a lookup each took 8 s)."""
        if not len(ids):
            return []  # a re-scan without a new pack: no walk over the table
        left = set(ids)
        left.difference_update(self.base)
        left.difference_update(self.added)
        return sorted(left)

    def union(self, other: IdSet) -> Scanned:
        if len(other) > len(self.base) // 8 + 64:  # a whole store: one table
            return Scanned(self.base.union(self.added).union(other))
        added = self.added.union(IdSet.of(sha for sha in other if sha not in self.base))
        if len(added) > len(self.base) // 8 + 1024:  # folded in once they are many
            return Scanned(self.base.union(added))
        return Scanned(self.base, added, self.base_changed)

    def without(self, ids: Iterable[bytes]) -> Scanned:
        ids = list(ids)
        gone = [sha for sha in ids if sha in self.base]
        if gone:
            return Scanned(self.base.without(gone).union(self.added.without(ids)))
        return Scanned(self.base, self.added.without(ids), self.base_changed)


@record(frozen=False)
class CacheState:
    rules_digest: str = ""
    tips: list[str] = field(default_factory=list)
    scanned: Scanned = field(default_factory=lambda: Scanned(IdSet()))  # objects read
    # (trees may be listed too)
    # where finding blobs appear: paths, commits, authors; no content, no secret
    appearances: dict[str, list[list[object]]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # re-read (and re-reported) each run
    # blob id -> its findings, as `match.to_rows(seal=True)` keeps them
    findings: dict[str, Sequence[Sequence[Sequence[object]]]] = field(default_factory=dict)
    # commit or tag id -> [its kind, the findings in its message]
    messages: dict[str, list[object]] = field(default_factory=dict)
    ref_tips: dict[str, str] = field(default_factory=dict)  # ref name -> its commit
    # an object a ref names that is no commit (an annotated tag, a tree, a blob) ->
    # [what it comes down to, its type]
    ref_peeled: dict[str, list[str]] = field(default_factory=dict)
    contains: dict[str, list[str]] = field(default_factory=dict)  # finding commit -> refs
    # the default branch and its tip's commit, and the finding blobs in that commit's tree
    # with their paths there
    head_tip: list[str] = field(default_factory=list)
    in_head: dict[str, list[str]] = field(default_factory=dict)
    shallow: str = ""  # a shallow clone's boundary (its `shallow` file): "" for a whole one
    # when the scan started (ns, less a margin): loose-object folders changed since then
    # are listed by the next re-scan (`history._loose_unscanned`)
    loose_ns: int = 0


def user_cache_folder() -> Path:
    """Per-user cache of derived data that holds nothing scanned (compiled rules)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keyscan"


DERIVED_KEPT = 32  # compiled rule files and prefilter databases kept, of each kind


def write_derived(path: Path, data: bytes) -> None:
    """Write a file of the user's cache (`rules-….json`, `prefilter-….hsdb`), and drop the
    least recently used of its kind beyond DERIVED_KEPT: each rule file edit or keyscan
    upgrade makes a new one, and nothing else would ever remove the old ones. Used: read
    or written, as the file's times say (a copy every scan reads is kept, however old)."""
    write_private(path, data)
    kind = path.name.split("-", 1)[0] + "-*" + path.suffix
    with contextlib.suppress(OSError):
        dated = []
        for other in path.parent.glob(kind):
            with contextlib.suppress(OSError):  # removed meanwhile by another keyscan
                st = other.stat()  # last written or read (atime, where the system keeps it)
                dated.append((max(st.st_mtime_ns, st.st_atime_ns), other))
        for _, old in sorted(dated, reverse=True)[DERIVED_KEPT:]:
            with contextlib.suppress(OSError):
                old.unlink()


def write_private(path: Path, data: bytes) -> None:
    """Atomically write a cache file only its owner can read; failures are not errors."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)


def cache_dir(git_dir: Path) -> Path:
    return git_dir / "keyscan"


def exists(git_dir: Path) -> bool:
    """Whether a scan left a cache here (a re-scan follows)."""
    return (cache_dir(git_dir) / STATE).exists()


def cache_key() -> bytes | None:
    """This user's key for the caches keyscan writes: 32 random bytes in the user's cache
    folder (0600), made on first use; None when no such file can be kept."""
    path = user_cache_folder() / _KEY_FILE
    for _ in range(2):
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            damaged = False
        except OSError:
            return None  # not a folder, or not this user's to read
        else:
            if len(key) == 32:
                return key
            damaged = True  # (the caches it vouched for are rebuilt under a new one)
        try:  # published whole or not at all: another run may be making it too
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{_KEY_FILE}.{os.getpid()}.{os.urandom(4).hex()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(32))
            try:
                if damaged:
                    os.replace(tmp, path)
                else:
                    os.link(tmp, path)
            except FileExistsError:
                pass  # the other run's key: read it
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError:
            return None
    return None


def read_state(path: Path, key: bytes | None = None) -> dict[str, object]:
    """The fields of a state file as saved (ValueError: not one this user's keyscan
    wrote, or damaged; `key`: this user's, `cache_key()`)."""
    key = key or cache_key()
    if key is None:
        raise ValueError("no key")
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise ValueError("truncated")
    from keyscan.digest import compare_digest, mac  # not on the pre-commit hook's path

    magic, version, tag = _HEADER.unpack_from(data)
    body = memoryview(data)[_HEADER.size :]
    if magic != _MAGIC or version != marshal.version or not compare_digest(mac(key, body), tag):
        raise ValueError("not written by this user's keyscan, or damaged")
    try:
        meta = marshal.loads(body)
    except (EOFError, TypeError) as exc:
        raise ValueError("damaged") from exc
    if not isinstance(meta, dict):
        raise ValueError("damaged")
    return meta


def write_state(path: Path, meta: dict[str, object], key: bytes) -> None:
    """`meta` (plain data) as a state file under `key`, atomically."""
    from keyscan.digest import mac

    body = marshal.dumps(meta)
    _atomic_write(path, _HEADER.pack(_MAGIC, marshal.version, mac(key, body)) + body)


@contextlib.contextmanager
def locked(git_dir: Path) -> Iterator[str]:
    """Serialise cache updates between concurrent runs on the same repository. Yields
    "" once locked, or why the cache cannot be kept here (a read-only repository, a
    folder of another user's): the scan then goes on without it."""
    folder = cache_dir(git_dir)
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        handle = open(folder / "lock", "a")  # noqa: SIM115 (closed below)
    except OSError as exc:
        yield (f"the scan cache cannot be kept in {folder} ({exc.strerror}): this scan "
               "reads the whole history (make the folder writable, or pass --no-cache)")
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield ""
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load(git_dir: Path, rules_digest: str) -> tuple[CacheState | None, str]:
    """(state, warning). None when absent, stale or damaged; warning says which."""
    folder = cache_dir(git_dir)
    meta_path = folder / STATE
    key = cache_key()
    if key is None:
        return None, (f"no key to vouch for the scan cache can be kept in "
                      f"{user_cache_folder()}: every scan reads the whole history (make that "
                      "folder writable, or set XDG_CACHE_HOME to one)")
    older = "the scan cache is from an older keyscan: scanning the whole history again"
    if not meta_path.exists():
        return None, older if (folder / _OLD_STATE).exists() else ""
    try:
        meta = read_state(meta_path, key)
        if meta.get("version") != VERSION:
            return None, older  # the MAC vouches that this user's keyscan wrote it
        base = _mapped(folder / "scanned.bin", meta["count"])
        added = IdSet(_read_table(folder / "scanned.add", meta["added"]))
        if meta["rules_digest"] != rules_digest:
            return None, "rules changed since the last scan: scanning the whole history again"
        # the types were checked when written and the MAC vouches for the rest
        state = CacheState(
            rules_digest=rules_digest,
            tips=_typed(meta["tips"], list),
            scanned=Scanned(base, added, base_changed=False),
            appearances=_typed(meta["appearances"], dict),
            unreadable=_typed(meta["unreadable"], list),
            findings=_typed(meta["findings"], dict),
            messages=_typed(meta["messages"], dict),
            ref_tips=_typed(meta["ref_tips"], dict),
            ref_peeled=_typed(meta["ref_peeled"], dict),
            contains=_typed(meta["contains"], dict),
            head_tip=_typed(meta["head_tip"], list),
            in_head=_typed(meta["in_head"], dict),
            shallow=_typed(meta["shallow"], str),
            loose_ns=_typed(meta["loose_ns"], int),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None, (f"the scan cache in {folder} was damaged, or not written by this "
                      "user's keyscan: rebuilding it")
    return state, ""


def _typed(value: object, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}")
    return value


def _mapped(path: Path, count: object) -> IdSet:
    """The id table of `path`, mapped (a re-scan looks up a few ids in it: reading all
    of a large one would cost more than the rest of the re-scan)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size != 20 * int(count):  # type: ignore[call-overload]
            raise ValueError("inconsistent")
        if not size:
            return IdSet()
        return IdSet(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))


def _read_table(path: Path, count: object) -> bytes:
    table = path.read_bytes() if count else b""
    if len(table) != 20 * int(count):  # type: ignore[call-overload]
        raise ValueError("inconsistent")
    return table


def save(git_dir: Path, state: CacheState) -> None:
    key = cache_key()
    if key is None:
        return  # said by load(): no state could be trusted again
    folder = cache_dir(git_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    scanned = state.scanned
    meta = {
        "version": VERSION,
        "rules_digest": state.rules_digest,
        "tips": state.tips,
        "count": len(scanned.base),
        "added": len(scanned.added),
        "appearances": state.appearances,
        "unreadable": sorted(set(state.unreadable)),
        "findings": state.findings,
        "messages": state.messages,
        "ref_tips": state.ref_tips,
        "ref_peeled": state.ref_peeled,
        # refs containing each finding commit: hundreds of names each, each name one
        # string object (ancestry's), which marshal writes once and then refers to
        "contains": state.contains,
        "head_tip": state.head_tip,
        "in_head": state.in_head,
        "shallow": state.shallow,
        "loose_ns": state.loose_ns,
    }
    # ids first, then the metadata that vouches for them: a crash in between leaves a
    # count mismatch, which load() treats as damage and rebuilds. Ctrl-C waits for all.
    with held() as hold:
        if scanned.base_changed:
            _atomic_write(folder / "scanned.bin", bytes(scanned.base.table))
        _atomic_write(folder / "scanned.add", bytes(scanned.added.table))
        write_state(folder / STATE, meta, key)
    with contextlib.suppress(OSError):
        (folder / _OLD_STATE).unlink()  # an older keyscan's
    if hold.received:
        raise KeyboardInterrupt


def _atomic_write(path: Path, data: bytes) -> None:
    # named here rather than by tempfile, whose import costs a re-scan ~4 ms
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # no fsync: after a crash, load() detects a count mismatch and rebuilds
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def clear(git_dir: Path) -> None:
    for name in (STATE, _OLD_STATE, "scanned.bin", "scanned.add"):
        with contextlib.suppress(OSError):
            (cache_dir(git_dir) / name).unlink()
