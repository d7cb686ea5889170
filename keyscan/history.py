"""Composes a history scan: list objects -> read each once -> match -> attribute.

Full scan: every object in the store, packed ones rebuilt in-process chain by chain,
while a background walk of all refs finds what is reachable and what is missing.
Incremental scan (cache) and CI ranges: only the objects the new commits added.
Attribution (paths, commits, authors, refs, still-in-HEAD) is paid only for the few
blobs that hold findings.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from keyscan import ancestry, attribute, cache, gitrepo
from keyscan.background import Later
from keyscan.errors import KeyscanError, ScanInterrupted
from keyscan.lazy import lazy_pattern
from keyscan.match import ENGINE_AFTER, Credential, Matcher, from_rows, rules_by_id, to_rows
from keyscan.model import Commit, Finding, Location, ScanResult, Skipped
from keyscan.record import field, record
from keyscan.rules import RuleSet
from keyscan.scan import ScanOptions, identity, listed, path_allowed, to_finding, unread_members
from keyscan.sources import history as source
from keyscan.sources import recent
from keyscan.sources.store import Store, StoreError

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:  # imported when a scan reads much: an incremental scan does without
    from keyscan.sources import packs, parallel

_SCANNED_KINDS = ("blob", "commit", "tag")
# why an object is skipped, the same whether a scan read it or its cache held it
MISSING = "missing from the object store (partial clone or damaged repository)"


@record
class HistoryOptions:
    since_commit: str = ""
    range: str = ""  # "A..B"
    unreachable: bool = False
    reflog: bool = False
    use_cache: bool = True
    check_missing: bool | None = None  # None: on partial clones and below 10k blobs and commits
    progress: bool | None = None  # None: only on a TTY outside CI
    # the secrets themselves are needed (--show-secrets, --verify-live): findings the
    # cache keeps sealed (`match.to_rows(seal=True)`) are read again
    whole_secrets: bool = False
    workers: int = 0  # processes reading objects; 0: as many as CPUs (parallel.worker_count)
    # full scans rebuild packed objects in-process (sources/packs.py), re-scans read refs
    # and new objects from the files (sources/store.py); False: all through git (also
    # KEYSCAN_READ_PACKS=0)
    read_packs: bool = field(default_factory=lambda: os.environ.get("KEYSCAN_READ_PACKS") != "0")


@record(frozen=False)
class _Hits:
    blobs: dict[str, list[Credential]] = field(default_factory=dict)
    commits: dict[str, tuple[str, list[Credential]]] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C: what was read so far
    # the cached places were numbered again, or some dropped (`_appearances`): saved anew
    places_changed: bool = False
    # findings in objects no ref reaches, left out of the report without --unreachable
    # but kept in the cache (a later --unreachable re-scan lists them)
    hidden_blobs: dict[str, list[Credential]] = field(default_factory=dict)
    hidden_commits: dict[str, tuple[str, list[Credential]]] = field(default_factory=dict)

    def add(self, sha: str, kind: str, creds: list[Credential]) -> None:
        """What was found in a blob, or in a commit's or tag's message."""
        if not creds:
            return
        if kind == "blob":
            self.blobs[sha] = creds
        else:
            self.commits[sha] = (kind, creds)


def scan_history(target: Path, rules: RuleSet, options: ScanOptions, hopts: HistoryOptions
                 ) -> ScanResult:
    if not target.exists():
        raise KeyscanError(f"{target} does not exist: give a repository path")
    repo = gitrepo.discover(target)
    if repo is None:
        raise KeyscanError(f"{target} is not a git repository, so it has no history to "
                           f"scan (`keyscan scan {target}` scans its files)")
    started = time.perf_counter()
    git_dir = repo.git_dir
    result = ScanResult(target=str(repo.root), mode="history")
    ranged = bool(hopts.since_commit or hopts.range)
    sha1 = repo.object_format == "sha1"
    use_cache = hopts.use_cache and not ranged and sha1
    # a re-scan of a repository of the plain layout reads its refs and new objects from
    # its files (sources/store.py); otherwise, and on anything unexpected there, git
    store = Store.open(git_dir) \
        if use_cache and hopts.read_packs and cache.exists(git_dir) else None
    files = _refs_from(store)  # None: git lists them (objects still read from the files)
    shape = _shape_from(store, files[1][0]) if store is not None and files is not None \
        else None
    if shape is None:
        shape = Later(_shape_notes, git_dir)  # said first, once the scan is done
    # refs and HEAD asked of gitpython (its import included) while the cache is loaded
    listing = Later(gitrepo.ref_rows, git_dir) if files is None else Later.done(files[0])
    head = Later(gitrepo.head_of, git_dir) if files is None else Later.done(files[1])
    if hopts.use_cache and not ranged and not sha1:
        result.notes.append("SHA-256 repository: the incremental cache is not used (every "
                            "scan reads the whole history)")
    with contextlib.ExitStack() as stack:
        stack.callback(gitrepo.close, git_dir)  # what gitpython opened, if anything
        if store is not None:
            stack.callback(store.close)  # its maps of the packs (an audit opens many repos)
        if use_cache and (why := stack.enter_context(cache.locked(git_dir))):
            result.notes.append(why)
            use_cache = False
        state = _last_scan(git_dir, rules, result) if use_cache else None
        shallow = source.shallow_boundary(git_dir) if use_cache else ""
        if state is not None and state.shallow != shallow:  # history added below the cache's
            result.notes.append("the clone was deepened (or made shallower) since the last "
                                "scan: scanning the whole history again")
            state = None
        kept = _kept_findings(state, rules, result) if state is not None else None
        if kept is None:
            state = None
        # which of the last scan's tips are still there, asked while refs are listed
        there: Later[list[str]] | None = None
        if state is not None and store is not None:
            there = Later.done(_present(store, state.tips))
        elif state is not None:
            there = Later(source.existing, git_dir, state.tips)
        refs_listed = _typed(git_dir, listing.get(), _named(state), store)
        old_tips = _still_there(state.tips, there.get()) if there and state else []
        _report_broken(refs_listed, result)
        head_commit, head_branch = head.get()
        tips = source.all_refs(git_dir, hopts.reflog, refs_listed, head_commit)
        if not tips and ranged:  # a CI gate in the wrong (or an empty) checkout
            raise KeyscanError(f"{repo.root} has no commits yet: the range "
                               f"{hopts.range or hopts.since_commit!r} names none of its "
                               "revisions; check the checkout and --range/--since-commit")
        if not tips:
            result.notes.append("the repository has no commits yet")
            return result
        run = _Run(git_dir, tips, refs_listed, (head_commit, head_branch), state, old_tips,
                   ranged, sha1, store)
        run.shallow = shallow
        hits, read_ids, reach = _read(run, rules, options, hopts, result)
        # the cache's id file is made while git does the attribution work below; a
        # re-scan read from the files runs no git, and a thread would only cost its start
        ids: Later[cache.Scanned] | None = None
        if use_cache and not hits.interrupted and run.recent is not None:
            ids = Later.done(_cache_ids(state, read_ids, result))
        elif use_cache and not hits.interrupted:
            ids = Later(_cache_ids, state, read_ids, result)
        result.stats.incremental = run.incremental and not ranged
        if kept is not None and run.incremental:
            _cached_findings(kept, run.cached, hits)
        appearances, refs_of = _attributed(run, hits, reach, options, hopts, result)
        if ranged:
            _unread_in_range(result)
        if use_cache:
            _save(run, rules, ids, hits, appearances, result, refs_of)
    result.notes[:0] = shape.get()
    result.whole_history = not (source.is_shallow(git_dir) or source.is_partial_clone(git_dir))
    result.stats.seconds = time.perf_counter() - started
    if hits.interrupted:
        raise ScanInterrupted(result)
    return result


def _refs_from(store: Store | None
               ) -> tuple[list[source.RefRow], tuple[str, str]] | None:
    """The refs and HEAD as git would list them, read from the repository's files;
    None when git must be asked."""
    if store is None:
        return None
    try:
        return store.refs(), store.head()
    except StoreError:
        return None


def _present(store: Store, shas: list[str]) -> list[str]:
    gone = set(store.missing(shas))
    return [sha for sha in shas if sha not in gone]


def _typed(git_dir: Path, rows: list[source.RefRow], named: dict[str, tuple[str, str]],
           store: Store | None) -> list[source.Ref]:
    """`source.typed_refs`, the objects no earlier scan saw peeled from the store's
    files when there is one."""
    if store is not None:
        try:
            new = {target for target, _, _ in rows if target not in named}
            return source.typed_refs(git_dir, rows, {**named, **{
                target: store.peel(target) for target in new}})
        except StoreError:
            pass
    return source.typed_refs(git_dir, rows, named)


def _report_broken(refs: list[source.Ref], result: ScanResult) -> None:
    """Refs naming an object missing from the store: skipped, and said."""
    result.skipped += [Skipped(f"ref {r.name}", f"names {r.target}, which is missing from "
                               "the object store (damaged repository)")
                       for r in refs if r.kind == "missing"]


def _attributed(run: _Run, hits: _Hits, reach: source.Reachability | None,
                options: ScanOptions, hopts: HistoryOptions, result: ScanResult
                ) -> tuple[dict[str, list[attribute.Appearance]], dict[str, list[str]]]:
    """The findings of `hits` into `result`: where each appears, by whom, the refs that
    reach it, whether it is still in HEAD; unreachable objects left out unless asked
    for. Returns where the blobs appear and the refs containing each commit (cached)."""
    head = (run.default_tip or Later(_default_tip, run.git_dir, run.refs_listed, run.head)) \
        if hits.blobs else None
    # who wrote the commits holding findings in their message
    messages = [sha for sha, (kind, _) in hits.commits.items() if kind == "commit"]
    meta = _commit_meta(run, messages) if messages else None
    gone = _gone(run)
    if run.state is not None and run.incremental:
        _forget_vanished(run.state, gone, result)
    appearances, refs_of = _where(run, hits, gone)
    held = _held(run.git_dir, run.refs_listed, hits.blobs)
    # annotated tags holding findings in their message: who tagged them, and the refs
    # naming them (held outside any commit, as a blob a ref names is)
    tagged, named = _tags(run, [sha for sha, (kind, _) in hits.commits.items()
                                if kind == "tag"])
    held.update({tag: [(ref, "") for ref in refs] for tag, refs in named.items()})
    _filter_unreachable(hits, _reachable(run, hits, reach, appearances, held, refs_of),
                        hopts, result)
    # listed with --unreachable: where the commits no ref reaches put them (not cached:
    # the next scan must not take them for reachable)
    shown = {**appearances, **_unreachable_places(run, hits, appearances, held, hopts)}
    tip, note = head.get() if head else ({}, "")
    # kept for the next re-scan: the finding blobs in HEAD's tree, and the blobs it could
    # not read (read again then: their findings must say whether they are in HEAD too)
    run.in_head = {b: tip[b] for b in hits.blobs.keys() | _unreadable(result) if b in tip}
    if note:
        result.notes.append(note)
    result.findings = sorted(
        _attribute(hits, tip, shown, held, options, refs_of,
                   {**(meta.get() if meta else {}), **tagged}, result),
        # ties (one place, several credentials: an unreachable copy) broken by the
        # credential, so a re-scan lists them in a fresh scan's order
        key=lambda f: (str(f.extra.get("first_seen") or ""), f.location.path, f.line,
                       f.column, f.rule_id, f.value_digest))
    return appearances, refs_of


def _commit_meta(run: _Run, shas: list[str]) -> Later[dict[str, Commit]]:
    """Who wrote the commits holding findings in their message: read from the files
    on a re-scan that reads them, else asked of git in the background."""
    if run.store is not None:
        try:
            return Later.done({c.sha: c.meta for c in (
                recent.read_commit(run.store, sha) for sha in shas) if c is not None})
        except StoreError:
            pass
    return Later(attribute.commits, run.git_dir, shas)


def _tags(run: _Run, tags: list[str]
          ) -> tuple[dict[str, Commit], dict[str, list[str]]]:
    """`attribute.tags_reaching` of `tags`: the same answer from a fresh scan and a
    re-scan (tags never change; the refs are listed anew each time)."""
    if not tags:
        return {}, {}
    refs = [(r.name, r.target, r.commit) for r in run.refs_listed if r.kind != "missing"]
    return attribute.tags_reaching(tags, refs, lambda shas: _read_tags(run, shas))


def _read_tags(run: _Run, shas: Collection[str]) -> dict[str, attribute.TagFacts]:
    """The annotated tags among `shas`, each with what it names and its tagger: read
    from the store's files on a re-scan that reads them, else through git."""
    if run.store is not None:
        try:
            objects = {sha: run.store.read_at_most(sha, _TAG_SIZE) for sha in shas}
        except StoreError:
            objects = {}
        if len(objects) == len(shas) and all(objects.values()):
            return {sha: recent.parse_tag(sha, obj[2]) for sha, obj in objects.items()
                    if obj is not None and obj[0] == "tag" and obj[2] is not None}
    return {sha: recent.parse_tag(sha, data) for sha, (kind, data) in
            gitrepo.read_small(run.git_dir, sorted(shas), _TAG_SIZE).items() if kind == "tag"}


_TAG_SIZE = 1 << 20  # an object larger than this is no tag anyone wrote: not read


def _default_tip(git_dir: Path, refs: list[source.Ref], head: str
                 ) -> tuple[dict[str, list[str]], str]:
    """The blobs at the tip of the default branch (a finding's 'still in HEAD'), and a
    note when HEAD (on `head`) is on another branch or detached."""
    branch = source.default_branch(refs)
    return attribute.tree_blobs(git_dir, branch), _head_note(branch, head)


def _tip_moved(store: Store | None, state: cache.CacheState, tip: list[str]
               ) -> dict[str, list[str]] | None:
    """The finding blobs in the tree of the default branch's tip `tip` ([branch, commit])
    and their paths there, from the last scan's: the same when the tip has not moved;
    when it has and the store reads, those paths less the ones that changed since, plus
    every blob now at a changed path (a blob new to the cache can only be at one of
    those). None: git lists the tree."""
    if not tip[1] or len(state.head_tip) != 2 or state.head_tip[0] != tip[0]:
        return None
    if state.head_tip[1] == tip[1]:
        return dict(state.in_head)
    if store is None:
        return None
    try:
        changed = recent.tree_changes(store, state.head_tip[1], tip[1])
    except StoreError:
        return None
    paths = {path for path, _, _ in changed}
    found = {blob: kept for blob, places in state.in_head.items()
             if (kept := [p for p in places if p not in paths])}
    for path, _, blob in changed:
        if blob:
            found.setdefault(blob, []).append(path)
    return found


def _head_note(branch: str, head: str) -> str:
    return "" if branch in ("HEAD", head) else (
        f"'still in HEAD' is checked against {branch}, the default branch (HEAD is "
        f"{'detached' if head == 'HEAD' else 'on ' + head})")


def _default_commit(refs: list[source.Ref], head: tuple[str, str]) -> list[str]:
    """The default branch (`source.default_branch`) and the commit at its tip."""
    branch = source.default_branch(refs)
    if branch == "HEAD":
        return [branch, head[0]]
    return [branch, next((r.commit for r in refs if r.name == branch), "")]


def _last_scan(git_dir: Path, rules: RuleSet, result: ScanResult) -> cache.CacheState | None:
    """The cache the last scan left (None: every object is read)."""
    state, warning = cache.load(git_dir, rules.digest)
    if warning:
        result.notes.append(warning)
    return state


def _named(state: cache.CacheState | None) -> dict[str, tuple[str, str]]:
    """What the objects the last scan's refs named come down to, and their types: every
    tip is a commit but those that refs naming something else kept (`ref_peeled`)."""
    if state is None:
        return {}
    named = {tip: (tip, "commit") for tip in state.tips}
    named.update({target: (str(commit), str(kind))
                  for target, (commit, kind) in state.ref_peeled.items()})
    return named


def _still_there(old_tips: list[str], present: list[str]) -> list[str]:
    """The last scan's tips that still exist (`present`): what "new" is measured from."""
    kept = set(present)
    return [t for t in old_tips if t in kept]


def _shape_notes(git_dir: Path) -> list[str]:
    """What a history scan of this repository cannot cover, said up front: history a
    shallow clone lacks, submodules, and files kept in Git LFS (HEAD's settings; bare
    mirrors included)."""
    return _notes_on(source.is_shallow(git_dir),
                     source.files_at_head(git_dir, list(_SHAPE_FILES)),
                     source.is_partial_clone(git_dir))


_SHAPE_FILES = (".gitmodules", ".gitattributes")


def _shape_from(store: Store, head: str) -> Later[list[str]] | None:
    """`_shape_notes` from the repository's files (a store is never a shallow clone's);
    None when git must be asked."""
    try:
        return Later.done(_notes_on(False, recent.files_at(store, head, _SHAPE_FILES)
                                    if head else {}))
    except StoreError:
        return None


def _notes_on(shallow: bool, files: dict[str, bytes], partial: bool = False) -> list[str]:
    notes = []
    if shallow:
        notes.append("shallow clone: only the history present locally was scanned "
                     "(run `git fetch --unshallow` for all of it)")
    if partial:
        notes.append("partial clone: the objects it did not fetch are listed as missing, "
                     "not scanned (keyscan fetches only those a --range adds); scan a full "
                     "clone (`git clone` without --filter) for all of the history")
    if ".gitmodules" in files:
        paths = [p.decode("utf-8", "replace") for p in
                 _SUBMODULE_PATH.findall(files[".gitmodules"])]
        named = f" ({listed(paths, 5)})" if paths else ""
        notes.append(f"submodules are not followed{named}: scan each submodule on its own")
    if _LFS.search(files.get(".gitattributes", b"")):
        notes.append("files kept in Git LFS: their pointer files were scanned, their content "
                     "(on the LFS server) was not; run `git lfs pull` and `keyscan scan .` to "
                     "scan the current files")
    return notes


_LFS = lazy_pattern(rb"(?m)^[^#\n]*\sfilter=lfs\b")
_SUBMODULE_PATH = lazy_pattern(rb"(?m)^\s*path\s*=\s*(.+?)\s*$")


class _Run:
    """One history scan's view of the repository, and the attribution passes that start
    at once, on the core that planning the reading leaves idle."""

    def __init__(self, git_dir: Path, tips: list[str], refs_listed: list[source.Ref],
                 head: tuple[str, str], state: cache.CacheState | None,
                 old_tips: list[str], ranged: bool, sha1: bool, store: Store | None) -> None:
        self.git_dir, self.tips, self.refs_listed = git_dir, tips, refs_listed
        self.head_commit, self.head = head  # HEAD's commit, its branch ("HEAD": detached)
        self.state, self.ranged, self.sha1 = state, ranged, sha1
        self.known = ancestry.KnownRefs(state.ref_tips, state.contains) \
            if state is not None and state.ref_tips else None
        self.old_tips = old_tips  # the last scan's tips that still exist
        self.incremental = bool(self.old_tips)  # else every object is read
        self.store = store  # a re-scan reads from the repository's files
        # which refs contain which commits (not needed for CI ranges unless they find);
        # a re-scan from the files tells it from its new commits (`_read_recent`)
        self.containment: ancestry.Ancestry | None = None
        if not ranged and not (store is not None and state is not None and self.incremental):
            self.start_containment()
        self.split = False  # whole history: `git log` cut in two (`_cut`)
        self.cached: set[str] = set()  # objects whose findings come from the cache
        # a re-scan read from the files: what its new commits put where, oldest first
        self.recent: list[recent.Change] | None = None
        self.grown_from: set[str] = set()  # old commits the new ones grew from (`recent`)
        # old commits may list in another order among themselves than the cache keeps
        # them: a commit dated before its parent came (`_backdated`) or went (`_gone`)
        self.reordered = False
        self.range: list[list[str]] = []  # --range / --since-commit: [its tips, its bases]
        self.shallow = ""  # the clone's shallow boundary, kept by the cache
        # loose objects written from here on are the next re-scan's to list (2 s early:
        # a folder's time is its file system's, written as this scan starts)
        self.started_ns = time.time_ns() - 2_000_000_000
        self.change = 0  # objects an incremental scan or a range reads
        # the default branch's files, listed at once when the cache holds findings (a
        # re-scan would otherwise wait for that listing at its end); when that branch has
        # not moved, its finding blobs are those the last scan found there (a blob new
        # since cannot be in a tree whose every blob was scanned before)
        self.tip = _default_commit(refs_listed, head)
        # finding blobs in that tip's tree, and their paths there (cached)
        self.in_head: dict[str, list[str]] = {}
        self.default_tip: Later[tuple[dict[str, list[str]], str]] | None = None
        if state is not None and old_tips and (state.findings or state.messages):
            tip = _tip_moved(store, state, self.tip)
            self.default_tip = Later.done((tip, _head_note(self.tip[0], self.head))) \
                if tip is not None else Later(_default_tip, git_dir, refs_listed, self.head)


    def start_containment(self, moved: dict[str, tuple[set[str], list[str]]] | None = None
                          ) -> None:
        """The refs-containing-commits pass; `moved`: already told, git not asked."""
        self.containment = ancestry.Ancestry(self.git_dir, self.known, self.refs_listed,
                                             self.head_commit, moved)

def _read(run: _Run, rules: RuleSet, options: ScanOptions, hopts: HistoryOptions,
          result: ScanResult
          ) -> tuple[_Hits, Callable[[], cache.IdSet], source.Reachability | None]:
    """Read and match what this scan covers: the hits, the ids read (a function, called
    later), and the walk of all refs when one ran."""
    git_dir, tips = run.git_dir, run.tips
    if run.store is not None and run.state is not None and run.incremental:
        fast = _read_recent(run, run.state, rules, options, hopts, result)
        if fast is not None:
            return fast
        if not run.ranged:
            run.start_containment()  # through git, as the rest of this scan
    if run.ranged:
        run.range = _range_ends(git_dir, hopts)
    dates: dict[str, tuple[int, list[str]]] = {}
    refs, everything, run.cached = _plan(git_dir, tips, run.range, hopts, run.state,
                                         run.old_tips, dates)
    run.reordered = _backdated(dates)
    if run.range:
        refs = _fetched(git_dir, refs, result)
    run.split = everything
    run.change = len(refs)
    store = _pack_store(git_dir) if everything and hopts.read_packs and run.sha1 else None
    if everything and store is None:
        refs = _list_all(git_dir, result)
    count = store.count if store is not None else len(refs)
    walk = everything and _walk_wanted(git_dir, count, hopts)
    if everything and not walk and hopts.check_missing is None:
        result.notes.append(
            f"{count} blobs, commits and tags: the check for objects missing from "
            "the store was skipped to keep the scan fast (add --check-missing to run it)")
    walks: list[source.Reachability] = []

    def start_walk() -> None:
        # runs alongside the reading; started only once the workers exist, so no
        # worker inherits the walk's pipes
        if walk:
            walks.append(source.Reachability(git_dir, tips))

    matcher = Matcher(rules, engine_after=ENGINE_AFTER)  # a re-scan's few objects: `re`
    if store is not None:
        hits, read_ids = _read_packs(git_dir, store, matcher, options, result, hopts,
                                     start_walk)
    else:
        hits = _read_and_match(git_dir, refs, matcher, options, result, hopts, start_walk)
        read = [bytes.fromhex(r.sha) for r in refs if r.kind not in ("missing", "corrupt")]
        if everything:  # git lists no trees; the loose ones count as read (`_loose_unscanned`)
            read += [bytes.fromhex(sha)
                     for sha in source.loose_objects(source.objects_dir(git_dir))]

        def read_ids() -> cache.IdSet:
            return cache.IdSet.of(read)
    reach = walks[0].wait() if walks and not hits.interrupted else None
    _report_missing(reach, result)
    return hits, read_ids, reach


def _read_recent(run: _Run, state: cache.CacheState, rules: RuleSet, options: ScanOptions,
                 hopts: HistoryOptions, result: ScanResult
                 ) -> tuple[_Hits, Callable[[], cache.IdSet], None] | None:
    """A re-scan read from the repository's files: the commits new since the last scan,
    what they put where (kept for attribution), and the objects new to the cache, read
    and matched. None when git must walk: new history of another shape than commits
    grown from old tips (sources/recent.py), or anything that does not read cleanly.
    Nothing is added to `result` before everything has been read."""
    store = run.store
    named = _named(state)
    if store is None or hopts.reflog or any(
            r.kind in ("tree", "blob") and r.target not in named for r in run.refs_listed):
        return None  # what a new ref to a tree or a blob holds: git lists it
    old = {named.get(t, (t, ""))[0] for t in run.old_tips}
    # the commits the tips come down to, in the order git is given the tips (`git log`'s
    # order among commits of the same date depends on it)
    commit_of = {r.target: r.commit for r in run.refs_listed if r.kind == "commit"}
    named_by_refs = {r.target for r in run.refs_listed}
    for tip in run.tips:  # HEAD and other worktrees' detached HEADs: commits
        if tip not in named_by_refs:
            commit_of.setdefault(tip, tip)
    starts = [commit_of[t] for t in run.tips if t in commit_of]
    again = [*state.unreadable]
    if hopts.whole_secrets:
        again += [sha for sha, rows in state.findings.items() if _sealed(rows)]
        again += [sha for sha, (_, rows) in state.messages.items() if _sealed(rows)]
    held = [sha for sha in [*state.findings, *state.messages] if sha not in again]
    try:
        line = recent.new_commits(store, starts, old, state.scanned)
        if line is None:
            return None
        trees: dict[str, bytes] = {}
        changes = recent.changes(store, line, trees)
        tags = [sha for target in run.tips if target not in named
                for sha in store.tags_down(target)[0]]
        fresh = [c.sha for c in line] + tags + [c.blob for c in changes]
        wanted = [sha for sha in dict.fromkeys(fresh) if bytes.fromhex(sha) not in state.scanned]
        run.grown_from = {p for c in line for p in c.parents}.difference(c.sha for c in line)
        dates = {c.sha: (c.when, c.parents) for c in line}
        for parent in run.grown_from:
            if (old_commit := recent.read_commit(store, parent)) is not None:
                dates[parent] = (old_commit.when, old_commit.parents)
        run.reordered = _backdated(dates)
        wanted += _stored_unscanned(run.git_dir, state, wanted, typed=True)
        shas = list(dict.fromkeys(wanted + again))
        gone = store.missing(held)
        # the new commits were read to walk them; the rest one object in memory at a
        # time. What was read goes into `result` only once everything has read cleanly
        # (else git reads it all again)
        walked = {c.sha: ("commit", len(c.data), c.data) for c in line}
        walked.update((sha, ("tree", len(data), data)) for sha, data in trees.items())
        partial = ScanResult(target=result.target, mode=result.mode)
        hits, read_ids = _match_read(
            ((sha, walked.get(sha) or store.read_at_most(sha, options.max_file_size))
             for sha in shas),
            Matcher(rules, engine_after=ENGINE_AFTER), partial)
    except StoreError:
        return None
    run.recent, run.change = changes, len(shas)
    run.start_containment(ancestry.moved_along(
        run.known, run.refs_listed, {c.sha: c.parents for c in line}
    ) if run.known is not None else None)
    run.cached = set(held).difference(gone)
    result.skipped += [Skipped(f"object {sha}", MISSING)
                       for sha in gone] + partial.skipped
    result.stats.files += partial.stats.files
    result.stats.bytes += partial.stats.bytes
    return hits, read_ids, None


def _backdated(dates: Mapping[str, tuple[int, Sequence[str]]]) -> bool:
    """Whether, of the commits of `dates` (timestamp and parents: the new ones and those
    they grew from), one is dated before one of its parents (a clock set wrong): it holds
    that parent back in `git log --date-order`, and with it the old commits only that
    parent leads to, which then come in another order among the other old ones."""
    return any(when < dates[parent][0] for when, parents in dates.values()
               for parent in parents if parent in dates)


def _match_read(objects: Iterable[tuple[str, tuple[str, int, bytes | None] | None]],
                matcher: Matcher, result: ScanResult
                ) -> tuple[_Hits, Callable[[], cache.IdSet]]:
    """Objects read from the store (None: not there; no content: over the size
    limit), matched as `_match_objects` matches what git reads."""
    hits = _Hits()
    read: list[bytes] = []
    for sha, found in objects:
        if found is None:
            result.skipped.append(Skipped(f"object {sha}", MISSING))
            continue
        kind, size, data = found
        read.append(bytes.fromhex(sha))
        if kind not in _SCANNED_KINDS:
            continue
        if data is None:
            result.skipped.append(_too_large(sha, size))
            continue
        result.stats.files += 1
        result.stats.bytes += len(data)
        hits.add(sha, kind, _found_in(kind, data, matcher))
        if matcher.unread:
            result.skipped += unread_members(matcher, f"blob {sha}")

    def read_ids() -> cache.IdSet:
        return cache.IdSet.of(read)

    return hits, read_ids


def _too_large(blob: str, size: int) -> Skipped:
    return Skipped(f"blob {blob}", f"larger than the size limit ({size} bytes; raise it with "
                                   "--max-file-size)")


def _list_all(git_dir: Path, result: ScanResult) -> list[source.ObjectRef]:
    """Every object in the store, as git lists it; when a damaged pack makes git give up
    listing, the ids the pack indexes and object folders name, each checked by git (so
    what it cannot read is reported one by one, and the rest is still scanned)."""
    try:
        return source.list_all_objects(git_dir)
    except KeyscanError as exc:
        from keyscan.sources import packs

        objects = source.objects_dir(git_dir)
        ids = [*packs.loose_objects(objects), *(sha.hex() for idx in packs.pack_indexes(objects)
                                                for sha in packs.index_ids(idx))]
        if not ids:
            raise
        result.notes.append(f"{exc}: the objects were listed from the pack indexes instead")
        refs = source.describe_objects(git_dir, list(dict.fromkeys(ids)))
        return [r for r in refs if r.kind != "tree"]


def _gone(run: _Run) -> set[str]:
    """The commits of the cache's places that no ref reaches any more: a branch deleted,
    history rewritten (and perhaps pruned). Their places are left out, as a fresh scan
    would not see them. Git is asked only when a tip of the last scan is neither a tip
    now nor one that the new commits grew from."""
    state = run.state
    if state is None or not run.incremental or not state.appearances:
        return set()
    left = _left_behind(run, state)
    if not left or not source.unreachable(run.git_dir, left, run.tips):
        return set()
    # a commit dated before its parent may have gone with them, no longer holding that
    # parent back in `git log --date-order`: the places are put in order again
    run.reordered = True
    places = {str(row[1]) for rows in state.appearances.values() for row in rows}
    return source.unreachable(run.git_dir, places, run.tips)


def _left_behind(run: _Run, state: cache.CacheState) -> set[str]:
    """The last scan's tips (their commits) that are neither tips now nor ones the new
    commits grew from: a ref deleted, reset, amended or rebased. Through git (where the
    new commits' parents are not known) also any tip that moved on."""
    named = _named(state)
    now = {r.commit for r in run.refs_listed} | {run.head_commit, *run.tips}
    return {named.get(t, (t, ""))[0] for t in state.tips} - now - run.grown_from


def _forget_vanished(state: cache.CacheState, gone: set[str], result: ScanResult) -> None:
    """Objects with findings that no ref reached (or reaches now: in commits `gone`),
    since pruned from the store (`git gc`): not reported missing, nor looked for again.
    A missing object that a ref reaches is still reported: the repository is damaged."""
    missing = {s.path[len("object "):] for s in result.skipped
               if s.path.startswith("object ") and s.reason.startswith("missing")}
    if not missing:
        return
    vanished = {f"object {sha}" for sha in missing if (
        sha in state.findings and all(row[1] in gone for row in state.appearances.get(sha, []))
    ) or (sha in state.messages and not state.contains.get(sha))}
    result.skipped = [s for s in result.skipped if s.path not in vanished]


def _where(run: _Run, hits: _Hits, gone: set[str]
           ) -> tuple[dict[str, list[attribute.Appearance]], dict[str, list[str]]]:
    """Where each blob with findings appears, and which refs contain each commit that
    matters (those appearances, and commits with findings in their message); `gone`:
    commits no ref reaches any more (`_gone`)."""
    if run.containment is None and (hits.blobs or hits.commits):
        run.containment = ancestry.Ancestry(run.git_dir, None, run.refs_listed)
    if run.range:  # a CI range: where its own commits put the finding blobs
        appearances = attribute.introductions(run.git_dir, hits.blobs.keys(), run.range[0],
                                              run.range[1], merges="-c")
    else:
        appearances = _appearances(run.git_dir, hits, run.tips, run.state, run.old_tips,
                                   _cut(run) if run.split and hits.blobs else None,
                                   run.change <= _LIST_CHANGES, run.recent, gone,
                                   run.reordered)
    if run.containment is None:
        return appearances, {}
    return appearances, run.containment.refs_containing({
        *(a.commit.sha for places in appearances.values() for a in places),
        *(sha for sha, (kind, _) in hits.commits.items() if kind == "commit")})


def _cut(run: _Run) -> str:
    """Where to cut the whole history's `git log` in two: halfway down HEAD's
    first-parent line, taken from the containment pass when it walked everything (a
    second walk of all commits would compete with the reading for the cores)."""
    line = run.containment.first_parents(run.head_commit) \
        if run.containment is not None and run.head_commit else None
    return attribute.midpoint(run.git_dir, line)


def _range_ends(git_dir: Path, hopts: HistoryOptions) -> list[list[str]]:
    """A --range or --since-commit as [its tip commits, the commits it leaves out]."""
    base, head, symmetric = source.range_ends(hopts.range) if hopts.range \
        else (hopts.since_commit or "", "HEAD", False)
    commits = []
    for rev in (base, head):
        commit = _resolve(git_dir, rev)
        if not commit and rev.strip("0") == "" and len(rev) in (40, 64):
            raise KeyscanError(
                "the base is the all-zero commit id, which CI gives for a branch's first "
                "push: there is no base to compare with; scan what the branch adds with "
                "--range DEFAULT_BRANCH..HEAD (e.g. origin/main..HEAD), or --history")
        if not commit:
            raise KeyscanError(f"revision {rev!r} not found: " + (
                "this is a shallow clone (as CI checkouts often are): fetch the history "
                "the range needs (`git fetch --deepen=N`, or `fetch-depth: 0` for "
                "actions/checkout)" if source.is_shallow(git_dir)
                else "check --range/--since-commit"))
        commits.append(commit)
    if symmetric:  # as `git log A...B`: what either side added since they forked
        return [commits, source.merge_bases(git_dir, *commits)]
    return [[commits[1]], [commits[0]]]


def _fetched(git_dir: Path, refs: list[source.ObjectRef], result: ScanResult
             ) -> list[source.ObjectRef]:
    """A range's objects, with those a partial clone left out fetched first: a CI job's
    blobless clone (`--filter=blob:none`) holds none of the blobs its range added. One
    request to the promisor remote, as git makes for its own commands; not with
    GIT_NO_LAZY_FETCH=1, git's own switch for that."""
    missing = [r.sha for r in refs if r.kind == "missing"]
    if not missing or not source.is_partial_clone(git_dir):
        return refs
    if os.environ.get("GIT_NO_LAZY_FETCH", "").lower() in ("1", "true", "yes", "on"):
        result.notes.append(f"partial clone: {len(missing)} object(s) the range added are "
                            "not in it, and GIT_NO_LAZY_FETCH forbids fetching them")
        return refs
    why = source.fetch_missing(git_dir, missing)
    if why:
        result.notes.append(f"partial clone: {len(missing)} object(s) the range added are "
                            f"not in it, and {why}")
        return refs
    again = {r.sha: r for r in source.describe_objects(git_dir, missing)}
    result.notes.append(f"partial clone: fetched the {len(missing)} object(s) the range "
                        "added that it left out")
    return [again.get(r.sha, r) for r in refs]


def _unread_in_range(result: ScanResult) -> None:
    """A range scan is a CI gate: what it could not read (missing, corrupt, over the size
    limit) fails it, as a staged file does the pre-commit hook."""
    result.gate = True
    # not an archive's member that cannot be read (encrypted) or was cut at a limit: no
    # fetch or flag would clear those (the note lists them)
    unread = [s for s in result.skipped
              if s.path.startswith(("object ", "blob ")) and not s.member]
    if unread:
        shown = listed([s.path.split()[-1][:12] for s in unread])
        result.errors.append(
            f"{len(unread)} object(s) the range added were not scanned ({shown}; listed "
            "with --verbose): the range is not cleared. Fetch them (a partial or damaged "
            "clone: `git fetch --refetch`, or a clone without --filter), or raise "
            "--max-file-size for large ones")


def _plan(git_dir: Path, tips: list[str], ranged: list[list[str]], hopts: HistoryOptions,
          state: cache.CacheState | None, old_tips: list[str],
          dates: dict[str, tuple[int, list[str]]]
          ) -> tuple[list[source.ObjectRef], bool, set[str]]:
    """The objects to read, or none and True: every object in the store (read from the
    packs, or listed by git); and the objects whose findings the cache gives. `ranged`:
    a range's ends (`_range_ends`), or none. `dates`: filled with the new commits' dates
    and parents (`source.new_objects`)."""
    if ranged:
        # new objects (commits and tags for their messages), and every blob the range's
        # commits put at a path: a key copied from an allowed or baselined file is new there
        wanted = dict.fromkeys([*source.new_objects(git_dir, ranged[0], ranged[1]),
                                *source.changed_blobs(git_dir, *ranged)])
        return source.describe_objects(git_dir, list(wanted)), False, set()
    if state is not None:
        ids = source.new_objects(git_dir, tips, old_tips, dates) if old_tips else []
        fresh = [i for i in ids if bytes.fromhex(i) not in state.scanned]
        fresh += _stored_unscanned(git_dir, state, fresh)
        # unreadable ones are tried (and reported) again; the findings of the others
        # come from the cache (`_cached_findings`), unless the secrets themselves are
        # wanted. Those objects are described, not read: one gone from the store (or
        # damaged) since is reported as such rather than taken from the cache.
        again = [*state.unreadable]
        if hopts.whole_secrets:
            again += [sha for sha, rows in state.findings.items() if _sealed(rows)]
            again += [sha for sha, (_, rows) in state.messages.items() if _sealed(rows)]
        held = [sha for sha in [*state.findings, *state.messages] if sha not in again]
        refs = source.describe_objects(git_dir, list(dict.fromkeys(fresh + again + held)))
        cached = {r.sha for r in refs if r.kind in _SCANNED_KINDS}.intersection(held)
        if old_tips:
            return [r for r in refs if r.sha not in cached], False, cached
    return [], True, set()  # every object in the store: from the packs, or listed by git


def _stored_unscanned(git_dir: Path, state: cache.CacheState, wanted: list[str],
                      typed: bool = False) -> list[str]:
    """Objects stored since the last scan that it did not read and the new commits do not
    hold: loose ones (a commit amended or reset away, a dropped stash, a file added then
    unstaged) and those of packs written since (a fetch of a branch no ref keeps). A
    whole-history scan reads them (and says they are unreachable); a re-scan reads them
    too, so it says what a fresh scan would. `typed`: only blobs, commits and tags of the
    packs' objects (for a caller that reads what it is given; git's path describes all
    it reads anyway)."""
    taken = set(wanted)
    objects = source.objects_dir(git_dir)
    loose = [sha for sha in source.loose_objects(objects, state.loose_ns)
             if sha not in taken and bytes.fromhex(sha) not in state.scanned]
    packed = [sha.hex() for sha in state.scanned.missing(
        source.packed_since(objects, state.loose_ns))]
    packed = [sha for sha in packed if sha not in taken]
    if packed and typed:  # after `git gc` a new pack holds every tree, which the cache
        # does not list: git tells their kinds at once (reading each cost a minute)
        packed = [r.sha for r in source.describe_objects(git_dir, packed)
                  if r.kind in _SCANNED_KINDS or r.kind in ("missing", "corrupt")]
    return list(dict.fromkeys(loose + packed))


def _resolve(git_dir: Path, rev: str) -> str:
    """The commit `rev` names, "" when it names none in this store (peeling reads the
    object, so a missing one is not taken for there)."""
    return gitrepo.run(git_dir, ["rev-parse", "-q", "--verify", "--end-of-options",
                                 f"{rev}^{{commit}}"], check=False).decode().strip()


def _read_and_match(git_dir: Path, refs: list[source.ObjectRef], matcher: Matcher,
                    options: ScanOptions, result: ScanResult, hopts: HistoryOptions,
                    start_walk: Callable[[], None]) -> _Hits:
    wanted = _wanted(refs, options, result)
    size = sum(r.size for r in wanted)
    progress = _Progress(size, hopts.progress)
    workers = _workers(size, hopts)
    if workers > 1:
        from keyscan.sources import parallel

        # Each worker owns a `git cat-file` and matches what it reads: the pipe from git
        # costs as much CPU as git's own decompression, so both cores share both. Only
        # the objects with findings come back, with what was found in them.
        found = parallel.find_in_objects(git_dir, wanted, matcher.rules, workers,
                                         progress.update, start_walk)
        for sha, why in found.bad:
            result.skipped.append(Skipped(f"object {sha}", why))
        result.stats.files += found.objects
        result.stats.bytes += found.bytes
        progress.done()
        hits = _Hits(interrupted=found.interrupted)
        _add_found(hits, found, matcher, result)
    else:
        start_walk()
        hits = _match_objects(git_dir, wanted, matcher, result, progress)
        progress.done()
    if hits.interrupted:
        _note_interrupted(result, len(wanted))
    return hits


def _workers(size: int, hopts: HistoryOptions) -> int:
    """Processes to read `size` bytes with: one below PARALLEL_BYTES, where starting
    workers costs more than the second core saves."""
    if size <= source.PARALLEL_BYTES:
        return 1
    from keyscan.sources import parallel

    return hopts.workers or parallel.worker_count()


def _note_interrupted(result: ScanResult, total: int) -> None:
    result.notes.append(
        f"interrupted: partial results, {result.stats.files} of {total} objects read; the "
        "cache was not updated (the next scan reads them all again)")


def _wanted(refs: list[source.ObjectRef], options: ScanOptions, result: ScanResult
            ) -> list[source.ObjectRef]:
    """The objects to read; missing, corrupt and over-size ones are reported instead."""
    wanted = []
    for ref in refs:
        if ref.kind == "missing":
            result.skipped.append(Skipped(f"object {ref.sha}", MISSING))
        elif ref.kind == "corrupt":
            result.skipped.append(Skipped(f"object {ref.sha}", "corrupt: git cannot read it"))
        elif ref.kind == "blob" and ref.size > options.max_file_size:
            result.skipped.append(_too_large(ref.sha, ref.size))
        elif ref.kind in _SCANNED_KINDS:
            wanted.append(ref)
    return wanted


@record(frozen=False)
class _PackStore:
    plans: list[packs.PackPlan]
    loose: list[str]  # ids git reads: loose objects and entries the plans cannot rebuild
    count: int  # blobs, commits and tags in all
    ids: cache.IdSet  # every id of the packs (the cache's when all is read)


def _pack_store(git_dir: Path) -> _PackStore | None:
    """The store read from its packs in-process; None when git must list and read it
    all (alternates, an index or pack format this reader does not know). SHA-256
    repositories never come here."""
    from keyscan.sources import packs

    objects = source.objects_dir(git_dir)
    if not packs.supported(objects):
        return None
    indexes = packs.pack_indexes(objects)
    plans = []
    damaged: list[bytes] = []  # ids listed by a pack this reader cannot open or map
    for idx, plan in zip(indexes, packs.plan_packs(indexes), strict=True):
        if isinstance(plan, str):  # packs.DAMAGED: unreadable or emptied: git says what it can read
            damaged += packs.index_ids(idx)
            continue
        if not isinstance(plan, packs.PackPlan):
            return None  # a format this reader does not know: git reads everything
        plans.append(plan)
    if not plans:
        return None
    # one sorted table of every id: the cache's, and it tells whether packs repeat ids
    # (made here, not while git works on the attribution: a thread busy in Python then
    # holds up the start of git's processes, ~0.25 s with 9 packs)
    ids = plans[0].ids if len(plans) == 1 else cache.IdSet.merged(p.ids for p in plans)
    if len(ids) < sum(len(plan.ids) for plan in plans):  # a fetch beside an old pack
        seen: set[bytes] = set()
        for plan in plans:
            packs.skip_repeats(plan, seen)
    loose = [sha for sha in packs.loose_objects(objects)
             if not any(bytes.fromhex(sha) in plan for plan in plans)]
    packed = sum(plan.count for plan in plans)
    if len(loose) > packed:  # mostly unpacked (never gc'd): git's parallel path is better
        return None
    # git reports each of these it cannot read (missing, corrupt) and reads the rest
    loose += [sha.hex() for sha in dict.fromkeys(damaged)
              if not any(sha in plan for plan in plans)]
    loose += [plan.sha(p).hex() for plan in plans for p in dict.fromkeys(plan.broken)]
    return _PackStore(plans, loose, packed + len(loose), ids)


def _read_packs(git_dir: Path, store: _PackStore, matcher: Matcher, options: ScanOptions,
                result: ScanResult, hopts: HistoryOptions, start_walk: Callable[[], None]
                ) -> tuple[_Hits, Callable[[], cache.IdSet]]:
    """Every object of the store: packed ones rebuilt in-process (sources/packs.py),
    the rest (loose, over the size limit, or an entry that would not rebuild) through
    `git cat-file`, which checks sizes before reading.
    Also a function listing the ids read (for the cache: called while git works)."""
    from keyscan.sources import parallel

    total = sum(plan.weight[p] for plan in store.plans for p in plan.roots)
    progress = _Progress(total, hopts.progress, estimated=True)
    found = parallel.find_in_packs(store.plans, matcher.rules, options.max_file_size,
                                   hopts.workers or parallel.worker_count(),
                                   progress.update, start_walk)
    result.stats.files += found.objects
    result.stats.bytes += found.bytes
    hits = _Hits(interrupted=found.interrupted)
    _add_found(hits, found, matcher, result)
    failed = {(n, p) for n, p in found.failed}
    plans = store.plans
    read: list[bytes] = []

    def read_ids() -> cache.IdSet:
        # every id of the packs, trees too (a tree is never read, so listing it as
        # scanned changes nothing) but the entries that failed: the index's own table
        return store.ids.union(cache.IdSet.of(read)).without(
            plans[n].sha(p) for n, p in failed)

    rest = [*store.loose, *(store.plans[n].sha(p).hex() for n, p in failed)]
    if rest and not hits.interrupted:
        refs = source.describe_objects(git_dir, list(dict.fromkeys(rest)))
        wanted = _wanted(refs, options, result)
        more = _match_objects(git_dir, wanted, matcher, result, progress)
        hits.blobs.update(more.blobs)
        hits.commits.update(more.commits)
        hits.interrupted = more.interrupted
        read += [bytes.fromhex(r.sha) for r in refs if r.kind not in ("missing", "corrupt")]
    progress.done()
    if hits.interrupted:
        _note_interrupted(result, store.count)
    return hits, read_ids


def _add_found(hits: _Hits, found: parallel.Found, matcher: Matcher, result: ScanResult
               ) -> None:
    by_id = rules_by_id(matcher.rules)
    for ref, rows in found.hits:
        hits.add(ref.sha, ref.kind, from_rows(rows, by_id))
    result.skipped += [Skipped(f"blob {sha}", why, member) for sha, member, why in found.unread]


def _match_objects(git_dir: Path, wanted: list[source.ObjectRef], matcher: Matcher,
                   result: ScanResult | None, progress: _Progress | None) -> _Hits:
    hits = _Hits()
    objects = source.read_objects(git_dir, wanted)
    try:
        for obj in objects:
            if obj.data is None:
                if result is not None:
                    why = "corrupt: git could not read it" if obj.kind == "corrupt" \
                        else "missing"
                    result.skipped.append(Skipped(f"object {obj.sha}", why))
                continue
            if result is not None and progress is not None:
                result.stats.files += 1
                result.stats.bytes += len(obj.data)
                progress.update(result.stats.files, result.stats.bytes)
            hits.add(obj.sha, obj.kind, _found_in(obj.kind, obj.data, matcher))
            if matcher.unread and result is not None:
                result.skipped += unread_members(matcher, f"blob {obj.sha}")
    except KeyboardInterrupt:  # every object matched so far is whole: report those
        hits.interrupted = True
    finally:
        objects.close()  # stops git now, not when the generator is collected
    return hits


def _found_in(kind: str, data: bytes, matcher: Matcher) -> list[Credential]:
    """The credentials in a blob, or in a commit's or tag's message."""
    if kind == "blob":
        return matcher.find(data)
    message = source.message_of(kind, data)
    return matcher.find(message) if message else []


def _report_missing(reach: source.Reachability | None, result: ScanResult) -> None:
    if reach is None:
        return
    if reach.error:
        result.errors.append(f"walking the history: {reach.error} (the scan read every "
                             "object still in the store)")
    for sha in reach.missing:
        result.skipped.append(Skipped(f"object {sha}", MISSING))


# Walking all refs costs ~8 µs an object, trees included (about as many again as the
# blobs, commits and tags counted here): ~20% of git's own read of the store, and it
# competes with the reading for the two cores (botocore releases, 33k: +1.0 s on 4.6 s).
# A repository git fetched or cloned whole has been checked for connectivity by git
# itself, so by default the walk runs only on partial clones and where it costs under
# ~0.1 s.
_WALK_OBJECTS = 10_000


def _walk_wanted(git_dir: Path, count: int, hopts: HistoryOptions) -> bool:
    """Whether to walk all refs to find objects missing from the store."""
    if hopts.check_missing is not None:
        return hopts.check_missing
    return count <= _WALK_OBJECTS or source.is_partial_clone(git_dir)


def _held(git_dir: Path, refs: list[source.Ref], blobs: Collection[str]
          ) -> dict[str, list[tuple[str, str]]]:
    """Finding blobs held by a ref naming a tree or a blob rather than a commit (Linux's
    `v2.6.11-tree` tag names a tree): blob -> [(ref, path in that tree)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    for ref in refs:
        if ref.kind == "blob" and ref.commit in blobs:
            out.setdefault(ref.commit, []).append((ref.name, ""))
        elif ref.kind == "tree" and blobs:
            for blob, paths in attribute.tree_blobs(git_dir, ref.commit).items():
                if blob in blobs:
                    out.setdefault(blob, []).extend((ref.name, path) for path in paths)
    return out


def _reachable(run: _Run, hits: _Hits, reach: source.Reachability | None,
               appearances: dict[str, list[attribute.Appearance]],
               held: dict[str, list[tuple[str, str]]], refs_of: dict[str, list[str]]
               ) -> set[str] | None:
    """Which objects holding findings some ref (or HEAD, another worktree's detached
    HEAD, a reflog entry with --reflog: `run.tips`) reaches; None when that cannot be
    told. `held`: objects refs hold outside any commit (`_held`, and annotated tags)."""
    if reach is not None:
        if reach.error:
            return None
        return {sha for sha in [*hits.blobs, *hits.commits] if sha in reach}
    # no walk: a blob is reachable when some commit of history put it at a path (or a
    # ref names it or a tree holding it), a commit when a ref contains it or a tip no
    # ref names reaches it, an annotated tag when a ref names it or a tag of it
    found = {b for b in hits.blobs if appearances.get(b) or b in held}
    orphans = []
    for sha, (kind, _) in hits.commits.items():
        if (kind == "tag" and (sha in run.tips or sha in held)) or (
                kind == "commit" and refs_of.get(sha)):
            found.add(sha)
        elif kind == "commit":
            orphans.append(sha)
    return found | _reached_off_refs(run, orphans)


def _reached_off_refs(run: _Run, commits: list[str]) -> set[str]:
    """Those of `commits` (no ref contains them) that a tip no ref names reaches: a
    detached HEAD, here or in another worktree (git asked only when there is one)."""
    if not commits:
        return set()
    named = {sha for r in run.refs_listed if r.kind != "missing" for sha in (r.target, r.commit)}
    off_refs = [t for t in run.tips if t not in named]
    if not off_refs:
        return set()
    return set(commits) - source.unreachable(run.git_dir, commits, off_refs)


def _unreachable_places(run: _Run, hits: _Hits,
                        appearances: dict[str, list[attribute.Appearance]],
                        held: dict[str, list[tuple[str, str]]], hopts: HistoryOptions
                        ) -> dict[str, list[attribute.Appearance]]:
    """With --unreachable, for finding blobs no ref's history holds: the places the
    commits no ref reaches put them (an amended or reset-away commit, a dropped stash),
    so that their findings name a path and a commit rather than "path unknown"."""
    lost = [b for b in hits.blobs if not appearances.get(b) and b not in held]
    if not hopts.unreachable or not lost:
        return {}
    dangling = source.dangling_commits(run.git_dir, hopts.reflog)
    if not dangling:
        return {}
    first = _after(a for places in appearances.values() for a in places)
    found = attribute.introductions(run.git_dir, lost, dangling, run.tips, first)
    return {blob: places for blob, places in found.items() if places}


def _filter_unreachable(hits: _Hits, reachable: set[str] | None,
                        hopts: HistoryOptions, result: ScanResult) -> None:
    if reachable is None or hopts.unreachable:
        return
    dropped = [b for b in hits.blobs if b not in reachable]
    dropped += [c for c in hits.commits if c not in reachable]
    for sha in dropped:
        if sha in hits.blobs:
            hits.hidden_blobs[sha] = hits.blobs.pop(sha)
        if sha in hits.commits:
            hits.hidden_commits[sha] = hits.commits.pop(sha)
    if dropped:
        result.notes.append(f"{len(dropped)} unreachable objects hold credentials "
                            "(deleted branches, rewritten history): add --unreachable to list them")


def _attribute(hits: _Hits, head: dict[str, list[str]],
               appearances: dict[str, list[attribute.Appearance]],
               held: dict[str, list[tuple[str, str]]], options: ScanOptions,
               refs_of: dict[str, list[str]], meta: dict[str, Commit], result: ScanResult
               ) -> list[Finding]:
    """One finding per credential; `head`: the blobs in HEAD's tree; `held`: blobs refs
    hold outside any commit (`_held`); `meta`: the commits and tags holding findings in
    their message. A finding is made of each credential's first appearance only, the
    others are listed in it (an example key in 400 files: one finding, not 400).
    Credentials found only in allowed paths are counted in `result`."""
    grouped: dict[tuple[str, str], list[_Seen]] = {}
    last = len(appearances) + 1 << 32
    for blob, creds in hits.blobs.items():
        places: list[attribute.Appearance | None] = [*appearances.get(blob, [])] or [None]
        in_head = blob in head
        for cred in creds:
            seen = grouped.setdefault(identity(cred), [])
            for place in places:
                path = place.path if place else _outside_commits(held.get(blob, []))
                if path_allowed(path, cred, options):  # rule and --allow-path globs
                    continue
                seen.append((place.order if place else last, place.commit if place else None,
                             cred, Location(path=path, blob=blob, source="history"), in_head))
    for sha, (kind, creds) in hits.commits.items():
        where = Location(path=f"({kind} message {sha[:12]})", blob=sha,
                         source=f"{kind}-message")
        for cred in creds:
            grouped.setdefault(identity(cred), []).append(
                (last, meta.get(sha), cred, where, False))
    result.stats.path_allowed += sum(1 for seen in grouped.values() if not seen)
    return [_merge(seen, refs_of, held, head, options) for seen in grouped.values() if seen]


# a credential's appearance: its order in history, the commit, the credential as found
# there, where, and whether that blob is in HEAD's tree
_Seen = tuple[int, "Commit | None", Credential, Location, bool]


def _outside_commits(held_at: list[tuple[str, str]]) -> str:
    """The path of a blob no commit holds: in a ref's tree, or the ref that names it."""
    for _, path in held_at:
        if path:
            return path
    if held_at:
        return f"(blob named by {held_at[0][0]})"
    return "(path unknown: blob not in any commit)"


def _in_time(seen: list[_Seen]) -> None:
    """Put a credential's appearances in order: in history order; those outside it
    (commit and tag messages, which share one place in it) by date, in time whatever the
    time zone each date is written in, then by id (a stash's commits share a date: a
    re-scan lists them as a fresh scan). Dates are parsed for those only."""
    seen.sort(key=lambda s: s[0])
    at = 0
    while at < len(seen):
        end = at + 1
        while end < len(seen) and seen[end][0] == seen[at][0]:
            end += 1
        if end - at > 1:
            seen[at:end] = sorted(seen[at:end], key=_when)
        at = end


def _when(seen: _Seen) -> tuple[float, str]:
    commit = seen[1]
    if commit is None:
        return float("inf"), ""
    return attribute.timestamp(commit.commit_date), commit.sha


def _merge(seen: list[_Seen], refs_of: dict[str, list[str]],
           held: dict[str, list[tuple[str, str]]], head: dict[str, list[str]],
           options: ScanOptions) -> Finding:
    """One finding per credential: the first appearance, with every other listed, and
    where it is in HEAD's tree now (`head`: the paths of HEAD's blobs)."""
    _in_time(seen)
    _, commit, cred, location, _ = seen[0]
    first = to_finding(cred, location, commit)
    last = seen[-1][1]
    refs: set[str] = set()
    for _, commit, _, location, _ in seen:
        refs.update(ref for ref, _ in held.get(location.blob, []))
        if commit is not None:
            refs.update(refs_of.get(commit.sha, []))
    first.extra.update({
        "in_head": any(s[4] for s in seen),
        "count": len(seen),
        "refs": sorted(refs),
        "first_seen": first.commit.commit_date if first.commit else None,
        "last_seen": last.commit_date if last else None,
        "occurrences": [
            {"path": location.path, "blob": location.blob, "line": cred.anchor.line,
             "commit": commit.sha if commit else None,
             **({"member": cred.anchor.member} if cred.anchor.member else {})}
            for _, commit, cred, location, _ in seen
        ],
    })
    places = _head_places(seen, head, options)
    if places:
        first.extra["head_places"] = places
    return first


def _head_places(seen: list[_Seen], head: dict[str, list[str]], options: ScanOptions
                 ) -> list[dict[str, object]]:
    """Where the credential is in HEAD's tree: each path of HEAD holding one of its blobs,
    at the line and column in that blob (the first appearance is where it came in, which
    may be another path, or other lines than HEAD's). What a report of HEAD's files
    (SARIF for code scanning) places its results at."""
    places: dict[tuple[str, int, int, str], None] = {}
    for _, _, cred, location, in_head in seen:
        if not in_head:
            continue
        anchor = cred.anchor
        for path in head.get(location.blob, []):
            if not path_allowed(path, cred, options):
                places[(path, anchor.line, anchor.column, anchor.member)] = None
    return [{"path": path, "line": line, "column": column, **({"member": m} if m else {})}
            for path, line, column, m in sorted(places)]


# Below this many new objects, a re-scan lists every change of the new commits and
# keeps those of finding blobs itself, rather than have git look for each such blob.
_LIST_CHANGES = 20_000


def _appearances(git_dir: Path, hits: _Hits, tips: list[str], state: cache.CacheState | None,
                 old_tips: list[str], cut: str | None, small_change: bool,
                 changes: list[recent.Change] | None = None, gone: Collection[str] = (),
                 reordered: bool = False) -> dict[str, list[attribute.Appearance]]:
    """Where finding blobs appear. Incremental: the cached answer (less the places in
    commits `gone`) plus one `git log` over the new commits only (a blob new to the store
    can only be in new commits), or `changes`, what they put where, when read from the
    files. `reordered`: the old commits may list in another order among themselves
    (`_Run.reordered`): git orders every place again."""
    if state is None or not old_tips or not state.findings.keys() <= state.appearances.keys():
        return attribute.introductions(git_dir, hits.blobs.keys(), tips, cut=cut)
    known = attribute.appearances_from_rows(
        {b: [row for row in rows if row[1] not in gone] if gone else rows
         for b, rows in state.appearances.items() if b in hits.blobs})
    hits.places_changed = bool(gone)  # an amend or rebase can keep the count of places
    # old objects read again (unreadable or over the size limit last time) that now hold
    # findings: where they appear is anywhere in the history, not only in the new commits
    unreadable = set(state.unreadable)
    again = {b for b in hits.blobs if b in unreadable and b not in known}
    parts = [_flat(attribute.introductions(git_dir, again, tips, cut=cut))] if again else []
    new = _introduced(changes, hits.blobs.keys() - again) if changes is not None \
        else attribute.introductions(git_dir, hits.blobs.keys() - again, tips, old_tips,
                                     filter_in_git=not small_change)
    parts.append(_flat(new))
    old = _flat(known)
    if reordered:  # the old commits themselves may come in another order now: git says
        hits.places_changed = True
        return attribute.numbered(hits.blobs, attribute.in_history_order(
            git_dir, [old, *parts], tips, reorder=True), 0)
    if not any(parts):  # no new place: the cached ones as they were
        return {b: known.get(b, []) for b in hits.blobs}
    # the new places come after the cached ones, unless git says some come first: then
    # all are numbered again (and saved so: `_save`)
    places = attribute.in_history_order(git_dir, [old, *parts], tips)
    if all(a is b for a, b in zip(old, places, strict=False)):
        added = attribute.numbered(hits.blobs, places[len(old):], _after(old))
        return {b: [*known.get(b, []), *added[b]] for b in hits.blobs}
    hits.places_changed = True
    return attribute.numbered(hits.blobs, places, 0)


def _by_order(place: attribute.Appearance) -> int:
    return place.order


def _after(places: Iterable[attribute.Appearance]) -> int:
    """The order number that comes after all of `places`."""
    return 1 + max((a.order for a in places), default=0)


def _flat(found: dict[str, list[attribute.Appearance]]) -> list[attribute.Appearance]:
    """Appearances of many blobs, oldest first."""
    return sorted((a for places in found.values() for a in places), key=_by_order)


def _introduced(changes: list[recent.Change], blobs: Collection[str]
                ) -> dict[str, list[attribute.Appearance]]:
    """`attribute.introductions` of the new commits, from what they put where."""
    wanted = set(blobs)
    return attribute.numbered(wanted, (attribute.Appearance(c.blob, c.path, c.commit.meta, 0)
                                       for c in changes if c.blob in wanted), 0)


_Kept = tuple[dict[str, list[Credential]], dict[str, tuple[str, list[Credential]]]]


def _kept_findings(state: cache.CacheState, rules: RuleSet, result: ScanResult
                   ) -> _Kept | None:
    """The findings the cache keeps (secrets sealed), by blob and by commit or tag; None,
    with a warning, when they do not read back (a damaged cache is rebuilt)."""
    try:
        by_id = rules_by_id(rules)
        return ({blob: from_rows(rows, by_id) for blob, rows in state.findings.items()},
                {sha: (str(kind), from_rows(rows, by_id))  # type: ignore[arg-type]
                 for sha, (kind, rows) in state.messages.items()})
    except (KeyError, ValueError, TypeError, IndexError):
        result.notes.append("the scan cache's findings were damaged: scanning the whole "
                            "history again")
        return None


def _cached_findings(kept: _Kept, cached: set[str], hits: _Hits) -> None:
    """Incremental scan: the findings of the objects in `cached`, as the cache keeps
    them (secrets sealed)."""
    blobs, messages = kept
    for blob, creds in blobs.items():
        if blob in cached and blob not in hits.blobs:
            hits.blobs[blob] = creds
    for sha, found in messages.items():
        if sha in cached and sha not in hits.commits:
            hits.commits[sha] = found


def _sealed(rows: object) -> bool:
    """Whether cached rows keep a value sealed (a secret: its object is read again when
    the secrets themselves are wanted)."""
    return isinstance(rows, list) and any(
        isinstance(row[2], list) for cred in rows for row in cred)


def _unreadable(result: ScanResult) -> set[str]:
    """Objects git could not read, and blobs over the size limit: they stay unscanned,
    so the next scan reports them again (and reads them under a higher limit)."""
    return {s.path.partition(" ")[2] for s in result.skipped
            if s.path.startswith(("object ", "blob "))}


def _cache_ids(state: cache.CacheState | None, read_ids: Callable[[], cache.IdSet],
               result: ScanResult) -> cache.Scanned:
    read = read_ids()
    scanned = state.scanned.union(read) if state is not None else cache.Scanned(read)
    return scanned.without(bytes.fromhex(sha) for sha in _unreadable(result))


def _save(run: _Run, rules: RuleSet, ids: Later[cache.Scanned] | None, hits: _Hits,
          appearances: dict[str, list[attribute.Appearance]], result: ScanResult,
          contains: dict[str, list[str]]) -> None:
    if hits.interrupted or ids is None:
        return  # the cache stays as the last complete scan left it
    scanned = ids.get()
    blobs = {**hits.blobs, **hits.hidden_blobs}
    commits = {**hits.commits, **hits.hidden_commits}
    ref_tips = run.containment.tips if run.containment is not None else {}
    # what the cache gave and did not change is written back as it was read
    kept = run.state if run.state is not None and run.incremental else cache.CacheState()
    cached = run.cached

    def places(blob: str) -> list[list[object]]:
        now, old = appearances.get(blob, []), kept.appearances.get(blob)
        if blob in cached and old is not None and len(old) == len(now) \
                and not hits.places_changed:
            return old  # no new place, none numbered again
        return attribute.appearance_rows({blob: now})[blob]

    state = cache.CacheState(
        rules_digest=rules.digest, tips=run.tips, scanned=scanned,
        # what refs name other than a commit (annotated tags, trees, blobs): the next
        # scan asks git only about objects it has not seen named
        ref_peeled={r.target: [r.commit, r.kind] for r in run.refs_listed
                    if r.kind != "missing" and (r.kind != "commit" or r.commit != r.target)},
        findings={b: kept.findings[b] if b in cached and b in kept.findings
                  else to_rows(c, seal=True) for b, c in blobs.items()},
        messages={sha: kept.messages[sha] if sha in cached and sha in kept.messages
                  else [kind, to_rows(c, seal=True)] for sha, (kind, c) in commits.items()},
        ref_tips=ref_tips, contains=contains, head_tip=run.tip, in_head=run.in_head,
        shallow=run.shallow, loose_ns=run.started_ns,
        appearances={b: places(b) for b in blobs},
        unreadable=sorted(_unreadable(result)),
    )
    try:
        cache.save(run.git_dir, state)
    except OSError as exc:  # the report stands; only the next scan reads more
        result.notes.append(f"the scan cache could not be saved ({exc.strerror}): the next "
                            "scan reads the whole history again")


class _Progress:
    """Objects, bytes, rate and time left on stderr; only on a TTY and outside CI."""

    def __init__(self, total: int, enabled: bool | None, estimated: bool = False) -> None:
        """`estimated`: `total` is a guess (packed deltas' sizes are known only once
        rebuilt), shown with a ~."""
        if enabled is None:
            enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.enabled = enabled
        self.total = total
        self.about = "~" if estimated else ""
        self.started = time.perf_counter()
        self.last = 0.0

    def update(self, objects: int, done: int) -> None:
        if not self.enabled or not objects:
            return
        now = time.perf_counter()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        left = max(self.total - done, 0) / rate if rate else 0
        sys.stderr.write(f"\rkeyscan: {objects} objects, {done / 1e6:.0f}/{self.about}"
                         f"{self.total / 1e6:.0f} MB, {rate / 1e6:.0f} MB/s, "
                         f"~{left:.0f} s left ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
