"""Offline attribution: what a key ID says about itself, without any network call."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from keyscan.model import Commit

# Since about 2019 the 5th character of a key ID is Q-Z or 2-7 and the ID encodes
# its account; older AKIAI.../AKIAJ... IDs decode to plausible but wrong numbers.
_NEW_FORMAT = frozenset("QRSTUVWXYZ234567")
T = TypeVar("T")


def account_id(key_id: str) -> str:
    """The 12-digit AWS account a key ID belongs to, or "" when it cannot be told."""
    if len(key_id) != 20 or key_id[4] not in _NEW_FORMAT:
        return ""
    try:
        raw = base64.b32decode(key_id[4:])
    except ValueError:
        return ""
    account = (int.from_bytes(raw[:6], "big") & 0x7FFFFFFFFF80) >> 7
    # 40 bits can hold 13 digits; account IDs have 12, so a larger value is no real key
    return f"{account:012d}" if account < 10**12 else ""


# -- history: where a blob came from, paid only for blobs that hold findings -----------

_FIELDS = "%H%x1f%an%x1f%ae%x1f%aI%x1f%cI%x1f%s"


@dataclass(frozen=True, slots=True)
class Appearance:
    """A blob appearing at a path in a commit (the commit added or changed it there)."""

    blob: str
    path: str
    commit: Commit
    order: int  # position in history, oldest first


def introductions(git_dir: Path, blobs: Collection[str], tips: Sequence[str],
                  exclude: Sequence[str] = (), first_order: int = 0, cut: str | None = None
                  ) -> dict[str, list[Appearance]]:
    """For each blob, every commit that put it at a path, oldest first.

    A `git log --raw` pass over the history, limited by git itself to the commits
    that touch these blobs (--find-object), so the cost does not grow with them.
    A long history is cut in two at the middle of HEAD's first-parent line and both
    halves are walked at once, one `git log` a core; their appearances are merged
    in commit-date order, the order one pass would give. `cut`: that commit, found
    beforehand (`midpoint`), "" for one pass; None: find it here.
    """
    wanted = set(blobs)
    found: dict[str, list[Appearance]] = {b: [] for b in wanted}
    if not wanted or not tips:
        return found
    spec = [*tips, *(f"^{x}" for x in exclude)]
    if cut is None:
        cut = midpoint(git_dir) if not exclude else ""
    passes = [spec] if not cut else [[cut, *(f"^{x}" for x in exclude)], [*spec, f"^{cut}"]]
    outputs: list[bytes] = [b""] * len(passes)

    def run(i: int) -> None:
        outputs[i] = _log_find_objects(git_dir, sorted(wanted), passes[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(passes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows: list[tuple[float, int, int, Appearance]] = []
    for number, out in enumerate(outputs):
        for i, appearance in enumerate(_appearances(out, wanted)):
            rows.append((_timestamp(appearance.commit.commit_date), number, i, appearance))
    if len(passes) > 1:
        rows.sort(key=lambda r: r[:3])
    seen: set[tuple[str, str, str]] = set()
    for order, (_, _, _, a) in enumerate(rows):
        key = (a.blob, a.commit.sha, a.path)
        if key not in seen:
            seen.add(key)
            found[a.blob].append(Appearance(a.blob, a.path, a.commit, first_order + order))
    return found


_SPLIT_COMMITS = 4000  # below this, one pass costs less than starting a second


def midpoint(git_dir: Path) -> str:
    """A commit halfway down HEAD's first-parent line, or "" for a short history."""
    proc = subprocess.run(["git", f"--git-dir={git_dir}", "rev-list", "--first-parent", "HEAD"],
                          stdin=subprocess.DEVNULL, capture_output=True, check=False)
    line = proc.stdout.split()
    return line[len(line) // 2].decode() if len(line) >= _SPLIT_COMMITS else ""


# git's default 96 MB delta-base cache makes each `git log` pass hold ~150 MB; walking
# trees needs little of it (16 MB: ~60 MB a pass, and no slower on the benchmarks)
_LOG_DELTA_CACHE = "core.deltaBaseCacheLimit=16m"


def _log_find_objects(git_dir: Path, blobs: list[str], spec: list[str]) -> bytes:
    args = ["git", "-c", _LOG_DELTA_CACHE, f"--git-dir={git_dir}", "log", "--stdin",
            "--reverse", "--raw",
            "--no-abbrev", "--no-renames", "-m", "-z", f"--format=%x01{_FIELDS}",
            *(f"--find-object={b}" for b in blobs)]
    proc = subprocess.run(args, input="".join(f"{x}\n" for x in spec).encode(),
                          capture_output=True, check=False)
    return proc.stdout


def _appearances(out: bytes, wanted: set[str]) -> Iterator[Appearance]:
    """(blob, path, commit) of each raw diff line putting a wanted blob somewhere."""
    commit: Commit | None = None
    tokens = out.split(b"\0")
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip(b"\n")
        i += 1
        if token.startswith(b"\x01"):
            commit = _commit(token[1:])
        elif token.startswith(b":") and i < len(tokens) and commit is not None:
            path = os.fsdecode(tokens[i])
            i += 1
            meta = token.split()
            new = meta[3].decode() if len(meta) > 3 else ""
            if new in wanted:
                yield Appearance(new, path, commit, 0)


def _timestamp(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def appearance_rows(found: dict[str, list[Appearance]]) -> dict[str, list[list[object]]]:
    """Appearances as plain JSON rows for the incremental cache (ids, paths, authors)."""
    return {blob: [[a.path, a.commit.sha, a.commit.author_name, a.commit.author_email,
                    a.commit.author_date, a.commit.commit_date, a.commit.message, a.order]
                   for a in places] for blob, places in found.items()}


def appearances_from_rows(rows: dict[str, list[list[object]]]) -> dict[str, list[Appearance]]:
    out: dict[str, list[Appearance]] = {}
    for blob, places in rows.items():
        out[blob] = [Appearance(blob, str(r[0]), Commit(*(str(x) for x in r[1:7])),
                                int(str(r[7]))) for r in places]
    return out


def _commit(header: bytes) -> Commit:
    fields = header.decode("utf-8", "replace").split("\x1f")
    fields += [""] * (6 - len(fields))
    return Commit(sha=fields[0], author_name=fields[1], author_email=fields[2],
                  author_date=fields[3], commit_date=fields[4], message=fields[5])


def commits(git_dir: Path, shas: Collection[str]) -> dict[str, Commit]:
    """Metadata of given commits (for findings in commit messages)."""
    if not shas:
        return {}
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "log", "--no-walk=unsorted", "--stdin", "-z",
         f"--format={_FIELDS}"],
        input="".join(f"{s}\n" for s in shas).encode(), capture_output=True, check=False,
    )
    out = {}
    for record in proc.stdout.split(b"\0"):
        if record.strip():
            c = _commit(record.strip(b"\n"))
            out[c.sha] = c
    return out


def head_blobs(git_dir: Path) -> dict[str, list[str]]:
    """Blob id -> paths in HEAD's tree (what is 'still in HEAD')."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "-z", "--full-tree", "HEAD"],
        capture_output=True, check=False,
    )
    out: dict[str, list[str]] = {}
    for entry in proc.stdout.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == b"blob":
            out.setdefault(parts[2].decode(), []).append(os.fsdecode(path))
    return out


@dataclass(frozen=True, slots=True)
class KnownRefs:
    """What the last scan learnt (from the cache): each ref's tip commit, and the refs
    containing each commit that held a finding."""

    tips: dict[str, str]
    contains: dict[str, list[str]]


_MOVED_REFS = 32  # more refs changed since the last scan than this: one full pass


class Ancestry:
    """Which refs contain which commits, from one history pass run in the background.

    `for-each-ref --contains` walks the history once per commit: with hundreds of
    findings that is minutes. Here one `rev-list --topo-order --parents` pass over all
    refs starts at once (a history scan starts it before reading any object, on the
    core the reading leaves idle), and `refs_containing` then gives each commit of
    that pass a bitset of the wanted commits it descends from; a ref contains what its
    tip's bitset holds. Its git processes get no stdin pipe, so a process forked
    meanwhile cannot hold one open.

    Incremental scans (`known`): a ref whose tip did not move contains what it did; a
    ref that moved contains the new commits it reaches plus what the old tips it grew
    from contained (`rev-list --boundary`), so only the new commits are walked. When
    that cannot be told (a ref rewound or rewritten, many refs moved, a commit that was
    no finding before), the full pass runs.
    """

    def __init__(self, git_dir: Path, known: KnownRefs | None = None) -> None:
        self._git_dir = git_dir
        self._known = known
        self._tips: list[tuple[str, str]] = []
        self._rows = b""
        self._moved: dict[str, tuple[set[str], list[str]]] | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    @property
    def tips(self) -> dict[str, str]:
        """Ref name -> the commit it points at (tags peeled), as listed by this pass."""
        self._thread.join()
        return {name: sha for sha, name in self._tips}

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", f"--git-dir={self._git_dir}", *args],
                              stdin=subprocess.DEVNULL, capture_output=True, check=False)

    def _read(self) -> None:
        refs = self._git("for-each-ref", "--format=%(objectname) %(*objectname) %(refname)"
                         ).stdout.decode("utf-8", "surrogateescape").splitlines()
        for line in refs:
            parts = line.split(" ", 2)
            if len(parts) == 3:  # tags: the commit they point at
                self._tips.append((parts[1] or parts[0], parts[2]))
        if not self._tips:
            return
        if self._known is not None:
            self._moved = self._changes(self._known)
            if self._moved is not None:
                return
        self._read_all()

    def _read_all(self) -> None:
        # --all: every ref, as for-each-ref listed them
        self._rows = self._git("rev-list", "--reverse", "--topo-order", "--parents",
                               "--all").stdout

    def _changes(self, known: KnownRefs) -> dict[str, tuple[set[str], list[str]]] | None:
        """For each ref that moved: the new commits it reaches, and the old tips it grew
        from. None when that is no cheap question."""
        old_tips = set(known.tips.values())
        moved = [(sha, name) for sha, name in self._tips if known.tips.get(name) != sha]
        if len(moved) > _MOVED_REFS or len(old_tips) > 4000:
            return None
        out: dict[str, tuple[set[str], list[str]]] = {}
        for sha, name in moved:
            if sha in old_tips:  # a new ref at an old tip, or a ref moved onto one
                out[name] = (set(), [sha])
                continue
            proc = self._git("rev-list", "--boundary", sha, "--not", *sorted(old_tips))
            new: set[str] = set()
            boundary: list[str] = []
            for line in proc.stdout.decode("ascii", "replace").split():
                if line.startswith("-"):
                    boundary.append(line[1:])
                else:
                    new.add(line)
            if proc.returncode != 0 or not new or any(b not in old_tips for b in boundary):
                return None  # rewound, rewritten or grown from the middle of old history
            out[name] = (new, boundary)
        return out

    def refs_containing(self, commits: Collection[str]) -> dict[str, list[str]]:
        """For each of `commits`, the refs whose history contains it."""
        self._thread.join()
        if self._moved is not None and self._known is not None:
            found = self._from_known(self._known, self._moved, set(commits))
            if found is not None:
                return found
            self._read_all()  # a commit the last scan did not know: walk it all
        wanted = {sha.encode(): 1 << i for i, sha in enumerate(sorted(set(commits)))}
        out: dict[str, list[str]] = {sha.decode(): [] for sha in wanted}
        if not wanted:
            return out
        bits: dict[bytes, int] = {}
        for row in self._rows.split(b"\n"):
            ids = row.split()
            if not ids:
                continue
            mark = wanted.get(ids[0], 0)
            for parent in ids[1:]:
                mark |= bits.get(parent, 0)
            bits[ids[0]] = mark
        for sha, name in self._tips:
            mark = bits.get(sha.encode(), 0)
            if not mark:
                continue
            for commit, bit in wanted.items():
                if mark & bit:
                    out[commit.decode()].append(name)
        return out

    def _from_known(self, known: KnownRefs, moved: dict[str, tuple[set[str], list[str]]],
                    commits: set[str]) -> dict[str, list[str]] | None:
        new = set().union(*(n for n, _ in moved.values()))
        if any(c not in known.contains and c not in new for c in commits):
            return None
        by_tip: dict[str, set[str]] = {}  # old tip -> the wanted commits it contained
        for commit, names in known.contains.items():
            if commit in commits:
                for name in names:
                    if name in known.tips:
                        by_tip.setdefault(known.tips[name], set()).add(commit)
        out: dict[str, list[str]] = {c: [] for c in commits}
        for _, name in self._tips:
            if name in moved:
                reached, grew_from = moved[name]
                inside = (commits & reached).union(*(by_tip.get(b, set()) for b in grew_from))
            else:
                inside = {c for c in commits if name in known.contains.get(c, ())}
            for commit in inside:
                out[commit].append(name)
        return out


class Later(Generic[T]):
    """A value computed by `fn(*args)` in a background thread; `get()` waits for it.
    Worth it while the main thread waits on git (a subprocess releases the GIL)."""

    def __init__(self, fn: Callable[..., T], *args: object) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., T], *args: object) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # raised again in the caller's thread by get()
            self._error = exc

    def get(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def refs_containing_all(git_dir: Path, commits: Collection[str]) -> dict[str, list[str]]:
    """For each of `commits`, the refs whose history contains it (one history pass)."""
    return Ancestry(git_dir).refs_containing(commits)
