"""Composes the pipeline for one target: source -> match -> attribute -> findings.

The CLI, the pre-commit hook and the fleet audit all call these functions.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterable
from pathlib import Path

from keyscan import attribute, gitrepo
from keyscan.errors import KeyscanError, ScanInterrupted
from keyscan.match import ENGINE_AFTER, Credential, Matcher, Part
from keyscan.model import (
    Commit,
    Finding,
    Location,
    ScanResult,
    Secret,
    Skipped,
    Status,
    value_digest,
)
from keyscan.record import field, record
from keyscan.report.redact import printable
from keyscan.rules import RuleSet
from keyscan.sources import Content, Unit

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import BinaryIO

DEFAULT_MAX_FILE_SIZE = 100 * 1024 * 1024
PAIR_SEVERITY = "critical"
PAIR_DESCRIPTION = "AWS access key ID with its secret access key"


@record
class ScanOptions:
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    follow_symlinks: bool = False
    allow_paths: tuple[str, ...] = ()  # globs never reported, whatever the rule
    extra: dict[str, object] = field(default_factory=dict)


def scan_worktree(target: Path, rules: RuleSet, options: ScanOptions) -> ScanResult:
    from keyscan.sources import worktree

    _require_exists(target)
    if not (target.is_file() or target.is_dir()):  # a pipe, `<(cmd)`, /dev/stdin, a device
        with _opened(target) as stream:
            return _scan_stream(stream, str(target), "worktree", rules, options)
    if target.is_symlink():  # named on the command line: followed, as cat and grep do
        target = target.resolve()
    repo = gitrepo.discover(target)
    if repo is not None and repo.bare:
        raise KeyscanError(f"{target} is a bare repository: it has no files to scan; scan "
                           "its history with `keyscan scan --history`")
    if repo is not None and _inside(target, repo.git_dir):
        raise KeyscanError(
            f"{target} is in the repository's git folder, which holds git's objects, not "
            f"files to scan: scan the repository's files (`keyscan scan {repo.root}`) or "
            f"its whole history (`keyscan scan --history {repo.root}`)")
    base, paths = worktree.files(target, options.follow_symlinks)
    if len(paths) >= _PARALLEL_FILES:
        # imported only then: with the pack reader and process pools it costs ~40 ms
        from keyscan.sources import parallel

        workers = parallel.worker_count()
        if workers > 1:
            return _run_parallel(str(target), base, paths, rules, options, workers)
    units = worktree.read(base, paths, options.max_file_size, options.follow_symlinks)
    result = _run(str(target), "worktree", units, rules, options)
    if repo is not None and not paths and gitrepo.ignored(target):
        result.notes.append(
            f"{target} is ignored by git: a repository's working tree is scanned as git "
            "would commit it, so none of its files was read; name a file to scan it "
            "(`keyscan scan FILE`), or scan a copy outside the repository")
    return result


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or below it (both resolved)."""
    here, there = os.path.realpath(path), os.path.realpath(folder)
    return here == there or here.startswith(there.rstrip(os.sep) + os.sep)


_PARALLEL_FILES = 2000  # below this, starting workers costs more than it saves
_CHUNK_FILES = 256
_worker_state: dict[str, object] = {}


def _run_parallel(target: str, base: Path, paths: list[bytes], rules: RuleSet,
                  options: ScanOptions, workers: int) -> ScanResult:
    """Big trees: forked workers read and match chunks of files (re and Python hold the
    GIL, so threads would not help); results come back in path order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    _worker_state.update(rules=rules, options=options, base=base)
    chunks = [paths[i : i + _CHUNK_FILES] for i in range(0, len(paths), _CHUNK_FILES)]
    result = ScanResult(target=target, mode="worktree")
    # Ctrl-C reaches the workers too: they leave it to this process, which stops them
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_leave_sigint_to_the_parent)
    try:
        for part in pool.map(_scan_chunk, chunks):
            result.findings.extend(part.findings)
            result.skipped.extend(part.skipped)
            result.errors.extend(part.errors)
            result.stats.files += part.stats.files
            result.stats.bytes += part.stats.bytes
            result.stats.allowed += part.stats.allowed
            result.stats.path_allowed += part.stats.path_allowed
    except KeyboardInterrupt:
        pool.shutdown(wait=True, cancel_futures=True)  # the chunks under way: < 256 files
        _interrupted(result, len(paths), started)
    finally:
        pool.shutdown()
        _worker_state.clear()
    result.stats.seconds = time.perf_counter() - started
    return result


def _leave_sigint_to_the_parent() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted(result: ScanResult, total: int | None, started: float) -> None:
    """Ctrl-C: what was read so far is reported, and said to be partial."""
    of = f" of {total}" if total is not None else ""
    result.notes.append(f"interrupted: partial results, {result.stats.files}{of} files read")
    result.stats.seconds = time.perf_counter() - started
    raise ScanInterrupted(result) from None


def _scan_chunk(paths: list[bytes]) -> ScanResult:
    from keyscan.sources import worktree

    rules, options, base = (_worker_state["rules"], _worker_state["options"],
                            _worker_state["base"])
    assert isinstance(rules, RuleSet) and isinstance(options, ScanOptions)
    assert isinstance(base, Path)
    matcher = _worker_state.get("matcher")
    if not isinstance(matcher, Matcher):
        matcher = _worker_state["matcher"] = Matcher(rules)
    units = worktree.read(base, paths, options.max_file_size, options.follow_symlinks)
    return _run("", "worktree", units, rules, options, matcher)


def scan_staged(target: Path, rules: RuleSet, options: ScanOptions,
                files: list[str] | None = None) -> ScanResult:
    """What is staged in the repository at `target`: the files changed against HEAD, or
    `files` (named from the current folder), changed or not."""
    from keyscan.sources import staged

    _require_exists(target)
    repo = gitrepo.discover(target)
    if repo is None or repo.bare:
        raise KeyscanError(f"{target} is not inside a git work tree: --staged needs one")
    if files and not _same_repo(gitrepo.discover(Path.cwd()), repo):
        # the names would be looked up in another index (or none), and reported as
        # missing from this one's object store: a damaged repository, said wrongly
        raise KeyscanError(
            f"--files names files from the current folder, which is not in the repository "
            f"at {repo.root}: run the scan from there (`cd {repo.root}`)")
    result = _run(str(repo.root), "staged",
                  staged.read(repo.root, options.max_file_size, files), rules, options)
    # the hook fails closed: a staged file it could not read would go in unscanned
    result.gate = True
    large = [s for s in result.skipped if s.reason.startswith(staged.TOO_LARGE)]
    missing = [s for s in result.skipped if "missing from the object store" in s.reason]
    for unread, what, advice in (
            (large, "over the size limit", "Raise the limit (`max_file_size: 500M` in "
             ".keyscan.yaml, or --max-file-size) to scan them"),
            (missing, "missing from the object store", "The repository is damaged: "
             "`git fsck` names what is wrong; stage the files again (`git add`)")):
        if unread:
            result.errors.append(
                f"{len(unread)} staged file(s) {what}, not scanned "
                f"({listed([printable(s.path) for s in unread])}): the commit is stopped. "
                f"{advice}")
    return result


def _same_repo(here: gitrepo.Repo | None, repo: gitrepo.Repo) -> bool:
    """Whether `here` is `repo` (the same git dir, and so the same index)."""
    try:
        return here is not None and os.path.samefile(here.git_dir, repo.git_dir)
    except OSError:
        return False


def listed(names: list[str], most: int = 3) -> str:
    """The first `most` of `names`, and an ellipsis for the rest: for one-line messages."""
    return ", ".join(names[:most]) + (", …" if len(names) > most else "")


def scan_stdin(stream: BinaryIO | None, rules: RuleSet, options: ScanOptions) -> ScanResult:
    """Standard input (`keyscan scan -`): a CI log, `kubectl get secret -o yaml`, a config
    pasted from somewhere."""
    return _scan_stream(stream, STDIN_PATH, "stdin", rules, options)


def _scan_stream(stream: BinaryIO | None, path: str, mode: str, rules: RuleSet,
                 options: ScanOptions) -> ScanResult:
    """A stream read to its end, up to the size limit; past it, the rest is not read and
    the scan fails (exit 2) after reporting what the beginning holds."""
    data = _read_to_end(stream, options.max_file_size + 1)
    over = len(data) > options.max_file_size
    location = Location(path=path, source=mode)
    result = _run(path, mode, [Content(location, data[: options.max_file_size])],
                  rules, options)
    result.gate = True  # a pipeline's check: what it could not read fails it
    if over:
        shown = "standard input" if mode == "stdin" else path
        result.errors.append(
            f"{shown} is larger than the size limit ({options.max_file_size} bytes): "
            "only its beginning was scanned; raise it with --max-file-size")
    return result


def _opened(target: Path) -> BinaryIO:
    try:
        return open(target, "rb")  # the caller closes it
    except OSError as exc:
        raise KeyscanError(f"{target} cannot be read ({exc.strerror or exc})") from None


STDIN_PATH = "(stdin)"


def _read_to_end(stream: BinaryIO | None, limit: int) -> bytes:
    """Up to `limit` bytes of `stream`, to its end: a pipe some CI runners hand over in
    non-blocking mode gives only what has arrived yet to one read."""
    import os
    import select

    if stream is None:
        raise KeyscanError("standard input is closed: pipe the content in (`… | keyscan "
                           "scan -`)")
    chunks: list[bytes] = []
    size = 0
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a file (a test's BytesIO)
        return stream.read(limit)
    try:
        while size < limit:
            try:
                chunk = os.read(fd, min(1 << 20, limit - size))
            except BlockingIOError:
                select.select([fd], [], [])  # wait for more, or for the end
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise KeyscanError(f"standard input cannot be read ({exc.strerror or exc}): pipe "
                           "the content in (`… | keyscan scan -`)") from None
    return b"".join(chunks)


def _require_exists(target: Path) -> None:
    if not target.exists():
        raise KeyscanError(f"{target} does not exist: give a file, folder or repository")


def _run(target: str, mode: str, units: Iterable[Unit], rules: RuleSet, options: ScanOptions,
         matcher: Matcher | None = None) -> ScanResult:
    started = time.perf_counter()
    result = ScanResult(target=target, mode=mode)
    matcher = matcher or Matcher(rules, engine_after=ENGINE_AFTER)  # a hook's few files: `re`
    try:
        for unit in units:
            if not isinstance(unit, Content):
                result.skipped.append(unit)
                continue
            result.stats.files += 1
            result.stats.bytes += len(unit.data)
            for finding in findings_in(unit, matcher, options, result):
                if finding.status is Status.ALLOWED:
                    result.stats.allowed += 1
                result.findings.append(finding)
    except KeyboardInterrupt:  # every file matched so far is whole: report those
        _interrupted(result, None, started)
    result.stats.seconds = time.perf_counter() - started
    return result


def findings_in(unit: Content, matcher: Matcher, options: ScanOptions,
                result: ScanResult | None = None) -> list[Finding]:
    """The findings in `unit`; those in allowed paths are counted in `result` instead,
    and what of an archive was not read is listed in its `skipped`."""
    creds = matcher.find(unit.data)
    if matcher.unread and result is not None:
        result.skipped += unread_members(matcher, unit.location.path)
    if not creds:
        return []
    path = unit.location.path
    out = []
    for cred in creds:
        if path_allowed(path, cred, options):
            if result is not None:
                result.stats.path_allowed += 1
            continue
        out.append(to_finding(cred, unit.location))
    return out


def unread_members(matcher: Matcher, path: str) -> list[Skipped]:
    """What of the archive at `path` the matcher just matched was not read, or not wholly
    (an encrypted member, one cut at a limit): never passed over silently."""
    return [Skipped(path, why, member) for member, why in matcher.unread]


def path_allowed(path: str, cred: Credential, options: ScanOptions) -> bool:
    globs = [*options.allow_paths, *(g for p in cred.parts for g in p.rule.rule.allow_paths)]
    return any(fnmatch.fnmatch(path, g) for g in globs)


def identity(cred: Credential) -> tuple[str, str]:
    """The rule id and value digest of the finding `to_finding` makes of `cred`: what
    groups its appearances into one finding, without making it."""
    key = cred.key_id
    return cred.anchor.rule.rule.id, value_digest(
        key.value if key else "", _secret(cred.secret) or _secret(cred.other),
        _secret(cred.token))


def to_finding(cred: Credential, location: Location, commit: Commit | None = None
               ) -> Finding:
    anchor = cred.anchor
    rule = anchor.rule.rule
    key = cred.key_id
    paired = key is not None and cred.secret is not None
    return Finding(
        rule_id=rule.id,
        description=PAIR_DESCRIPTION if paired else rule.description,
        severity=PAIR_SEVERITY if paired else rule.severity,
        status=cred.status,
        location=location,
        line=anchor.line,
        column=anchor.column,
        kind=_kind(cred),
        key_id=key.value if key else "",
        key_type=_key_type(key) if key else "",
        secret=_secret(cred.secret) or _secret(cred.other),
        session_token=_secret(cred.token),
        encoding=anchor.encoding,
        member=anchor.member,
        account=attribute.account_id(key.value) if key else "",
        commit=commit,
    )


def _kind(cred: Credential) -> str:
    if cred.key_id is not None:
        return "pair" if cred.secret is not None else "key-id"
    if cred.secret is not None:
        return "secret"
    return "session-token" if cred.token is not None else "generic"


def _secret(part: Part | None) -> Secret | None:
    if part is None:
        return None
    return part.sealed if part.sealed is not None else Secret(part.value)


def _key_type(part: Part) -> str:
    for prefix, meaning in part.rule.rule.prefixes:
        if part.value.startswith(prefix):
            return f"{prefix}: {meaning}"
    return ""
