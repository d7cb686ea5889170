"""What a few new commits added, read from the store (sources/store.py) for a re-scan.

The answer is git's, computed here: the commits `git log --date-order TIPS --not OLD`
lists, in its order, and for each, oldest first, what `git log --reverse --raw -m
--no-renames` shows it put at each path (against each parent). Handled
(`new_commits`): new commits, merges included, that grow from tips of the last scan and
that no earlier scan read, new roots included. Anything else (a branch from the middle
of old history, more than `_MAX_NEW` new commits) returns None, and git is asked as
before.
"""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Callable, Collection, Container, Iterator, Mapping, Sequence

from keyscan.lazy import lazy_pattern
from keyscan.model import Commit
from keyscan.record import record
from keyscan.sources.store import Store, StoreError

_MAX_NEW = 2_000  # new commits followed here; more: git walks them


@record
class NewCommit:
    sha: str
    tree: str
    parents: tuple[str, ...]
    meta: Commit  # as `git log --format=%H %an %ae %aI %cI %s` gives it (subject masked)
    data: bytes  # the commit object (its message is scanned)
    when: int  # the committer's timestamp: git's walk order


@record
class Change:
    blob: str
    path: str
    commit: NewCommit


def new_commits(store: Store, tips: Sequence[str], old: Collection[str],
                scanned: Container[bytes]) -> list[NewCommit] | None:
    """The commits reachable from `tips` (commits, in the order git is given them) but
    not from the commits `old` (the last scan's tips), in the order `git log
    --date-order` lists them (newest first), when every one of them is new to the cache
    and each line of them ends on a commit of `old`. None when the history is of another
    shape: git answers then."""
    found: dict[str, NewCommit] = {}
    stack = [t for t in tips if t not in old]
    while stack:
        sha = stack.pop()
        if sha in found or sha in old:
            continue
        if bytes.fromhex(sha) in scanned or len(found) >= _MAX_NEW:
            return None  # read before (reachable from old history, or dangling then)
        commit = read_commit(store, sha)
        if commit is None:
            return None  # missing: git reports it
        found[sha] = commit
        stack.extend(commit.parents)
    return _date_order(found, _walk_order(found, tips))


def _date_order(found: Mapping[str, NewCommit], walked: list[NewCommit]
                ) -> list[NewCommit]:
    """`walked` as `--date-order` sorts git's walk (`sort_in_topological_order`): no
    commit before all its children among them, else the newest committer date first,
    and among equal dates the one ready first (those with no child here in the order
    walked, then each when its last child is listed)."""
    children = dict.fromkeys(found, 0)
    for commit in walked:
        for parent in commit.parents:
            if parent in children:
                children[parent] += 1

    def ready(parent: str) -> bool:
        if parent not in children:
            return False
        children[parent] -= 1
        return not children[parent]

    return _drain(found, [c.sha for c in walked if not children[c.sha]], ready)


def _walk_order(found: Mapping[str, NewCommit], tips: Sequence[str]) -> list[NewCommit]:
    """`found` in the order git's revision walk lists them: newest committer date
    first, and among equal dates the one met first (the tips in the order given, each
    commit's parents in order when it is listed)."""
    met: set[str] = set()

    def first_met(sha: str) -> bool:
        if sha not in found or sha in met:
            return False
        met.add(sha)
        return True

    return _drain(found, [t for t in tips if first_met(t)], first_met)


def _drain(found: Mapping[str, NewCommit], start: list[str], put: Callable[[str], bool]
           ) -> list[NewCommit]:
    """Commits listed from a queue by newest committer date, among equal dates the one
    queued first (git's queue of commits by date): `start`, then each parent of a listed
    commit for which `put` says so."""
    queue: list[tuple[int, int, str]] = []
    queued = 0

    def enqueue(sha: str) -> None:
        nonlocal queued
        heapq.heappush(queue, (-found[sha].when, queued, sha))
        queued += 1

    for sha in start:
        enqueue(sha)
    out = []
    while queue:
        commit = found[heapq.heappop(queue)[2]]
        out.append(commit)
        for parent in commit.parents:
            if put(parent):
                enqueue(parent)
    return out


def read_commit(store: Store, sha: str) -> NewCommit | None:
    obj = store.read(sha)
    if obj is None or obj[0] != "commit":
        return None
    return parse_commit(sha, obj[1])


def parse_commit(sha: str, data: bytes) -> NewCommit:
    """A commit object's tree, parents and the metadata a report shows."""
    head, _, message = data.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    author = committer = encoding = b""
    for line in head.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode("ascii", "replace")
        elif key == b"parent":
            parents.append(value.decode("ascii", "replace"))
        elif key == b"author":
            author = value
        elif key == b"committer":
            committer = value
        elif key == b"encoding":
            encoding = value.strip()
    if len(tree) != 40 or not author or not committer:
        raise StoreError(f"commit {sha} not understood")
    if encoding and encoding.lower() not in (b"utf-8", b"utf8"):
        author, committer, message = _to_utf8(encoding, author, committer, message)
    meta, when = _fields(sha, author, committer, message)
    return NewCommit(sha, tree, tuple(parents), meta, data, when)


def _to_utf8(encoding: bytes, *parts: bytes) -> list[bytes]:
    """`parts` of a commit written in `encoding` (its `encoding` header: an old
    toolchain's ISO-8859-1, Shift_JIS...) in UTF-8, as `git log` shows them; as they are
    when Python knows no such encoding (git shows them as they are when iconv does not).
    (gitpython does not read that header: `buf[0:10] == b"encoding "` never holds.)"""
    import codecs

    try:
        codec = codecs.lookup(encoding.decode("ascii"))
    except (LookupError, UnicodeDecodeError):
        return list(parts)
    return [codec.decode(part, "replace")[0].encode() for part in parts]


def parse_fields(sha: str, author: bytes, committer: bytes, message: bytes | str) -> Commit:
    """What a report shows of a commit: its author, dates and subject (masked) from its
    author and committer ident lines and its message."""
    if isinstance(message, str):
        message = message.encode("utf-8", "surrogateescape")
    return _fields(sha, author, committer, message)[0]


def _fields(sha: str, author: bytes, committer: bytes, message: bytes) -> tuple[Commit, int]:
    """`parse_fields`, and the commit's timestamp (each ident line read once)."""
    name, email, author_date, _ = _ident(author)
    _, _, commit_date, when = _ident(committer)
    from keyscan.attribute import masked_subject

    return Commit(sha=sha, author_name=name, author_email=email, author_date=author_date,
                  commit_date=commit_date,
                  message=masked_subject(_subject(message).decode("utf-8", "replace"))), when


def parse_tag(sha: str, data: bytes) -> tuple[str, Commit | None]:
    """The object an annotated tag names, and who tagged it, when and its subject, as a
    Commit with the tag's id (what a report says of a finding in its message); None
    when it has no tagger line this reads (tags made before git recorded one)."""
    head, _, message = data.partition(b"\n\n")
    named, tagger = "", b""
    for line in head.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"object":
            named = value.decode("ascii", "replace")
        elif key == b"tagger":
            tagger = value
    try:
        name, email, date, _ = _ident(tagger)
    except StoreError:
        return named, None
    from keyscan.attribute import masked_subject

    return named, Commit(sha=sha, author_name=name, author_email=email, author_date=date,
                         commit_date=date,
                         message=masked_subject(_subject(message).decode("utf-8", "replace")))


def _ident(value: bytes) -> tuple[str, str, str, int]:
    """Name, email, ISO 8601 date (git's %an, %ae, %aI) and timestamp of an ident line."""
    lt = value.find(b"<")
    gt = value.find(b">", lt + 1)
    stamp = value[value.rfind(b">") + 1 :].split()
    if lt < 0 or gt < 0 or len(stamp) != 2 or not stamp[0].isdigit() \
            or len(stamp[1]) != 5 or stamp[1][:1] not in b"+-" or not stamp[1][1:].isdigit():
        raise StoreError("ident line not understood")
    name = value[:lt].rstrip(b" ").decode("utf-8", "replace")
    email = value[lt + 1 : gt].decode("utf-8", "replace")
    zone = stamp[1].decode()
    offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * 60 * (-1 if zone[0] == "-" else 1)
    try:
        local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(stamp[0]) + offset))
    except (OverflowError, OSError, ValueError):
        raise StoreError("date out of range") from None
    sign = zone[0] if offset else "+"  # "-0000" is shown "+00:00", as git shows it
    return name, email, f"{local}{sign}{zone[1:3]}:{zone[3:5]}", int(stamp[0])


def _subject(message: bytes) -> bytes:
    """git's %s: the first paragraph, its lines joined by spaces."""
    lines = message.split(b"\n")
    i = 0
    while i < len(lines) and not lines[i].rstrip(b" \t\r"):
        i += 1
    out = []
    while i < len(lines):
        line = lines[i].rstrip(b" \t\r")
        if not line:
            break
        out.append(line)
        i += 1
    return b" ".join(out)


def files_at(store: Store, commit: str, names: Collection[str]) -> dict[str, bytes]:
    """The content of those of `names` (at the top of its tree) that `commit` holds as
    files: what `git cat-file --batch` gives for `commit:name`."""
    found = read_commit(store, commit)
    if found is None:
        raise StoreError(f"commit {commit} missing")
    entries = _entries(store, found.tree)
    out = {}
    for name in names:
        kind, sha = entries.get(name.encode(), ("", ""))
        obj = store.read(sha) if kind in ("file", "exec", "link") else None
        if obj is not None and obj[0] == "blob":
            out[name] = obj[1]
    return out


def changes(store: Store, commits: list[NewCommit], read: dict[str, bytes] | None = None
            ) -> list[Change]:
    """What each of `commits` (as `new_commits` lists them) put at each path, in the
    order `git log --reverse --raw -m --no-renames` lists it. `read`: given, gets the
    new trees read on the way (id -> content), so that no one reads them again."""
    trees = {c.sha: c.tree for c in commits}  # parents among them: read already
    out: list[Change] = []
    for commit in reversed(commits):
        for parent in commit.parents or ("",):
            out.extend(Change(blob, path, commit) for path, _, blob in
                       _diff(store, _tree_of(store, parent, trees), commit.tree, b"",
                             read=read))
    return out


def _tree_of(store: Store, commit: str, trees: dict[str, str]) -> str:
    """The tree of `commit` ("" for none: a root commit's diff is against nothing)."""
    if not commit or commit in trees:
        return trees.get(commit, "")
    found = read_commit(store, commit)
    if found is None:
        raise StoreError(f"commit {commit} missing")
    return found.tree


def _diff(store: Store, old: str, new: str, prefix: bytes, gone: bool = False,
          read: dict[str, bytes] | None = None) -> Iterator[tuple[str, str, str]]:
    """(path, blob there in `old`, blob there in `new`; "" for none) of each file `new`
    holds that `old` does not hold the same; with `gone`, also of each file only `old`
    holds. Folders the two trees hold the same are not read."""
    before = _raw_entries(store, old) if old else []
    after = _raw_entries(store, new, read) if new else []
    same = set(before)
    changed = [entry for entry in after if entry not in same]
    names = {name for _, name, _ in changed}
    was = {_key(mode, name): (_kind(mode), sha) for mode, name, sha in before if name in names}
    for mode, name, sha in changed:
        kind = _kind(mode)
        old_entry = was.get(name + b"/" if kind == "tree" else name)
        if old_entry == (kind, sha):
            continue  # the same, but for how its mode was written
        path = prefix + name
        if kind == "tree":
            yield from _diff(store, old_entry[1].hex() if old_entry else "", sha.hex(),
                             path + b"/", gone, read)
        elif kind != "gitlink":
            yield (os.fsdecode(path), old_entry[1].hex() if old_entry else "", sha.hex())
    if gone and before:
        now = {_key(mode, name) for mode, name, _ in after}
        for mode, name, sha in before:
            key = _key(mode, name)
            if key in now:
                continue  # still there: changed ones were followed above
            if key.endswith(b"/"):
                yield from _diff(store, sha.hex(), "", prefix + key, gone)
            elif _kind(mode) != "gitlink":
                yield (os.fsdecode(prefix + name), sha.hex(), "")


def tree_changes(store: Store, old_commit: str, new_commit: str
                 ) -> list[tuple[str, str, str]]:
    """(path, blob before, blob now; "" for none) of every file whose blob differs
    between the trees of two commits (or that only one of them holds)."""
    old, new = read_commit(store, old_commit), read_commit(store, new_commit)
    if old is None or new is None:
        raise StoreError("commit missing")
    return list(_diff(store, old.tree, new.tree, b"", gone=True))


def _entries(store: Store, tree: str) -> Mapping[bytes, tuple[str, str]]:
    """A tree's entries in git's order, keyed by name (a folder's with a "/")."""
    return {_key(mode, name): (_kind(mode), sha.hex())
            for mode, name, sha in _raw_entries(store, tree)}


def _raw_entries(store: Store, tree: str, read: dict[str, bytes] | None = None
                 ) -> list[tuple[bytes, bytes, bytes]]:
    """A tree's entries as stored: (mode, name, 20-byte id), in git's order; cut out by
    one regex pass in C (a folder of botocore/data holds ~400 entries, read whole for the
    one that changed). `read` gets the tree's content."""
    obj = store.read(tree)
    if obj is None or obj[0] != "tree":
        raise StoreError(f"tree {tree} missing")
    data = obj[1]
    if read is not None:
        read[tree] = data
    if _TREE.fullmatch(data) is None:
        raise StoreError(f"tree {tree} not understood")
    return _ENTRY.findall(data)


_ENTRY = lazy_pattern(rb"(?s)([0-7]+) ([^\0]+)\0(.{20})")
_TREE = lazy_pattern(rb"(?s)(?:[0-7]+ [^\0]+\0.{20})*")


def _key(mode: bytes, name: bytes) -> bytes:
    return name + b"/" if _kind(mode) == "tree" else name


def _kind(mode: bytes) -> str:
    return _MODES.get(mode) or _mode(mode)


_MODES = {b"100644": "file", b"100755": "exec", b"120000": "link", b"40000": "tree",
          b"160000": "gitlink"}


def _mode(mode: bytes) -> str:
    """git's canonical kind of an unusual mode (old gits wrote 100664 and the like)."""
    try:
        value = int(mode, 8)
    except ValueError:
        raise StoreError("tree entry mode not understood") from None
    kind = value & 0o170000
    if kind == 0o040000:
        return "tree"
    if kind == 0o120000:
        return "link"
    if kind == 0o160000:
        return "gitlink"
    return "exec" if value & 0o111 else "file"
