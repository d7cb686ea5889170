"""Refs and objects read straight from a repository's own files, for re-scans.

A re-scan after a few new commits needs a handful of objects: the new commits, the
trees they change, the blobs they add, and the refs. Asking git costs a process and a
round trip each time, 3-14 ms a round on the benchmark histories, more than reading
those objects. Here they are read as git stores them: refs from `packed-refs` and the
`refs/` folder, objects from their loose files or, by id, from the pack indexes and
packs (an entry's delta chain rebuilt from the pack itself).

Only the plain layout is read (`Store.open`): SHA-1, refs as files, no alternates,
grafts, shallow or partial clone, no worktree of another repository, and
no environment variable that changes where git looks. Anything else, and anything that
does not read cleanly here (`StoreError`), is left to git: the caller then asks git as
it always did, so this module can only make a re-scan faster, never change its answer.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

_COMMIT, _TREE, _BLOB, _TAG, _OFS_DELTA, _REF_DELTA = 1, 2, 3, 4, 6, 7
KINDS = {_COMMIT: "commit", _TREE: "tree", _BLOB: "blob", _TAG: "tag"}
_IDX_V2 = b"\xfftOc\x00\x00\x00\x02"
_HEX = frozenset("0123456789abcdef")
# environment variables that move or change what git reads: git is asked instead
# (replace refs are off for every git keyscan runs: gitrepo sets GIT_NO_REPLACE_OBJECTS)
_GIT_ENV = ("GIT_DIR", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_GRAFT_FILE", "GIT_SHALLOW_FILE",
            "GIT_NAMESPACE")
# config this reader does not follow: any repository extension (reftable, SHA-256,
# partial clone, ...), a promisor remote, a work tree set elsewhere
_CONFIG_WORDS = (b"[extensions", b"promisor", b"partialclone", b"worktree")
_MAX_CHAIN = 10_000  # delta chain links followed before an entry is called corrupt
_KEEP_BASE = 1 << 20  # delta bases kept once rebuilt, up to this size
_KEEP_BYTES = 32 << 20  # and up to this much in all
# more loose ref files: `git for-each-ref` reads them as fast (each file ~5.5 us here,
# git's listing of 959 ~10 ms with its start)
_MAX_LOOSE_REFS = 2000


class StoreError(Exception):
    """Something this reader does not read for certain: git is asked instead."""


class DeltaError(StoreError):
    """A delta that does not apply to its base."""


class Store:
    """One repository's refs and objects, read from its files."""

    def __init__(self, git_dir: Path, bare: bool = False) -> None:
        self.git_dir = git_dir
        self.bare = bare  # core.bare set in the config
        self.objects = git_dir / "objects"
        self._packs: list[_Pack] | None = None
        self._loose: dict[str, list[str]] = {}  # folder name -> file names, once listed
        self._refs: tuple[dict[str, str], dict[str, str]] | None = None  # read once

    @classmethod
    def open(cls, git_dir: Path, object_format: str = "sha1") -> Store | None:
        """The store of `git_dir` when it has the plain layout this reader knows;
        None when git must be asked (see the module docstring)."""
        if object_format != "sha1" or any(os.environ.get(v) for v in _GIT_ENV):
            return None
        try:
            config = (git_dir / "config").read_bytes().lower()
        except OSError:
            return None
        if any(word in config for word in _CONFIG_WORDS):
            return None
        for name in ("commondir", "shallow", "info/grafts", "objects/info/alternates",
                     "reftable"):
            if os.path.lexists(git_dir / name):
                return None
        if not os.path.isdir(git_dir / "objects") or not os.path.isdir(git_dir / "refs"):
            return None
        return cls(git_dir, bare=b"bare=true" in config.replace(b" ", b"").replace(b"\t", b""))

    # --- refs -------------------------------------------------------------------

    def refs(self) -> list[tuple[str, str, str]]:
        """(object, symbolic target, name) of every ref, sorted by name: what
        `git for-each-ref --format='%(objectname) %(symref) %(refname)'` lists.
        StoreError when a ref is not a plain, readable file."""
        direct, symbolic = self._ref_files()
        rows = []
        for name in sorted({*direct, *symbolic}, key=os.fsencode):
            if name in direct:
                rows.append((direct[name], "", name))
                continue
            target = symbolic[name]
            sha = self._resolve(target, direct, symbolic)
            rows.append((sha, target, name))
        return rows

    def head(self) -> tuple[str, str]:
        """HEAD's commit ("" when unborn) and its branch ("HEAD" when detached or
        unborn): what `git rev-parse HEAD --symbolic-full-name HEAD` says."""
        text = _read_text(self.git_dir / "HEAD")
        if text.startswith("ref:"):
            branch = text[4:].strip()
            direct, symbolic = self._ref_files()
            try:
                return self._resolve(branch, direct, symbolic), branch
            except StoreError:
                if branch in direct or branch in symbolic:
                    raise
                return "", "HEAD"  # unborn
        sha = text.strip()
        if not _is_sha(sha):
            raise StoreError("HEAD is neither a branch nor a commit")
        return sha, "HEAD"

    def _ref_files(self) -> tuple[dict[str, str], dict[str, str]]:
        """Direct and symbolic refs by name (read once: `refs` and `head` both ask)."""
        if self._refs is None:
            self._refs = self._read_ref_files()
        return self._refs

    def _read_ref_files(self) -> tuple[dict[str, str], dict[str, str]]:
        loose = list(_loose_refs(str(self.git_dir / "refs"), "refs"))
        if len(loose) > _MAX_LOOSE_REFS:
            raise StoreError("many loose refs: git lists them faster")
        direct: dict[str, str] = {}
        symbolic: dict[str, str] = {}
        packed = self.git_dir / "packed-refs"
        if packed.exists():
            for line in _read_text(packed).splitlines():
                if not line or line[0] in "#^":
                    continue
                sha, _, name = line.partition(" ")
                if not _is_sha(sha) or not name.startswith("refs/"):
                    raise StoreError("packed-refs line not understood")
                direct[name] = sha
        for path, name in loose:
            value = _read_small(path).strip()
            if value.startswith("ref:"):
                symbolic[name] = value[4:].strip()
                direct.pop(name, None)
            elif _is_sha(value):
                direct[name] = value
            else:
                raise StoreError(f"ref {name} not understood")
        return direct, symbolic

    @staticmethod
    def _resolve(name: str, direct: dict[str, str], symbolic: dict[str, str]) -> str:
        for _ in range(5):  # git follows symbolic refs five deep
            if name in direct:
                return direct[name]
            if name not in symbolic:
                break
            name = symbolic[name]
        raise StoreError(f"symbolic ref to {name}, which does not resolve")

    # --- objects ----------------------------------------------------------------

    def read(self, sha: str) -> tuple[str, bytes] | None:
        """(type, content) of an object; None when it is in neither a loose file nor
        a pack. StoreError when it is there but does not read cleanly."""
        found = self.read_at_most(sha, None)
        if found is None:
            return None
        kind, _, data = found
        assert data is not None
        return kind, data

    def read_at_most(self, sha: str, max_size: int | None
                     ) -> tuple[str, int, bytes | None] | None:
        """(type, size, content) of an object, the content None when it is larger than
        `max_size` (then not inflated); None when the store does not hold it."""
        loose = self._read_loose(sha, max_size)
        if loose is not None:
            return loose
        raw = bytes.fromhex(sha)
        for pack in self._opened():
            at = pack.find(raw)
            if at is not None:
                kind, size, data = pack.entry(at, self, max_size)
                return KINDS[kind], size, data
        return None

    def has(self, sha: str) -> bool:
        """Whether the store holds `sha` (found, not read)."""
        return not self.missing([sha])

    def missing(self, shas: list[str]) -> list[str]:
        """Those of `shas` the store does not hold. Packs first: most objects are
        packed, and listing an object folder costs more than a lookup."""
        raws = [bytes.fromhex(sha) for sha in shas]
        for pack in self._opened():
            raws = [raw for raw in raws if pack.position(raw) < 0]
            if not raws:
                return []
        return [sha for sha in (raw.hex() for raw in raws)
                if sha[2:] not in self._listed(sha[:2])]

    def peel(self, sha: str) -> tuple[str, str]:
        """What `sha` comes down to once annotated tags are peeled, and its type
        ("missing" when absent): `git cat-file --batch-check` of `sha^{}`."""
        return self.tags_down(sha)[1]

    def tags_down(self, sha: str) -> tuple[list[str], tuple[str, str]]:
        """The annotated tags `sha` is, each naming the next, and what the last one
        names with its type (`peel`)."""
        tags: list[str] = []
        for _ in range(_MAX_CHAIN):
            obj = self.read(sha)
            if obj is None:
                return tags, (sha, "missing")
            kind, data = obj
            if kind != "tag":
                return tags, (sha, kind)
            tags.append(sha)
            sha = data[7:47].decode("ascii", "replace")
            if not data.startswith(b"object ") or not _is_sha(sha):
                raise StoreError("tag not understood")
        raise StoreError("tag chain too long")

    def _listed(self, folder: str) -> list[str]:
        if folder not in self._loose:
            try:
                self._loose[folder] = os.listdir(self.objects / folder)
            except OSError:
                self._loose[folder] = []
        return self._loose[folder]

    def _read_loose(self, sha: str, max_size: int | None
                    ) -> tuple[str, int, bytes | None] | None:
        if sha[2:] not in self._listed(sha[:2]):
            return None
        try:
            with open(self.objects / sha[:2] / sha[2:], "rb") as fh:
                inflater = zlib.decompressobj()  # the header first: the rest when wanted
                header, nul, data = inflater.decompress(fh.read(4096), 64).partition(b"\0")
                kind, _, size_text = header.decode("ascii", "replace").partition(" ")
                if not nul or kind not in _KIND_NUMBER or not size_text.isdigit():
                    raise StoreError(f"loose object {sha} not understood")
                size = int(size_text)
                if max_size is not None and size > max_size:
                    return kind, size, None
                data += inflater.decompress(inflater.unconsumed_tail + fh.read())
                data += inflater.flush()
        except (OSError, zlib.error) as exc:
            raise StoreError(f"loose object {sha}: {exc}") from None
        if len(data) != size or not inflater.eof:
            raise StoreError(f"loose object {sha}: size mismatch")
        return kind, size, data

    def _opened(self) -> list[_Pack]:
        if self._packs is None:
            self._packs = []
            folder = self.objects / "pack"
            names = sorted(os.listdir(folder)) if folder.is_dir() else []
            for name in names:
                if name.startswith("pack-") and name.endswith(".idx") \
                        and name[:-4] + ".pack" in names:
                    self._packs.append(_Pack(folder / name, folder / (name[:-4] + ".pack")))
        return self._packs

    def close(self) -> None:
        for pack in self._packs or []:
            pack.close()
        self._packs = None


class _Pack:
    """A pack and its version-2 index, mapped; entries found by id, rebuilt by offset."""

    def __init__(self, idx: Path, pack: Path) -> None:
        try:
            with open(idx, "rb") as fh:
                self.idx = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            with open(pack, "rb") as fh:
                self.pack = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise StoreError(f"{pack.name}: {exc}") from None
        if self.idx[:8] != _IDX_V2 or len(self.idx) < 8 + 1024:
            raise StoreError(f"{idx.name}: not a version-2 pack index")
        self.count = int.from_bytes(self.idx[8 + 1020 : 8 + 1024], "big")
        self._ids = 8 + 1024
        self._offsets = self._ids + 24 * self.count
        if len(self.idx) < self._offsets + 4 * self.count + 40:
            raise StoreError(f"{idx.name}: truncated")
        self._rebuilt: dict[int, tuple[int, bytes]] = {}  # offset -> a base already rebuilt
        self._kept = 0  # bytes in `_rebuilt`
        self._fanout: tuple[int, ...] | None = None

    def position(self, sha: bytes) -> int:
        """Where `sha` is in the index's sorted id table, -1 when this pack does not
        hold it: its bucket (by first byte, from the fanout table read once) searched
        in C by `mmap.find`."""
        if self._fanout is None:
            self._fanout = (0, *struct.unpack_from(">256I", self.idx, 8))
        base = self._ids
        end = base + 20 * self._fanout[sha[0] + 1]
        at = self.idx.find(sha, base + 20 * self._fanout[sha[0]], end)
        while at != -1 and (at - base) % 20:  # found across two ids: look on
            at = self.idx.find(sha, at + 1, end)
        return -1 if at == -1 else (at - base) // 20

    def find(self, sha: bytes) -> int | None:
        """The offset of `sha` in the pack, None when this pack does not hold it."""
        i = self.position(sha)
        if i < 0:
            return None
        at = self._offsets + 4 * i
        offset = int.from_bytes(self.idx[at : at + 4], "big")
        if offset & 0x80000000:  # an index into the 8-byte table (packs > 2 GB)
            at = self._offsets + 4 * self.count + 8 * (offset & 0x7FFFFFFF)
            offset = int.from_bytes(self.idx[at : at + 8], "big")
        return offset

    def entry(self, offset: int, store: Store, max_size: int | None = None
              ) -> tuple[int, int, bytes | None]:
        """(type, size, content) of the entry at `offset`, its delta chain applied; the
        content None (and the chain not rebuilt) when larger than `max_size`."""
        chain: list[bytes] = []
        size = -1  # the object's: the first delta's target size, or the entry's own
        keep = True  # whether the bottom of the chain is kept for the next read
        for _ in range(_MAX_CHAIN):
            if offset in self._rebuilt:
                kind, data = self._rebuilt[offset]
                keep = False
                break
            kind, entry_size, at, base = self._header(offset)
            if kind in KINDS and size < 0 and max_size is not None and entry_size > max_size:
                return kind, entry_size, None
            data = self._inflate(at, entry_size)
            if kind in KINDS:
                break
            if size < 0:
                size = _target_size(data)
                if max_size is not None and size > max_size:
                    return self._base_kind(offset, store), size, None
            chain.append(data)
            if kind == _OFS_DELTA:
                offset = base
            else:  # _REF_DELTA: the base by id, in this pack or another store file
                found = store.read(self.pack[base : base + 20].hex())
                if found is None:
                    raise StoreError("delta base missing")
                kind, data = _KIND_NUMBER[found[0]], found[1]
                keep = False  # `offset` is the delta's, not its base's
                break
        else:
            raise StoreError("delta chain too long")
        if keep and chain and len(data) <= _KEEP_BASE:
            if self._kept + len(data) > _KEEP_BYTES:
                self._rebuilt.clear()
                self._kept = 0
            self._rebuilt[offset] = (kind, data)  # trees of one commit share their bases
            self._kept += len(data)
        for delta in reversed(chain):
            data = apply_delta(data, delta)
        if max_size is not None and len(data) > max_size:
            return kind, len(data), None
        return kind, len(data), data

    def _base_kind(self, offset: int, store: Store) -> int:
        """The type a delta chain comes down to, from the entries' headers."""
        for _ in range(_MAX_CHAIN):
            kind, _, _, base = self._header(offset)
            if kind in KINDS:
                return kind
            if kind == _OFS_DELTA:
                offset = base
                continue
            found = store.read_at_most(self.pack[base : base + 20].hex(), 0)
            if found is None:
                raise StoreError("delta base missing")
            return _KIND_NUMBER[found[0]]
        raise StoreError("delta chain too long")

    def _header(self, offset: int) -> tuple[int, int, int, int]:
        """Type, size, where the compressed data starts, and a delta's base (the
        offset of an offset delta; where the base id is for a ref delta)."""
        pack = self.pack
        if offset < 12 or offset >= len(pack) - 20:
            raise StoreError("pack offset out of range")
        c = pack[offset]
        at = offset + 1
        kind, size, shift = (c >> 4) & 7, c & 15, 4
        while c & 0x80:
            c = pack[at]
            at += 1
            size |= (c & 0x7F) << shift
            shift += 7
        base = 0
        if kind == _OFS_DELTA:
            c = pack[at]
            at += 1
            distance = c & 0x7F
            while c & 0x80:
                c = pack[at]
                at += 1
                distance = ((distance + 1) << 7) | (c & 0x7F)
            base = offset - distance
        elif kind == _REF_DELTA:
            base = at
            at += 20
        elif kind not in KINDS:
            raise StoreError(f"pack entry of type {kind}")
        return kind, size, at, base

    def _inflate(self, at: int, size: int) -> bytes:
        inflater = zlib.decompressobj()
        chunk = max(size + 64, 4096)
        out = []
        try:
            while not inflater.eof:
                piece = self.pack[at : at + chunk]
                if not piece:
                    raise StoreError("pack entry truncated")
                out.append(inflater.decompress(piece))
                at += chunk
        except zlib.error as exc:
            raise StoreError(f"pack entry: {exc}") from None
        data = b"".join(out)
        if len(data) != size:
            raise StoreError("pack entry size mismatch")
        return data

    def close(self) -> None:
        self.idx.close()
        self.pack.close()


_KIND_NUMBER = {name: number for number, name in KINDS.items()}


def _read_small(path: str) -> str:
    """A loose ref file's text, by the bare system calls: half the cost of `open()`'s
    file objects, which a repository of a thousand loose refs pays a thousand times."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"{os.path.basename(path)}: {exc.strerror}") from None
    if len(data) == 4096:
        raise StoreError(f"{os.path.basename(path)}: too large for a ref")
    return data.decode("utf-8", "surrogateescape")


def _read_text(path: str | Path) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise StoreError(f"{os.path.basename(path)}: {exc.strerror}") from None


def _loose_refs(folder: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(file, ref name) of every loose ref under `folder`."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name = f"{prefix}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            yield from _loose_refs(entry.path, name)
        elif entry.is_symlink():
            raise StoreError(f"ref {name} is a symbolic link")
        elif entry.name.endswith(".lock") or entry.name.startswith("."):
            continue  # an update in progress, or not a ref name git accepts
        else:
            yield entry.path, name


def _is_sha(text: str) -> bool:
    return len(text) == 40 and _HEX.issuperset(text)


# --- deltas (shared with the full scan's pack reader, sources/packs.py) ------------

def _target_size(delta: bytes) -> int:
    """The size of the object a delta builds: its header's second number."""
    return varint(delta, varint(delta, 0)[1])[0]


def varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise DeltaError("truncated delta header")
        c = data[at]
        at += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return value, at


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """git's delta format: copy (offset, size) from the base, or insert literal bytes."""
    source_size, at = varint(delta, 0)
    target_size, at = varint(delta, at)
    if source_size != len(base):
        raise DeltaError("delta base size mismatch")
    out = bytearray()
    view = memoryview(base)
    n = len(delta)
    while at < n:
        op = delta[at]
        at += 1
        if op & 0x80:
            offset = size = 0
            for bit, shift in ((0x01, 0), (0x02, 8), (0x04, 16), (0x08, 24)):
                if op & bit:
                    offset |= delta[at] << shift
                    at += 1
            for bit, shift in ((0x10, 0), (0x20, 8), (0x40, 16)):
                if op & bit:
                    size |= delta[at] << shift
                    at += 1
            size = size or 0x10000
            if offset + size > len(base):
                raise DeltaError("delta copies past its base")
            out += view[offset : offset + size]
        elif op:
            if at + op > n:
                raise DeltaError("truncated delta insert")
            out += delta[at : at + op]
            at += op
        else:
            raise DeltaError("delta opcode 0")
    if len(out) != target_size:
        raise DeltaError("delta result size mismatch")
    return bytes(out)
