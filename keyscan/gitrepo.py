"""The one place that runs git: gitpython, and plumbing with -z output parsed into plain
values.

A history scan opens the repository with gitpython (`opened`) and asks it for the refs,
HEAD and the commits and tags a report names (`ref_rows`, `head_of`, `read_small`):
gitpython's import costs ~65 ms once, against the seconds a first scan takes. Two paths
do without it, because its import alone would be most of their time: the work-tree and
staged scans of a pre-commit hook (`discover`, `staged_entries`: plain `git`), and a
history re-scan that reads the refs and new objects from the repository's files
(sources/store.py: ~80 ms in all). Bulk reading streams through the plumbing gitpython
wraps, run directly (`cat-file --batch`, `rev-list --objects`: sources/history.py) or
in-process from the packs (sources/packs.py). Fleet audits clone and fetch untrusted URLs
with gitpython (`mirror`, `fetch`, `facts`), for its checks of unsafe protocols and
options.
"""

from __future__ import annotations

import _thread
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from keyscan.errors import KeyscanError
from keyscan.lazy import LazyModule
from keyscan.record import record

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    import subprocess
    import threading
    from typing import IO

    import git
else:  # run git: imported only once git runs (keyscan/lazy.py)
    subprocess = LazyModule("subprocess")
    threading = LazyModule("threading")

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
NO_GIT = "git is not installed or not on PATH: install git"

# keyscan reads what the repository really holds: without this, a `git replace` of a
# blob or commit makes every git command show the replacement, hiding a committed key
# from the scan (the replacement, named by refs/replace/*, is scanned as well). Set for
# every git this process and its workers start.
os.environ["GIT_NO_REPLACE_OBJECTS"] = "1"

# For commands that walk trees (rev-list --objects, log --find-object): git's default
# 96 MB delta-base cache is sized for reading blobs; a tree walk holding 16 MB instead
# uses ~60-90 MB less a process and is no slower on the benchmarks.
TREE_WALK = ("-c", "core.deltaBaseCacheLimit=16m")


def tree_walk(git_dir: Path, *args: str) -> list[str]:
    """The command line of a tree-walking git command on `git_dir`."""
    return ["git", *TREE_WALK, f"--git-dir={git_dir}", *args]


@record
class Repo:
    root: Path  # the work tree, or the git dir of a bare repository
    git_dir: Path
    bare: bool = False
    object_format: str = "sha1"  # or "sha256"


def run(repo: Path, args: Sequence[str], check: bool = True, input: bytes | None = None
        ) -> bytes:
    """Run git in `repo`, keeping git's own environment (GIT_INDEX_FILE in hooks)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args], input=input, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise KeyscanError(NO_GIT) from None
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = err[-1] if err else f"exit {proc.returncode}"
        raise KeyscanError(f"git {args[0]} failed in {repo}: {detail}")
    return proc.stdout


def discover(path: Path) -> Repo | None:
    """The repository containing `path`, or None for a plain folder. The answer for the
    last folder asked is kept (a scan asks twice: settings, then the scan itself) while
    its git dir is the same one, until `forget()`."""
    folder = path if path.is_dir() else path.parent
    key = os.path.abspath(folder)
    last = _discovered.get(key)
    if last is not None and last[1] is not None and _identity(last[0].git_dir) == last[1]:
        return last[0]  # the same git dir, untouched (one made again there differs)
    found = _discover_plain(key)
    if found is not None:
        _discovered.clear()
        _discovered[key] = (found, _identity(found.git_dir))
        return found
    out = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--is-bare-repository", "--absolute-git-dir",
         "--show-object-format", "--show-cdup"],  # no cdup line in a git dir: it goes last
        capture_output=True, check=False,
    )
    if out.returncode != 0:
        if b"dubious ownership" in out.stderr or b"safe.directory" in out.stderr:
            raise KeyscanError(
                f"git refuses the repository at {folder}: it belongs to another user "
                "(git's safe.directory check, common in CI containers). If you trust it, run "
                f"`git config --global --add safe.directory {os.path.abspath(folder)}`"
                " (or scan as its owner)")
        return None
    lines = [*out.stdout.decode("utf-8", "surrogateescape").splitlines(), "", ""]
    bare, git_dir, object_format = lines[0] == "true", Path(lines[1]), lines[2] or "sha1"
    if bare:
        repo = Repo(root=git_dir, git_dir=git_dir, bare=True, object_format=object_format)
    else:
        root = (folder / lines[3]).resolve()
        if root == git_dir or git_dir in root.parents:
            root = git_dir.parent  # asked from inside .git itself
        repo = Repo(root=root, git_dir=git_dir, bare=False, object_format=object_format)
    _discovered.clear()
    _discovered[key] = (repo, _identity(git_dir))
    return repo


def work_tree(path: Path) -> Path | None:
    """The root of the work tree holding `path` (a file or folder), or None: no
    repository there, or a bare one."""
    folder = path if path.is_dir() else path.parent
    repo = discover(folder) if folder.exists() else None
    return None if repo is None or repo.bare else repo.root


_discovered: dict[str, tuple[Repo, tuple[int, int, int] | None]] = {}
# settings that change where git looks for a repository: git is asked then
_DISCOVERY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES",
                  "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def _discover_plain(folder: str) -> Repo | None:
    """The repository holding `folder`, found as git finds it, in the plain case only:
    a `.git` folder in it or above it on the same filesystem, both owned by this user
    (git's safe.directory check), of the layout sources/store.py reads (SHA-1, no
    extension, not bare). None: git is asked, as for anything else (a `.git` file of a
    worktree or submodule, a bare repository, a folder inside a git dir). A re-scan then
    starts no process before it reads the repository's files."""
    if any(os.environ.get(name) for name in _DISCOVERY_ENV):
        return None
    try:
        here = os.path.realpath(folder)  # git works from the physical path
        device = os.stat(here).st_dev
        while True:
            dot = os.path.join(here, ".git")
            try:
                st = os.lstat(dot)
            except FileNotFoundError:
                st = None
            if st is not None:
                return _plain_repo(here, dot, st)
            if os.path.exists(os.path.join(here, "HEAD")) and \
                    os.path.isdir(os.path.join(here, "objects")):
                return None  # a bare repository, or inside a git dir
            parent = os.path.dirname(here)
            if parent == here or os.stat(parent).st_dev != device:
                return None  # the top, or another filesystem (git stops there)
            here = parent
    except OSError:
        return None


def _plain_repo(root: str, dot: str, st: os.stat_result) -> Repo | None:
    import stat as stat_module

    from keyscan.sources.store import Store

    uid = os.geteuid()
    if not stat_module.S_ISDIR(st.st_mode) or st.st_uid != uid or os.stat(root).st_uid != uid:
        return None
    git_dir = Path(dot)
    store = Store.open(git_dir)
    if store is None or store.bare or not os.path.isfile(os.path.join(dot, "HEAD")):
        return None
    return Repo(root=Path(root), git_dir=git_dir, bare=False, object_format="sha1")


def forget() -> None:
    """Drop what `discover` remembers: each command (and each audited repository)
    starts afresh, whatever a folder became in between."""
    _discovered.clear()


def _identity(folder: Path) -> tuple[int, int, int] | None:
    """Device, inode and change time: a folder made again, even on a reused inode,
    differs."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


def split_z(raw: bytes) -> list[bytes]:
    return [p for p in raw.split(b"\0") if p]


def worktree_files(folder: Path) -> list[bytes]:
    """Paths (relative to `folder`) git would commit: tracked plus untracked-not-ignored."""
    raw = run(folder, ["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    return list(dict.fromkeys(split_z(raw)))


def worktree_listing(folder: Path) -> tuple[list[bytes], list[bytes]]:
    """`worktree_files`, plus the folders git could not open (reported, never silent)."""
    env = {**os.environ, "LC_ALL": "C", "LANGUAGE": "C"}  # git's warnings, untranslated
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], capture_output=True, check=False, env=env)
    except FileNotFoundError:
        raise KeyscanError("git is not installed or not on PATH: install git") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise KeyscanError(f"git ls-files failed in {folder}: {err[-1] if err else ''}")
    return list(dict.fromkeys(split_z(proc.stdout))), unopened_folders(proc.stderr)


def unopened_folders(stderr: bytes) -> list[bytes]:
    """Folders named in git's "could not open directory 'PATH/': ..." warnings."""
    marker = b"could not open directory '"
    out = []
    for line in stderr.splitlines():
        at = line.find(marker)
        end = line.rfind(b"'")
        if at != -1 and end > at + len(marker):
            out.append(line[at + len(marker) : end].rstrip(b"/"))
    return out


@record
class StagedEntry:
    path: bytes  # relative to the repository root
    mode: str
    blob: str


UNMERGED = "unmerged"  # the mode of a StagedEntry of a path with a conflict to resolve


def staged_entries(root: Path) -> list[StagedEntry]:
    """Files added or changed in the index against HEAD (all of them before the first
    commit), and those with a conflict to resolve (mode UNMERGED)."""
    has_head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
        capture_output=True, check=False,
    ).returncode == 0
    raw = run(root, ["diff-index", "--cached", "-z", "--no-renames", "--diff-filter=ACMTU",
                     "HEAD" if has_head else _empty_tree(root)])
    fields = raw.split(b"\0")
    entries = []
    for i in range(0, len(fields) - 1, 2):
        meta = fields[i].decode("ascii").split()
        if len(meta) < 5:
            continue
        unmerged = meta[4] == "U"  # a conflict: no one content staged yet
        entries.append(StagedEntry(path=fields[i + 1], mode=UNMERGED if unmerged else meta[1],
                                   blob=meta[3]))
    return entries


# past this many names, git's matching of each index entry with each name (the whole
# index times the names: ~0.7 s for 10k names in a 10k-file index, pre-commit's batches on
# `--all-files`) costs more than listing the index once and looking the names up
_MANY_PATHS = 256


def index_entries(cwd: Path, paths: Sequence[str]) -> tuple[list[StagedEntry], list[str]]:
    """The index's entries at or under `paths` (taken literally, from `cwd`, as
    pre-commit names files), changed or not; and the paths that name none."""
    if not paths:
        return [], []
    cdup, prefix = [*run(cwd, ["rev-parse", "--show-cdup", "--show-prefix"])
                    .decode("utf-8", "surrogateescape").split("\n"), "", ""][:2]
    full = [_full_name(prefix, p) for p in paths]
    outside = any(os.path.isabs(p) for p in paths) or any(
        f == b".." or f.startswith(b"../") for f in full)  # git says what is wrong
    many = len(paths) > _MANY_PATHS and not outside
    if many:  # the whole index, from the top folder, and the names looked up here
        raw = run(cwd / cdup, ["ls-files", "-s", "-z", "--full-name"])
    else:
        raw = run(cwd, ["--literal-pathspecs", "ls-files", "-s", "-z", "--full-name", "--",
                        *paths])
    # a name ending in "/" is a folder's, as to git: the files below it, not a file
    files = {f for p, f in zip(paths, full, strict=True) if not p.endswith("/")}
    folders = set(full)
    entries, names = [], set()
    for line in raw.split(b"\0"):
        meta, tab, path = line.partition(b"\t")
        fields = meta.decode("ascii", "replace").split()
        if not tab or len(fields) < 3:
            continue
        if many and not _named(path, files, folders):
            continue
        entries.append(StagedEntry(path=path, mode=fields[0], blob=fields[1]))
        names.add(path)
    # a folder named matches the files below it ("" the root: any file)
    known = names | {p[:i] for p in names for i in range(len(p)) if p[i : i + 1] == b"/"}
    if names:
        known.add(b"")
    unmatched = [p for p, f in zip(paths, full, strict=True) if f not in known]
    return entries, unmatched


def _named(path: bytes, files: set[bytes], folders: set[bytes]) -> bool:
    """Whether `path` (from the top folder) is one of `files` or below one of `folders`."""
    if path in files or b"" in folders:
        return True
    at = path.find(b"/")
    while at != -1:
        if path[:at] in folders:
            return True
        at = path.find(b"/", at + 1)
    return False


def _full_name(prefix: str, path: str) -> bytes:
    """`path`, given from a folder `prefix` below the repository's root, from the root."""
    joined = os.path.normpath(prefix + path).strip("/")
    return b"" if joined == "." else os.fsencode(joined)


def ignored(folder: Path) -> bool:
    """Whether git ignores `folder` (.gitignore, info/exclude, core.excludesFile)."""
    try:
        return subprocess.run(["git", "-C", str(folder), "check-ignore", "-q", "."],
                              capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def _empty_tree(root: Path) -> str:
    """The empty tree's id in this repository's object format (a first commit is
    compared with it; SHA-256 repositories name it differently)."""
    out = run(root, ["hash-object", "-t", "tree", "--stdin"], input=b"").decode().strip()
    return out or EMPTY_TREE


def read_blobs(repo: Path, blobs: Sequence[str], max_size: int | None = None
               ) -> Iterator[tuple[str, bytes | int | None]]:
    """Contents of many blobs through one `git cat-file --batch` (None: missing; the
    size alone for one over `max_size`, whose bytes are passed over, never held)."""
    if not blobs:
        return
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # write from a thread: git stops reading requests while its answers are unread
        requests = b"".join(f"{b}\n".encode() for b in blobs)
        writer = threading.Thread(target=feed, args=(proc.stdin, requests), daemon=True)
        writer.start()
        for blob in blobs:
            header = proc.stdout.readline().split()
            if len(header) < 3 or header[1] == b"missing":
                yield blob, None
                continue
            size = int(header[2])
            if max_size is not None and size > max_size:
                left = size + 1  # the content and its newline, passed over
                while left > 0 and (chunk := proc.stdout.read(min(left, 1 << 20))):
                    left -= len(chunk)
                yield blob, size
                continue
            data = proc.stdout.read(size)
            proc.stdout.read(1)
            yield blob, data
    finally:
        proc.stdout.close()
        proc.wait()


def feed(pipe: IO[bytes], data: bytes) -> None:
    """Write requests to a git process and close its input (run it in a thread: git
    stops reading requests while its answers are unread)."""
    try:
        pipe.write(data)
        pipe.close()
    except (OSError, ValueError):  # git exited early: its answers say why
        pass


@record
class Facts:
    """What an audit tells of a repository besides its leaks."""

    default_branch: str = ""  # the branch HEAD names; "" when detached or unknown
    branches: int = 0
    tags: int = 0
    last_commit: str = ""  # the newest committer date of any branch tip (ISO 8601)


def _git_env() -> dict[str, str]:
    """Never wait for a password prompt: a fleet worker has no one to answer it."""
    return {"GIT_TERMINAL_PROMPT": "0",
            "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")}


def mirror(source: str, to: Path) -> None:
    """A bare mirror of `source` (every ref, every object) at `to`, by gitpython, which
    refuses remote helpers that run commands (`ext::`) and options smuggled into the
    URL. KeyscanError with what git said (`_why_not`) on failure (the URL left as given:
    the caller masks its credentials)."""
    import git

    try:
        git.Repo.clone_from(source, to, mirror=True, env=_git_env()).close()
    except (git.GitCommandError, git.UnsafeProtocolError, git.UnsafeOptionError) as exc:
        raise KeyscanError(f"git clone of {source} failed: {_why_not(exc)}") from None


def fetch(mirror_dir: Path, source: str) -> None:
    """Bring the mirror `mirror_dir` up to date with its origin (refs gone there pruned)."""
    import git

    try:
        with git.Repo(mirror_dir, expand_vars=False) as repo, \
                repo.git.custom_environment(**_git_env()):
            repo.remote("origin").fetch(prune=True)
    except (git.GitCommandError, git.InvalidGitRepositoryError, ValueError) as exc:
        raise KeyscanError(f"git fetch of {source} failed: {_why_not(exc)}") from None


def _why_not(exc: Exception) -> str:
    """What git said went wrong (its first `fatal:` or `error:` line), in a user's words
    for what gitpython refused before running git."""
    import git

    if isinstance(exc, git.UnsafeProtocolError):
        return "refused: the URL names a git remote helper that runs commands (ext::)"
    if isinstance(exc, git.UnsafeOptionError):
        return "refused: the URL would pass options to git"
    if isinstance(exc, git.InvalidGitRepositoryError):
        return "not a git repository (remove it to clone again)"
    stderr = str(getattr(exc, "stderr", "") or exc)
    lines = [line.strip().removeprefix("stderr:").strip(" '") for line in stderr.splitlines()]
    said = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (said or [line for line in lines if line] or [type(exc).__name__])[0]


def facts(git_dir: Path) -> Facts:
    """The default branch, how many branches and tags, and the newest branch tip's
    date, by gitpython; what cannot be read is left out (a damaged repository is
    reported by its scan, not here)."""
    import git

    try:
        with git.Repo(git_dir, expand_vars=False) as repo:
            try:
                branch = repo.head.reference.name
            except (TypeError, ValueError):  # detached, or HEAD names nothing
                branch = ""
            dates = []
            for head in repo.heads:
                try:
                    dates.append(head.commit.committed_datetime)
                except (ValueError, git.GitError):
                    continue  # a branch naming a missing or broken commit
            return Facts(default_branch=branch, branches=len(repo.heads),
                         tags=len(repo.tags),
                         last_commit=max(dates).isoformat() if dates else "")
    except (git.GitError, ValueError, OSError):
        return Facts()


# A history scan's repository as gitpython opens it, one per git dir: its commands (and
# the persistent `cat-file` its object database keeps) run on that git dir. Closed when
# the scan ends (`close`): an audit scans many repositories in one process.
_opened: dict[Path, tuple[object, git.Git]] = {}
_opened_lock = _thread.allocate_lock()  # a scan asks for refs and HEAD in a thread


def opened(git_dir: Path) -> git.Git:
    """gitpython's command object for the repository at `git_dir` (found by `discover`),
    opened as a `git.Repo`; a repository gitpython will not open as one (damaged: HEAD
    names nothing valid) still gets a command object, so the scan reads what git can."""
    with _opened_lock:
        found = _opened.get(git_dir)
        if found is None:
            try:
                import git
            except ImportError as exc:  # its import runs `git version`
                if "git executable" not in str(exc):
                    raise
                raise KeyscanError(NO_GIT) from None
            try:
                repo: object = git.Repo(git_dir, expand_vars=False)  # a "$x" in a path
                command = repo.git  # type: ignore[attr-defined]
            except (git.InvalidGitRepositoryError, git.NoSuchPathError, OSError,
                    ValueError):  # WorkTreeRepositoryUnsupported is an InvalidGit... too
                repo, command = None, git.Git(git_dir)
            command.set_persistent_git_options(git_dir=str(git_dir))
            found = _opened[git_dir] = (repo, command)
        return found[1]


def close(git_dir: Path) -> None:
    """Close what `opened` opened for `git_dir` (stops its persistent `cat-file`s)."""
    with _opened_lock:
        found = _opened.pop(git_dir, None)
    if found is not None:
        repo, command = found
        if repo is not None:
            repo.close()  # type: ignore[attr-defined]
        else:
            command.clear_cache()


def ref_rows(git_dir: Path) -> list[tuple[str, str, str]]:
    """Every ref's name and the object it names (and the ref a symbolic ref names), as
    gitpython's `for-each-ref` lists them: a listing that reads no object (one naming a
    missing object does not make git give up on the rest, as asking for types would).
    Not gitpython's `Repo.refs`: it reads ref files itself (no reftable) and scans
    packed-refs once per ref (12.7 s for 5,000 tags, against 8 ms)."""
    _, out, _ = opened(git_dir).for_each_ref(
        "--format=%(objectname) %(symref) %(refname)", with_extended_output=True,
        with_exceptions=False, stdout_as_string=False)
    rows = [line.split(" ", 2) for line in
            bytes(out).decode("utf-8", "surrogateescape").splitlines()]
    return [(row[0], row[1], row[2]) for row in rows if len(row) == 3]


def head_of(git_dir: Path) -> tuple[str, str]:
    """HEAD's commit ("" when unborn) and the branch it is on ("HEAD" when detached or
    unborn), asked through gitpython in one `rev-parse` (any ref storage git has)."""
    status, out, _ = opened(git_dir).rev_parse(
        "HEAD", "--symbolic-full-name", "HEAD", with_extended_output=True,
        with_exceptions=False, stdout_as_string=False)
    lines = bytes(out).decode("utf-8", "surrogateescape").splitlines()
    if status != 0 or len(lines) != 2:
        return "", "HEAD"
    return lines[0], lines[1] or "HEAD"


def read_small(git_dir: Path, shas: Sequence[str], limit: int
               ) -> dict[str, tuple[str, bytes]]:
    """The type and bytes of each of `shas` (commits and tags a report names) read
    through gitpython's persistent `cat-file`; one missing from the store, or over
    `limit` bytes (no commit or tag anyone wrote), is left out."""
    command = opened(git_dir)
    out: dict[str, tuple[str, bytes]] = {}
    with _opened_lock:  # one question at a time on the persistent pipes
        for sha in shas:
            try:
                _, kind, size, stream = command.stream_object_data(sha)
                if size <= limit:  # gitpython gives the type as bytes, typed as str
                    out[sha] = (os.fsdecode(kind), stream.read())
                else:
                    while stream.read(1 << 20):  # passed over: the pipe read to its end
                        pass
            except (ValueError, OSError):  # missing, or a corrupt one stopped git
                command.clear_cache()  # the next question starts a fresh `cat-file`
    return out


def commit_fields(git_dir: Path, sha: str) -> tuple[bytes, bytes, str] | None:
    """A commit's author and committer ident lines (UTF-8) and message as gitpython's
    lenient parser reads them: for ident lines keyscan's own does not read (malformed).
    gitpython ignores an `encoding` header (recent.parse_commit decodes those). None
    when gitpython cannot read it either."""
    with _opened_lock:
        repo = _opened.get(git_dir, (None, None))[0]
        if repo is None:
            return None
        try:
            commit = repo.commit(sha)  # type: ignore[attr-defined]
            return (_ident_line(commit.author, commit.authored_date, commit.author_tz_offset),
                    _ident_line(commit.committer, commit.committed_date,
                                commit.committer_tz_offset),
                    str(commit.message))
        except Exception:  # whatever gitpython fails on: the commit is left unparsed
            return None


def _ident_line(actor: object, when: int, west: int) -> bytes:
    """A git ident line from gitpython's parsed fields (`west`: seconds west of UTC)."""
    sign = "-" if west > 0 else "+"
    hours, minutes = divmod(abs(west) // 60, 60)
    name = getattr(actor, "name", "") or ""
    email = getattr(actor, "email", "") or ""
    return f"{name} <{email}> {when} {sign}{hours:02d}{minutes:02d}".encode()


def fsdecode(path: bytes) -> str:
    """A git path as str; bytes that are not UTF-8 survive as surrogate escapes."""
    return os.fsdecode(path) if os.name != "nt" else path.decode("utf-8", "replace")
