"""The per-repository incremental cache under .git/keyscan/.

It holds object ids, never content or secrets: the ids of objects already scanned,
the ref tips of the last scan (and which refs contained each commit that held a
finding), the ids of blobs and commits that held findings (they
are re-read and re-matched each run, so reports stay complete), and the hash of the
rules (a rules change invalidates everything). The one exception is values that are
no secret at all: blobs whose every finding is a documentation example (the example
key of AWS's own documentation and the like) keep those findings here instead of
being re-read; a blob with any other finding is stored as an id only. Written
atomically under a lock, so two runs at once cannot corrupt it; a damaged cache is
rebuilt with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keyscan.interrupt import held

VERSION = 2


class IdSet:
    """A sorted table of 20-byte object ids, as stored in scanned.bin and in a pack
    index: membership by binary search, and no Python object per id (a set of 300k ids
    costs ~30 MB and ~0.05 s to build on every incremental scan; this costs the
    table's bytes)."""

    __slots__ = ("table",)

    def __init__(self, table: bytes = b"") -> None:
        self.table = table

    @classmethod
    def of(cls, ids: Iterable[bytes]) -> IdSet:
        return cls(b"".join(sorted(set(ids))))

    def __len__(self) -> int:
        return len(self.table) // 20

    def __iter__(self) -> Iterator[bytes]:
        table = self.table
        return (table[i : i + 20] for i in range(0, len(table), 20))

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


@dataclass(slots=True)
class CacheState:
    rules_digest: str = ""
    tips: list[str] = field(default_factory=list)
    scanned: IdSet = field(default_factory=IdSet)  # objects read (trees may be listed too)
    finding_blobs: list[str] = field(default_factory=list)
    finding_commits: list[str] = field(default_factory=list)
    # where finding blobs appear: paths, commits, authors; no content, no secret
    appearances: dict[str, list[list[object]]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # re-read (and re-reported) each run
    # blob id -> its findings, for blobs holding nothing but documentation examples
    examples: dict[str, list[list[list[object]]]] = field(default_factory=dict)
    ref_tips: dict[str, str] = field(default_factory=dict)  # ref name -> its commit
    contains: dict[str, list[str]] = field(default_factory=dict)  # finding commit -> refs


def user_cache_folder() -> Path:
    """Per-user cache of derived data that holds nothing scanned (compiled rules)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keyscan"


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


@contextlib.contextmanager
def locked(git_dir: Path) -> Iterator[None]:
    """Serialise cache updates between concurrent runs on the same repository."""
    folder = cache_dir(git_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    with open(folder / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load(git_dir: Path, rules_digest: str) -> tuple[CacheState | None, str]:
    """(state, warning). None when absent, stale or damaged; warning says which."""
    folder = cache_dir(git_dir)
    meta_path, ids_path = folder / "state.json", folder / "scanned.bin"
    if not meta_path.exists():
        return None, ""
    try:
        meta = json.loads(meta_path.read_text())
        ids = ids_path.read_bytes()
        if isinstance(meta, dict) and meta.get("version") in range(1, VERSION):
            return None, "the scan cache is from an older keyscan: scanning the whole history again"
        if meta.get("version") != VERSION or len(ids) % 20 or meta.get("count") != len(ids) // 20:
            raise ValueError("inconsistent")
        if meta["rules_digest"] != rules_digest:
            return None, "rules changed since the last scan: scanning the whole history again"
        state = CacheState(
            rules_digest=rules_digest,
            tips=[str(t) for t in meta["tips"]],
            scanned=IdSet(ids),
            finding_blobs=[str(b) for b in meta["finding_blobs"]],
            finding_commits=[str(c) for c in meta["finding_commits"]],
            appearances=dict(meta.get("appearances", {})),
            unreadable=[str(u) for u in meta.get("unreadable", [])],
            examples=dict(meta.get("examples", {})),
            ref_tips={str(k): str(v) for k, v in meta.get("ref_tips", {}).items()},
            contains={str(k): [str(r) for r in v] for k, v in meta.get("contains", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"the scan cache in {folder} was damaged: rebuilding it"
    return state, ""


def save(git_dir: Path, state: CacheState) -> None:
    folder = cache_dir(git_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    ids = state.scanned.table
    meta = {
        "version": VERSION,
        "rules_digest": state.rules_digest,
        "tips": state.tips,
        "count": len(ids) // 20,
        "finding_blobs": sorted(set(state.finding_blobs)),
        "finding_commits": sorted(set(state.finding_commits)),
        "appearances": state.appearances,
        "unreadable": sorted(set(state.unreadable)),
        "examples": state.examples,
        "ref_tips": state.ref_tips,
        "contains": state.contains,
    }
    # ids first, then the metadata that vouches for them: a crash in between leaves a
    # count mismatch, which load() treats as damage and rebuilds. Ctrl-C waits for both.
    with held() as hold:
        _atomic_write(folder / "scanned.bin", ids)
        _atomic_write(folder / "state.json", json.dumps(meta).encode())
    if hold.received:
        raise KeyboardInterrupt


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
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
    for name in ("state.json", "scanned.bin"):
        with contextlib.suppress(OSError):
            (cache_dir(git_dir) / name).unlink()
