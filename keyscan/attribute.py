"""Offline attribution: what a key ID says about itself, without any network call."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from keyscan.gitrepo import tree_walk
from keyscan.lazy import LazyModule, lazy_pattern
from keyscan.model import Commit
from keyscan.record import record

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    import subprocess
else:  # run git: imported only once git runs (keyscan/lazy.py)
    subprocess = LazyModule("subprocess")

# Since about 2019 the 5th character of a key ID is Q-Z or 2-7 and the ID encodes
# its account; older AKIAI.../AKIAJ... IDs decode to plausible but wrong numbers.
_NEW_FORMAT = frozenset("QRSTUVWXYZ234567")


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


def account_note(key_id: str, account: str) -> str:
    """What a report says of the account a key ID belongs to."""
    if account:
        return f"account {account}"
    if key_id.startswith("A3T") or key_id[4:5] in ("I", "J"):
        return "account unknown (older key ID)"
    if key_id[4:5] in _NEW_FORMAT:
        return "cannot be a real key ID: its account would have 13 digits"
    return "cannot be a real key ID: no real ID has this 5th character"


# -- history: where a blob came from, paid only for blobs that hold findings -----------


@record
class Appearance:
    """A blob appearing at a path in a commit (the commit added or changed it there)."""

    blob: str
    path: str
    commit: Commit
    order: int  # position in history, oldest first


def introductions(git_dir: Path, blobs: Collection[str], tips: Sequence[str],
                  exclude: Sequence[str] = (), first_order: int = 0, cut: str | None = None,
                  filter_in_git: bool = True, merges: str = "-m"
                  ) -> dict[str, list[Appearance]]:
    """For each blob, every commit that put it at a path, oldest first.

    A `git log --raw` pass over the history, limited by git itself to the commits
    that touch these blobs (--find-object), so the cost does not grow with them.
    A long history is cut in two at the middle of HEAD's first-parent line and both
    halves are walked at once, one `git log` a core; their appearances are merged
    in commit-date order, the order one pass would give. `cut`: that commit, found
    beforehand (`midpoint`), "" for one pass; None: find it here.
    `filter_in_git`: False for a few new commits (`exclude` given), whose every change
    is listed and filtered here: git takes ~30 us to set up each --find-object, 12 ms for
    the ~420 blobs with findings of the botocore benchmark, against 4 ms for the log.
    `merges`: "-m", a merge puts at a path what differs from any of its parents; "-c",
    only what differs from all of them (what the merge itself made: a conflict's
    resolution), as a range's own changes are counted (`changed_blobs`).
    """
    wanted = set(blobs)
    if not wanted or not tips:
        return {b: [] for b in wanted}
    spec = [*tips, *(f"^{x}" for x in exclude)]
    if cut is None:
        cut = midpoint(git_dir) if not exclude else ""
    passes = [spec] if not cut else [[cut, *(f"^{x}" for x in exclude)], [*spec, f"^{cut}"]]
    from keyscan.background import Later  # history scans only: not on the hook's path

    if filter_in_git:
        from keyscan.sources.history import is_partial_clone

        # in a partial clone, --find-object makes git fetch the blobs the clone left out
        # from its remote: a scanner reaches no network, so every change is listed instead
        filter_in_git = not is_partial_clone(git_dir)
    find = sorted(wanted) if filter_in_git else []
    logs = [Later(_log_find_objects, git_dir, find, spec, merges) for spec in passes]
    halves = _with_metadata(git_dir, [list(_raw_appearances(log.get(), wanted))
                                      for log in logs])
    return numbered(wanted, in_history_order(git_dir, halves, () if exclude else tips),
                    first_order)


def _with_metadata(git_dir: Path, parts: list[list[Appearance]]) -> list[list[Appearance]]:
    """`parts` with who made each commit and when, read through gitpython (`commits`)
    for the few commits that put finding blobs somewhere, as a re-scan reads its new
    commits; a commit missing from the store keeps its id only."""
    meta = commits(git_dir, {a.commit.sha for part in parts for a in part})
    return [[Appearance(a.blob, a.path, meta.get(a.commit.sha, a.commit), a.order)
             for a in part] for part in parts]


def in_history_order(git_dir: Path, parts: Sequence[Sequence[Appearance]],
                     tips: Sequence[str] = (), reorder: bool = False) -> list[Appearance]:
    """The appearances of `parts` (each oldest first, ancestors before descendants) as
    one `git log --date-order --reverse` over all their commits would list them.

    Usually each part is newer than the ones before it (the older half of a history,
    then the newer one; the cached appearances, then new commits'): they are simply
    joined, at no cost. When a commit of a later part is dated before one of an earlier
    part (a side branch fetched late or left unmerged, a clock set wrong) git orders the
    commits, so that the earliest appearance comes first, and no commit comes before its
    ancestor whatever the dates say (a sort by date would put a commit made on a machine
    whose clock ran behind before its own parent).
    `tips`: the history's tips, when git orders: it walks all of it, as one pass would
    (a commit dated before its parent holds that parent back, whether or not it holds an
    appearance); `reorder`: git orders the parts in any case (the commits of earlier
    parts may have changed order among themselves)."""
    if reorder:
        return _ordered_by_git(git_dir, [a for part in parts for a in part], tips)
    latest = float("-inf")
    joined: list[Appearance] = []
    for part in parts:
        dates = [timestamp(d) for d in {a.commit.commit_date for a in part}]
        if dates and joined and min(dates) < latest:
            return _ordered_by_git(git_dir, [a for part in parts for a in part], tips)
        latest = max([latest, *dates])
        joined += part
    return joined


def _ordered_by_git(git_dir: Path, places: list[Appearance], tips: Sequence[str] = ()
                   ) -> list[Appearance]:
    """`places` in `git rev-list --date-order --reverse`'s order of their commits, walked
    from `tips` (none: from those commits); ties (the places of one commit) and commits
    git does not list keep their order."""
    shas = {a.commit.sha for a in places}
    proc = subprocess.run(["git", f"--git-dir={git_dir}", "rev-list", "--ignore-missing",
                           "--date-order", "--reverse", "--stdin"],
                          input="".join(f"{s}\n" for s in (tips or sorted(shas))).encode(),
                          capture_output=True, check=False)
    rank: dict[str, int] = {}
    for line in proc.stdout.split():
        sha = line.decode()
        if sha in shas:
            rank[sha] = len(rank)
    last = len(rank)
    return [a for _, a in sorted(enumerate(places),
                                 key=lambda p: (rank.get(p[1].commit.sha, last), p[0]))]


def numbered(blobs: Collection[str], places: Iterable[Appearance], first_order: int
             ) -> dict[str, list[Appearance]]:
    """For each of `blobs`, its places (of blobs of `blobs` only, oldest first) numbered
    on from `first_order`; a blob at a path in a commit once."""
    found: dict[str, list[Appearance]] = {b: [] for b in blobs}
    seen: set[tuple[str, str, str]] = set()
    for order, place in enumerate(places, first_order):
        key = (place.blob, place.commit.sha, place.path)
        if key not in seen:
            seen.add(key)
            found[place.blob].append(Appearance(place.blob, place.path, place.commit, order))
    return found


_SPLIT_COMMITS = 4000  # below this, one pass costs less than starting a second


def midpoint(git_dir: Path, line: Sequence[bytes] | None = None) -> str:
    """A commit halfway down HEAD's first-parent `line` (newest first; asked of git when
    not given), or "" for a short history."""
    if line is None:
        proc = subprocess.run(["git", f"--git-dir={git_dir}", "rev-list", "--first-parent",
                               "HEAD"], stdin=subprocess.DEVNULL, capture_output=True,
                              check=False)
        line = proc.stdout.split()
    return line[len(line) // 2].decode() if len(line) >= _SPLIT_COMMITS else ""


def _log_find_objects(git_dir: Path, blobs: list[str], spec: list[str], merges: str = "-m"
                      ) -> bytes:
    # --date-order: no commit before its ancestors once reversed, whatever the dates say
    # (git's default walk, among commits of one date, can list a descendant first, and a
    # blob's first appearance would then be a later one)
    args = [*tree_walk(git_dir, "log", "--stdin"), "--date-order", "--reverse", "--raw",
            "--no-abbrev", "--no-renames", merges, "-z", "--format=%x01%H",
            *(f"--find-object={b}" for b in blobs)]
    proc = subprocess.run(args, input="".join(f"{x}\n" for x in spec).encode(),
                          capture_output=True, check=False)
    return proc.stdout


def _raw_appearances(out: bytes, wanted: set[str]) -> Iterator[Appearance]:
    """(blob, path, commit) of each raw diff line putting a wanted blob somewhere."""
    commit: Commit | None = None
    tokens = out.split(b"\0")
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip(b"\n")
        i += 1
        if token.startswith(b"\x01"):  # its metadata is read afterwards (`_with_metadata`)
            commit = Commit(sha=token[1:].decode("ascii", "replace"), author_name="",
                            author_email="", author_date="", commit_date="")
        elif token.startswith(b":") and i < len(tokens) and commit is not None:
            path = os.fsdecode(tokens[i])
            i += 1
            meta = token.split()  # modes, ids (a merge's "::": one per parent), the result's
            new = meta[-2].decode() if len(meta) > 3 else ""  # last, then the status
            if new in wanted:
                yield Appearance(new, path, commit, 0)


def timestamp(iso: str) -> float:
    """Seconds since the epoch of a date as git writes it (`%cI`: 2026-03-02T10:14:07+01:00),
    by arithmetic: importing datetime costs ~2 ms of a re-scan; other forms through it."""
    if len(iso) == 25 and iso[4] == iso[7] == "-" and iso[10] == "T" and iso[22] == ":" \
            and iso[19] in "+-":
        try:
            y, m, d = int(iso[:4]), int(iso[5:7]), int(iso[8:10])
            clock = int(iso[11:13]) * 3600 + int(iso[14:16]) * 60 + int(iso[17:19])
            zone = int(iso[20:22]) * 3600 + int(iso[23:25]) * 60
        except ValueError:
            pass
        else:
            return _days(y, m, d) * 86400 + clock - (zone if iso[19] == "+" else -zone)
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def _days(y: int, m: int, d: int) -> int:
    """Days from 1970-01-01 to the date y-m-d of the proleptic Gregorian calendar."""
    y -= m <= 2
    era = y // 400
    year = y - era * 400
    day_of_year = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + year * 365 + year // 4 - year // 100 + day_of_year - 719468


def appearance_rows(found: dict[str, list[Appearance]]) -> dict[str, list[list[object]]]:
    """Appearances as plain JSON rows for the incremental cache (ids, paths, authors)."""
    return {blob: [[a.path, a.commit.sha, a.commit.author_name, a.commit.author_email,
                    a.commit.author_date, a.commit.commit_date, a.commit.message, a.order]
                   for a in places] for blob, places in found.items()}


def appearances_from_rows(rows: dict[str, list[list[object]]]) -> dict[str, list[Appearance]]:
    """`appearance_rows` read back (the cache's MAC vouches for their types)."""
    out: dict[str, list[Appearance]] = {}
    for blob, places in rows.items():
        out[blob] = [Appearance(blob, r[0], Commit(*r[1:7]), r[7])  # type: ignore[arg-type]
                     for r in places]
    return out


# A commit's subject goes into every report of its findings and into the cache: a key
# or secret typed into it ("creds aws_secret_access_key=...") must not ride along.
_CREDENTIAL_SHAPED = lazy_pattern(
    r"(?<![A-Za-z0-9/+])(?:(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"
    r"|[A-Za-z0-9/+]{40,}={0,2})(?![A-Za-z0-9/+=])")
_HEX = lazy_pattern(r"[0-9a-f]+")


def masked_subject(subject: str) -> str:
    """`subject` with every key-ID-shaped word and every run of 40+ base64 characters
    (a secret access key, a session token) cut to its first 4 characters; a commit id
    (lowercase hex) is left whole."""
    return _CREDENTIAL_SHAPED.sub(
        lambda m: m[0] if _HEX.fullmatch(m[0]) else f"{m[0][:4]}…(redacted)", subject)


def commits(git_dir: Path, shas: Collection[str]) -> dict[str, Commit]:
    """Who wrote the commits `shas` and when (those a report names: findings in their
    messages, or the commits that put finding blobs at a path), read through gitpython
    and parsed as a re-scan parses the commits it reads from the files
    (`recent.parse_commit`, which also decodes an `encoding` header), so both tell the
    same. A commit missing from the store is left out."""
    from keyscan.gitrepo import read_small
    from keyscan.sources.recent import parse_commit
    from keyscan.sources.store import StoreError

    out = {}
    for sha, (kind, data) in read_small(git_dir, sorted(shas), _COMMIT_SIZE).items():
        if kind != "commit":
            continue
        try:
            out[sha] = parse_commit(sha, data).meta
        except StoreError:  # an ident line parse_commit does not read (malformed)
            out[sha] = _decoded(git_dir, sha)
    return out


def _decoded(git_dir: Path, sha: str) -> Commit:
    """A commit whose ident lines `recent.parse_commit` does not read (no date, a
    malformed zone), as gitpython's more lenient parser reads them; only its id when
    gitpython cannot either."""
    from keyscan.gitrepo import commit_fields
    from keyscan.sources.recent import parse_fields
    from keyscan.sources.store import StoreError

    fields = commit_fields(git_dir, sha)
    try:
        if fields is not None:
            return parse_fields(sha, *fields)
    except StoreError:
        pass
    return Commit(sha=sha, author_name="", author_email="", author_date="", commit_date="")


_COMMIT_SIZE = 64 << 20  # a commit object larger than this is no commit anyone wrote


# an annotated tag read: the object it names, and its tagger, date and subject
TagFacts = tuple[str, "Commit | None"]
_TAG_CHAIN = 10  # tags of tags followed this deep (git peels deeper, nobody tags so)


def tags_reaching(tags: Collection[str], refs: Sequence[tuple[str, str, str]],
                  read: Callable[[Collection[str]], Mapping[str, TagFacts]]
                  ) -> tuple[dict[str, Commit], dict[str, list[str]]]:
    """For annotated tags holding findings in their message: who tagged each, when, and
    its subject (a Commit with the tag's id), and the refs reaching each: a ref naming
    it, or naming a tag that names it (a tag of a tag), and so on down.

    `refs`: (name, the object it names, what that comes down to) of every ref; `read`:
    the tags among some objects, each with what it names (`sources.recent.parse_tag`).
    Besides the tags with findings, only tags of refs that come down to what one of them
    does are read (a few, tagging the same commit)."""
    known: dict[str, TagFacts] = {}
    asked: set[str] = set()
    ends = {end for _, named, end in refs if named != end}

    def chains(starts: Collection[str]) -> dict[str, list[str]]:
        """The tags from each of `starts` down (one read a step for them all), and what
        the last one names."""
        out: dict[str, list[str]] = {s: [] for s in starts}
        at = {s: s for s in starts}
        for _ in range(_TAG_CHAIN):
            wanted = {o for o in at.values() if o not in ends and o not in asked}
            asked.update(wanted)
            known.update(read(wanted) if wanted else {})
            at = {s: o for s, o in at.items() if o in known and o not in ends}
            if not at:
                break
            for s, o in at.items():
                out[s].append(o)
            at = {s: known[o][0] for s, o in at.items()}
        return out

    found = chains(tags)
    bottoms = {known[c[-1]][0] for c in found.values() if c}
    reaching: dict[str, list[str]] = {}
    starts = {named for _, named, end in refs if named != end and end in bottoms}
    down = chains(starts)
    for name, named, _ in refs:
        for tag in down.get(named, []):
            if tag in found:
                reaching.setdefault(tag, []).append(name)
    meta = {t: m for t in found if (m := known.get(t, ("", None))[1]) is not None}
    return meta, reaching


def tree_blobs(git_dir: Path, tree: str = "HEAD") -> dict[str, list[str]]:
    """Blob id -> paths in a tree (by default HEAD's: what is 'still in HEAD')."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "-z", "--full-tree", tree],
        capture_output=True, check=False,
    )
    out: dict[str, list[str]] = {}
    for entry in proc.stdout.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == b"blob":
            out.setdefault(parts[2].decode(), []).append(os.fsdecode(path))
    return out
