"""Which refs contain which commits: one history pass, or the cache plus new commits.

Only history scans import this module (the pre-commit hook never does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from keyscan.background import Later
from keyscan.lazy import LazyModule
from keyscan.sources.history import Ref, list_refs

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    import subprocess
    from typing import IO
else:  # run git: imported only once git runs (keyscan/lazy.py)
    subprocess = LazyModule("subprocess")


def _file_of(data: bytes) -> IO[bytes]:
    """An unnamed file holding `data`, positioned at its start: in memory where Linux
    allows (memfd), else a temporary file (tempfile is imported only then)."""
    if hasattr(os, "memfd_create"):
        handle = os.fdopen(os.memfd_create("keyscan-revisions"), "w+b")
    else:
        import tempfile

        handle = tempfile.TemporaryFile()  # noqa: SIM115 (returned to the caller's with)
    handle.write(data)
    handle.seek(0)
    return handle


class KnownRefs:
    """What the last scan learnt (from the cache): each ref's tip commit, and the refs
    containing each commit that held a finding."""

    __slots__ = ("contains", "tips")

    def __init__(self, tips: dict[str, str], contains: dict[str, list[str]]) -> None:
        self.tips = tips
        self.contains = contains


_MOVED_REFS = 32  # more refs changed since the last scan than this: one full pass
# ... unless the new commits are known (`moved_along`): then each moved ref costs a walk
# of at most those commits, and up to this many steps in all are taken (a fetch into a
# mirror moves hundreds of branches a few commits each)
_MOVED_STEPS = 200_000


def moved_along(known: KnownRefs, refs: list[Ref], new: Mapping[str, Sequence[str]]
                ) -> dict[str, tuple[set[str], list[str]]] | None:
    """What `Ancestry` asks `rev-list --boundary` for each ref that moved, told from
    `new`: the new commits and their parents, grown from old tips (sources/recent.py).
    None when some ref moved elsewhere, or too many moved."""

    def grown(sha: str, _: set[str]) -> tuple[set[str], list[str]] | None:
        if sha not in new:
            return None
        reached: set[str] = set()
        boundary: set[str] = set()
        stack = [sha]
        while stack:
            commit = stack.pop()
            if commit in reached:
                continue
            reached.add(commit)
            for parent in new[commit]:
                if parent in new:
                    stack.append(parent)
                else:
                    boundary.add(parent)  # an old tip (where the new commits end)
        return reached, sorted(boundary)

    return _moved(known, [(r.commit, r.name) for r in refs if r.kind == "commit"], grown,
                  max(_MOVED_REFS, _MOVED_STEPS // max(len(new), 1)))


_Grown = Callable[[str, set[str]], "tuple[set[str], list[str]] | None"]


def _moved(known: KnownRefs, tips: list[tuple[str, str]], grown: _Grown,
           most: int = _MOVED_REFS) -> dict[str, tuple[set[str], list[str]]] | None:
    """For each ref of `tips` ((commit, name)) that moved since the last scan: the new
    commits it reaches and the old tips it grew from, as `grown(commit, old tips)` tells
    (None: it cannot). None when that is no cheap question: more than `most` refs moved,
    or one was rewound, rewritten or grown from the middle of old history."""
    old_tips = set(known.tips.values())
    moved = [(sha, name) for sha, name in tips if known.tips.get(name) != sha]
    if len(moved) > most or len(old_tips) > 4000:
        return None
    out: dict[str, tuple[set[str], list[str]]] = {}
    for sha, name in moved:
        if sha in old_tips:  # a new ref at an old tip, or a ref moved onto one
            out[name] = (set(), [sha])
            continue
        found = grown(sha, old_tips)
        if found is None or any(b not in old_tips for b in found[1]):
            return None
        out[name] = found
    return out


class Ancestry:
    """Which refs contain which commits, from one history pass run in the background.

    `for-each-ref --contains` walks the history once per commit: with hundreds of
    findings that is minutes. Here one `rev-list --topo-order --parents` pass over all
    refs starts at once (a history scan starts it before reading any object, on the
    core the reading leaves idle), and `refs_containing` then gives each commit of
    that pass a bitset of the wanted commits it descends from; a ref contains what its
    tip's bitset holds. Its git processes get no stdin pipe (`_git`), so a process
    forked meanwhile cannot hold one open.

    Incremental scans (`known`): a ref whose tip did not move contains what it did; a
    ref that moved contains the new commits it reaches plus what the old tips it grew
    from contained (`rev-list --boundary`), so only the new commits are walked. When
    that cannot be told (a ref rewound or rewritten, many refs moved, a commit that was
    no finding before), the full pass runs.
    """

    def __init__(self, git_dir: Path, known: KnownRefs | None = None,
                 refs: list[Ref] | None = None, head: str = "",
                 moved: dict[str, tuple[set[str], list[str]]] | None = None) -> None:
        """`refs`: the repository's refs, if already listed (`sources.history.list_refs`);
        `head`: HEAD's commit, whose first-parent line `first_parents` will be asked;
        `moved`: with `known` and `refs`, what the refs that moved reach, already told
        (`moved_along`): then nothing is asked of git."""
        self._git_dir = git_dir
        self._head = head
        self._line: list[bytes] | None = None
        self._known = known
        self._refs = refs
        self._tips: list[tuple[str, str]] = []
        self._rows = b""
        self._moved: dict[str, tuple[set[str], list[str]]] | None = None
        if moved is not None and known is not None and refs is not None:
            self._tips = [(r.commit, r.name) for r in refs if r.kind == "commit"]
            self._moved = moved
            self._reading: Later[None] = Later.done(None)
        else:
            self._reading = Later(self._read)

    @property
    def tips(self) -> dict[str, str]:
        """Ref name -> the commit it points at (tags peeled), as listed by this pass."""
        self._reading.get()
        return {name: sha for sha, name in self._tips}

    def _git(self, *args: str, revisions: str = "") -> subprocess.CompletedProcess[bytes]:
        """`revisions`: read by git with `--stdin`, where it does not check each one
        against the work tree as it does on the command line (16 ms against 40 ms for a
        thousand tips). They come from a file, not a pipe: a worker forked meanwhile
        would hold the pipe open and git would wait for it."""
        with _file_of(revisions.encode()) as stdin:
            return subprocess.run(["git", f"--git-dir={self._git_dir}", *args],
                                  stdin=stdin, capture_output=True, check=False)

    def _read(self) -> None:
        refs = self._refs if self._refs is not None else list_refs(self._git_dir)
        # tags: what they point at; a ref naming a missing object contains nothing
        self._tips = [(r.commit, r.name) for r in refs if r.kind == "commit"]
        if not self._tips:
            return
        if self._known is not None:
            self._moved = self._changes(self._known)
            if self._moved is not None:
                return
        self._read_all()
        if self._head:  # a whole-history scan will cut its `git log` on this line
            self._line = self._first_parent_line(self._head)

    def _read_all(self) -> None:
        # every ref's commit, as listed (not --all: one ref naming a missing object
        # would make git give up on all of them)
        self._rows = self._git(
            "rev-list", "--reverse", "--topo-order", "--parents", "--stdin",
            revisions="".join(f"{sha}\n" for sha in dict.fromkeys(s for s, _ in self._tips))
        ).stdout

    def _changes(self, known: KnownRefs) -> dict[str, tuple[set[str], list[str]]] | None:
        """For each ref that moved: the new commits it reaches, and the old tips it grew
        from (`rev-list --boundary`). None when that is no cheap question."""
        return _moved(known, self._tips, self._grown)

    def _grown(self, sha: str, old_tips: set[str]) -> tuple[set[str], list[str]] | None:
        proc = self._git("rev-list", "--boundary", "--stdin", revisions="".join(
            [f"{sha}\n", *(f"^{tip}\n" for tip in sorted(old_tips))]))
        new: set[str] = set()
        boundary: list[str] = []
        for line in proc.stdout.decode("ascii", "replace").split():
            if line.startswith("-"):
                boundary.append(line[1:])
            else:
                new.add(line)
        return (new, boundary) if proc.returncode == 0 and new else None

    def first_parents(self, head: str) -> list[bytes] | None:
        """`head`'s first-parent line, newest first, from the full pass; None when that
        pass did not run (an incremental scan) or `head` is on no ref. For the `head`
        given when made, worked out in the background as soon as the pass is read."""
        self._reading.get()
        if head == self._head and self._line is not None:
            return self._line
        return self._first_parent_line(head)

    def _first_parent_line(self, head: str) -> list[bytes] | None:
        parent: dict[bytes, bytes] = {}
        for row in self._rows.split(b"\n"):
            ids = row.split(maxsplit=2)
            if ids:
                parent[ids[0]] = ids[1] if len(ids) > 1 else b""
        line: list[bytes] = []
        commit = head.encode()
        if commit not in parent:
            return None
        while commit:
            line.append(commit)
            commit = parent.get(commit, b"")
        return line

    def refs_containing(self, commits: Collection[str]) -> dict[str, list[str]]:
        """For each of `commits`, the refs whose history contains it."""
        self._reading.get()
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
        # old tip a moved ref grew from -> the wanted commits it contained
        grown_from = {b for _, boundary in moved.values() for b in boundary}
        at_those = {name for name, tip in known.tips.items() if tip in grown_from}
        by_tip: dict[str, set[str]] = {}
        for commit in commits:
            for name in at_those.intersection(known.contains.get(commit, ())):
                by_tip.setdefault(known.tips[name], set()).add(commit)
        out: dict[str, list[str]] = {c: [] for c in commits}
        for name, (reached, grew_from) in moved.items():
            inside = (commits & reached).union(*(by_tip.get(b, set()) for b in grew_from))
            for commit in inside:
                out[commit].append(name)
        # the refs that did not move contain what they did (set operations: a commit in
        # hundreds of tags, times hundreds of finding commits, is no Python loop)
        still = {name for _, name in self._tips if name not in moved}
        for commit in commits:
            out[commit] += still.intersection(known.contains.get(commit, ()))
        return out
