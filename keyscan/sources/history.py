"""Objects of a repository's history streamed from git, and what the history holds.

Objects come from a `git cat-file --batch` process fed with object ids, with no
process per object and never the history in memory. Full scans read packed objects
in-process instead (sources/packs.py); this path reads the rest (loose objects,
alternates, incremental and ranged scans, anything a pack entry cannot give). A missing
or corrupt object is reported and the stream resumes after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Generator, Iterable, Mapping, Sequence
from pathlib import Path

from keyscan.errors import KeyscanError
from keyscan.gitrepo import feed, head_of, ref_rows, run, tree_walk
from keyscan.lazy import LazyModule
from keyscan.record import record

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    import subprocess
    import threading

    from keyscan.cache import IdSet
else:  # run git: imported only once git runs (keyscan/lazy.py)
    subprocess = LazyModule("subprocess")
    threading = LazyModule("threading")

# below this many bytes to read, worker start-up costs more than both cores save
PARALLEL_BYTES = 64 * 1024 * 1024

_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux: a bigger pipe means fewer wake-ups per MB


@record
class ObjectRef:
    sha: str
    kind: str  # blob | commit | tag | tree
    size: int


@record
class GitObject:
    sha: str
    kind: str
    data: bytes | None  # None: missing or unreadable


def _git(git_dir: Path, *args: str) -> list[str]:
    return ["git", f"--git-dir={git_dir}", *args]


def list_all_objects(git_dir: Path) -> list[ObjectRef]:
    """Every object in the store (reachable or not), in pack order for fast reading."""
    proc = subprocess.run(
        _git(git_dir, "cat-file", "--batch-all-objects", "--unordered",
             "--batch-check=%(objectname) %(objecttype) %(objectsize)"),
        capture_output=True, check=False,
    )
    if proc.returncode != 0:  # git gave up part-way (a damaged pack): the list is not whole
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise KeyscanError(f"git could not list the objects in {git_dir} "
                           f"({detail[-1] if detail else 'unknown error'})")
    return _parse_check(proc.stdout)


def describe_objects(git_dir: Path, shas: Sequence[str]) -> list[ObjectRef]:
    """Type and size of given objects; missing ones come back with kind 'missing', and
    loose ones git cannot read (their file is there) with kind 'corrupt'."""
    if not shas:
        return []
    out = []
    if is_partial_clone(git_dir):  # git would fetch what it lacks: it is asked about the rest
        there = _stored(git_dir)
        out += [ObjectRef(sha, "missing", 0) for sha in shas if bytes.fromhex(sha) not in there]
        shas = [sha for sha in shas if bytes.fromhex(sha) in there]
    proc = subprocess.run(
        _git(git_dir, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"),
        input="".join(f"{s}\n" for s in shas).encode(), capture_output=True, check=False,
    )
    objects: Path | None = None
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "missing":
            objects = objects or objects_dir(git_dir)
            loose = objects / parts[0][:2] / parts[0][2:]
            kind = "corrupt" if loose.exists() else "missing"
            out.append(ObjectRef(parts[0], kind, 0))
        elif len(parts) == 3:
            out.append(ObjectRef(parts[0], parts[1], int(parts[2])))
    return out


def _stored(git_dir: Path) -> set[bytes]:
    """The ids the store holds, read from its pack indexes and object folders (its
    alternates' too), without git: in a partial clone, git fetches any object it is
    asked about and lacks."""
    from keyscan.sources import packs

    folders = [objects_dir(git_dir)]
    with contextlib.suppress(OSError):
        alternates = (folders[0] / "info" / "alternates").read_text("utf-8", "replace")
        folders += [folders[0] / line.strip() for line in alternates.splitlines()
                    if line.strip() and not line.startswith("#")]
    ids: set[bytes] = set()
    for folder in folders:
        ids.update(bytes.fromhex(sha) for sha in loose_objects(folder))
        for idx in packs.pack_indexes(folder):
            ids.update(packs.index_ids(idx))
    return ids


def packed_since(objects: Path, since_ns: int) -> IdSet:
    """The ids of the objects in the packs written since `since_ns` (their index's
    time): a stat per pack, and the pack reader imported only when there is a new one."""
    from keyscan.cache import IdSet

    try:
        new = [e.path for e in os.scandir(objects / "pack")
               if e.name.endswith(".idx") and e.stat().st_mtime_ns >= since_ns]
    except OSError:
        return IdSet()
    if not new:
        return IdSet()
    from keyscan.sources import packs

    return IdSet.merged(packs.index_ids(Path(path)) for path in new)


def loose_objects(objects: Path, since_ns: int = 0) -> list[str]:
    """Ids of the objects stored one file each (not yet packed), listed by bare system
    calls (a re-scan lists them: no pathlib walk, no import of the pack reader); with
    `since_ns`, only in the folders changed since then (a stat each, not a listing)."""
    out = []
    try:
        folders = [e.name for e in os.scandir(objects)
                   if len(e.name) == 2 and not e.name.strip("0123456789abcdef")
                   and (not since_ns or e.stat().st_mtime_ns >= since_ns)]
    except OSError:
        return []
    for prefix in folders:
        try:
            names = os.listdir(os.path.join(objects, prefix))
        except OSError:
            continue
        out += [prefix + name for name in names if len(name) == 38]
    return out


def objects_dir(git_dir: Path) -> Path:
    """Where the objects live; a linked worktree shares its main repository's."""
    common = git_dir / "commondir"
    if common.is_file():
        target = common.read_text(encoding="utf-8", errors="replace").strip()
        return (git_dir / target).resolve() / "objects"
    return git_dir / "objects"


_KINDS = {b"blob": "blob", b"commit": "commit", b"tag": "tag", b"tree": "tree"}


def _parse_check(raw: bytes) -> list[ObjectRef]:
    """Objects that can hold content to scan. Trees are left out (about half of all
    objects; keyscan never reads them), which keeps the list's memory small."""
    out = []
    for line in raw.split(b"\n"):
        parts = line.split(b" ")
        if len(parts) == 3:
            if parts[1] != b"tree":
                kind = _KINDS.get(parts[1]) or parts[1].decode()
                out.append(ObjectRef(parts[0].decode(), kind, int(parts[2])))
        elif len(parts) == 2 and parts[1] == b"missing":
            # listed in a pack or folder, yet git cannot read its header: damaged
            out.append(ObjectRef(parts[0].decode(), "corrupt", 0))
    return out


def files_at_head(git_dir: Path, paths: Sequence[str]) -> dict[str, bytes]:
    """The content of those of `paths` that HEAD's tree holds as files (small files such
    as .gitmodules: each is read whole)."""
    proc = subprocess.run(_git(git_dir, "cat-file", "--batch"),
                          input="".join(f"HEAD:{p}\n" for p in paths).encode(),
                          capture_output=True, check=False)
    raw, pos, out = proc.stdout, 0, {}
    for path in paths:
        end = raw.find(b"\n", pos)
        if end == -1:
            break
        header = raw[pos:end].split(b" ")
        pos = end + 1
        if len(header) == 3 and header[2].isdigit():  # "<id> <type> <size>", then content
            size = int(header[2])
            if header[1] == b"blob":
                out[path] = raw[pos : pos + size]
            pos += size + 1
        # otherwise "<name> missing": no content follows
    return out


def _revisions(tips: Iterable[str], since: Iterable[str]) -> bytes:
    """`tips` and `since` (excluded) as git reads them with --stdin."""
    return ("".join(f"{t}\n" for t in tips) + "".join(f"^{s}\n" for s in since)).encode()


def _walk(git_dir: Path, args: Sequence[str], tips: Sequence[str], since: Sequence[str]
          ) -> bytes:
    """The output of the tree-walking git command `args` over `tips` less `since`;
    KeyscanError with git's last line when it fails."""
    proc = subprocess.run(tree_walk(git_dir, *args, "--stdin"), input=_revisions(tips, since),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise KeyscanError(f"git {args[0]} failed: "
                           f"{detail[-1] if detail else 'unknown error'}")
    return proc.stdout


def new_objects(git_dir: Path, tips: Sequence[str], since: Sequence[str],
                commits: dict[str, tuple[int, list[str]]] | None = None) -> list[str]:
    """Objects reachable from `tips` but not from `since`: what those commits added.
    `commits`: filled with each new commit's committer timestamp and parents, and those
    of the old commits they grew from (the walk's boundary)."""
    if commits is None:
        out = _walk(git_dir, ["rev-list", "--objects", "--missing=print",
                              "--no-object-names"], tips, since)
        return [line.lstrip("?") for line in out.decode("ascii").split()]
    out = _walk(git_dir, ["rev-list", "--objects", "--missing=print", "--no-object-names",
                          "--timestamp", "--parents", "--boundary"], tips, since)
    found = []
    for line in out.decode("ascii").splitlines():
        fields = line.split()
        if len(fields) == 1:  # not a commit: its id alone
            found.append(fields[0].lstrip("?"))
        elif len(fields) > 1:  # a commit: its timestamp, id ("-": boundary), parents
            sha = fields[1].lstrip("-")
            commits[sha] = (int(fields[0]), fields[2:])
            if sha == fields[1]:
                found.append(sha)
    return found


def changed_blobs(git_dir: Path, tips: Sequence[str], since: Sequence[str]) -> list[str]:
    """The blobs the commits reachable from `tips` and not from `since` put at a path:
    new objects, and old ones copied or moved to a new path (which an object-level
    difference would miss). A merge counts for what it made itself (what differs from
    all its parents: a conflict's resolution), not for what it brought from its other
    side."""
    out = _walk(git_dir, ["log", "--raw", "-c", "--no-renames", "--no-abbrev", "-z",
                          "--format="], tips, since)
    found: dict[str, None] = {}
    tokens = iter(out.split(b"\0"))
    for token in tokens:
        meta = token.lstrip(b"\n").split()
        if not meta or not meta[0].startswith(b":"):
            continue
        next(tokens, None)  # its path
        # modes (one per parent, then the result's), ids the same way, then the status
        blob, mode = meta[-2].decode(), meta[(len(meta) - 1) // 2 - 1]
        if blob.strip("0") and mode != b"160000":  # not a deletion, nor a submodule
            found[blob] = None
    return list(found)


def dangling_commits(git_dir: Path, reflog: bool) -> list[str]:
    """The commits in the store that no ref reaches (nor, with `reflog`, a reflog): an
    amended or reset-away commit, a dropped stash. One connectivity walk (`git fsck
    --connectivity-only`: no object is checked or read)."""
    args = ["fsck", "--connectivity-only", "--unreachable", "--no-progress"]
    proc = subprocess.run(_git(git_dir, *args, *(() if reflog else ("--no-reflogs",))),
                          capture_output=True, check=False)
    return [line.split()[2] for line in proc.stdout.decode("ascii", "replace").splitlines()
            if line.startswith("unreachable commit ") and len(line.split()) == 3]


def unreachable(git_dir: Path, commits: Collection[str], tips: Sequence[str]) -> set[str]:
    """Those of `commits` that none of `tips` reaches, or that are gone from the store;
    none when git cannot tell (a damaged repository: nothing is dropped on a guess).

    `rev-list COMMITS ^TIPS` stops walking the excluded side by commit date, so with a
    clock set wrong it lists commits the tips do reach (never misses one they do not):
    what it lists of `commits` is checked against every commit the tips reach, one walk
    paid only then (a branch deleted, history rewritten)."""
    if not commits:
        return set()
    proc = subprocess.run(_git(git_dir, "rev-list", "--ignore-missing", "--stdin"),
                          input=_revisions(commits, tips), capture_output=True, check=False)
    if proc.returncode != 0:
        return set()
    listed = set(proc.stdout.decode("ascii", "replace").split())
    there = set(existing(git_dir, commits))
    suspects = {c for c in commits if c in listed and c in there}
    if suspects:
        walk = subprocess.run(_git(git_dir, "rev-list", "--ignore-missing", "--stdin"),
                              input=_revisions(tips, ()), capture_output=True, check=False)
        if walk.returncode != 0:
            return set()
        suspects.difference_update(walk.stdout.decode("ascii", "replace").split())
    return suspects | {c for c in commits if c not in there}


def range_ends(spec: str) -> tuple[str, str, bool]:
    """A `--range` as git reads a revision range: `A..B`, `A...B` (symmetric: the commits
    on either side since they forked) or `A` alone (`A..HEAD`); an empty side is HEAD.
    The base, the head, and whether the range is symmetric."""
    for dots, symmetric in (("...", True), ("..", False)):
        base, found, head = spec.partition(dots)
        if found:
            return base or "HEAD", head or "HEAD", symmetric
    return spec, "HEAD", False


def merge_bases(git_dir: Path, a: str, b: str) -> list[str]:
    """The best common ancestors of two commits; none for unrelated histories."""
    return run(git_dir, ["merge-base", "--all", a, b], check=False).decode().split()


class Reachability:
    """Walks all refs in a background thread: reachable object ids and missing ones.

    Runs while the scan reads objects, so its cost overlaps with the scan's.
    """

    def __init__(self, git_dir: Path, refs: Sequence[str]) -> None:
        self.reachable: set[bytes] = set()
        self.missing: list[str] = []
        self.error = ""
        self._thread = threading.Thread(target=self._walk, args=(git_dir, refs), daemon=True)
        self._thread.start()

    def _walk(self, git_dir: Path, refs: Sequence[str]) -> None:
        proc = subprocess.Popen(
            tree_walk(git_dir, "rev-list", "--objects", "--missing=print",
                      "--no-object-names", "--stdin"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feed(proc.stdin, "".join(f"{r}\n" for r in refs).encode())
        for line in proc.stdout:
            if line.startswith(b"?"):
                self.missing.append(line[1:].strip().decode())
            else:
                self.reachable.add(line.rstrip(b"\n"))  # 40 or 64 hex digits
        err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
        if proc.wait() != 0:
            self.error = err[-1] if err else "git rev-list failed"

    def wait(self) -> Reachability:
        self._thread.join()
        return self

    def __contains__(self, sha: str) -> bool:
        return sha.encode() in self.reachable


def read_objects(git_dir: Path, refs: Sequence[ObjectRef]
                 ) -> Generator[GitObject, None, None]:
    """Contents of `refs`, in order, through `cat-file --batch`; restarts after a bad object."""
    start = 0
    while start < len(refs):
        done = yield from _read_batch(git_dir, refs, start)
        if done >= len(refs):
            return
        bad = refs[done]
        yield GitObject(bad.sha, "corrupt", None)
        start = done + 1


def _read_batch(git_dir: Path, refs: Sequence[ObjectRef], start: int
                ) -> Generator[GitObject, None, int]:
    proc = subprocess.Popen(
        _git(git_dir, "cat-file", "--batch"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        bufsize=_PIPE_SIZE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    for pipe in (proc.stdout, proc.stdin):
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
    request = "".join(f"{r.sha}\n" for r in refs[start:]).encode()
    threading.Thread(target=feed, args=(proc.stdin, request), daemon=True).start()
    out = proc.stdout
    index = start
    try:
        while index < len(refs):
            header = out.readline()
            if not header:
                break  # git died on a corrupt object: the caller resumes after it
            parts = header.split()
            if len(parts) == 2 and parts[1] == b"missing":
                yield GitObject(parts[0].decode(), "missing", None)
                index += 1
                continue
            size = int(parts[2])
            data = out.read(size)
            out.read(1)
            if len(data) < size:
                break
            yield GitObject(parts[0].decode(), parts[1].decode(), data)
            index += 1
    finally:
        out.close()
        proc.kill()
        proc.wait()
    return index


def message_of(kind: str, data: bytes) -> bytes:
    """The message of a commit or annotated tag (what follows the header's blank line)."""
    cut = data.find(b"\n\n")
    if cut == -1:
        return b""
    body = data[cut + 2 :]
    if kind == "tag":
        sig = body.find(b"-----BEGIN PGP SIGNATURE-----")
        if sig != -1:
            body = body[:sig]
    return body


@record
class Ref:
    name: str
    target: str  # the object the ref names (an annotated tag: the tag object)
    commit: str  # what it comes down to (annotated tags peeled): a commit, mostly
    kind: str = "commit"  # of `commit`: also tree or blob (rare), or missing from the store
    symref: str = ""  # the ref a symbolic ref names (refs/remotes/origin/HEAD)


RefRow = tuple[str, str, str]  # the object a ref names, the ref a symbolic ref names, name


def list_refs(git_dir: Path) -> list[Ref]:
    """Every ref: branches, tags, remotes, stash; each with what it comes down to, every
    annotated tag of a chain peeled. A ref naming an object missing from the store comes
    with kind "missing"."""
    return typed_refs(git_dir, ref_rows(git_dir))


def typed_refs(git_dir: Path, rows: Sequence[RefRow],
               known: Mapping[str, tuple[str, str]] | None = None) -> list[Ref]:
    """`rows` with what each ref comes down to and its type. `known`: object -> (what it
    comes down to, its type), from the last scan (ids never change what they name); git
    peels the rest in one `cat-file`."""
    known = known or {}
    asked = list(dict.fromkeys(target for target, _, _ in rows if target not in known))
    peeled = {**known, **dict(zip(asked, _peeled(git_dir, asked), strict=True))}
    return [Ref(name, target, *peeled[target], symref) for target, symref, name in rows]


def _peeled(git_dir: Path, objects: Sequence[str]) -> list[tuple[str, str]]:
    """What each object comes down to once annotated tags are peeled, and its type."""
    if not objects:
        return []
    proc = subprocess.run(_git(git_dir, "cat-file", "--batch-check=%(objectname) %(objecttype)"),
                          input="".join(f"{o}^{{}}\n" for o in objects).encode(),
                          capture_output=True, check=False)
    lines = [line.split(" ") for line in proc.stdout.decode("ascii", "replace").splitlines()]
    lines += [[]] * (len(objects) - len(lines))
    return [(line[0], line[1]) if len(line) == 2 and line[1] != "missing" else (sha, "missing")
            for sha, line in zip(objects, lines, strict=False)]


def default_branch(refs: list[Ref]) -> str:
    """The ref whose tip is 'HEAD of the default branch': the branch the remote names
    (origin/HEAD), as a local branch when there is one; HEAD itself in a bare
    repository or with no remote default."""
    names = {r.name: r for r in refs}
    origin = names.get("refs/remotes/origin/HEAD")
    remote = origin.symref if origin is not None else ""
    if not remote or remote not in names:
        return "HEAD"
    local = "refs/heads/" + remote.removeprefix("refs/remotes/origin/")
    return local if local in names else remote


def all_refs(git_dir: Path, reflog: bool = False, refs: list[Ref] | None = None,
             head: str | None = None) -> list[str]:
    """Every ref (branches, tags, remotes, stash) as object ids, HEAD, and with `reflog`
    the reflog's entries. `refs`: `list_refs()`, `head`: HEAD's commit, if known."""
    listed = refs if refs is not None else list_refs(git_dir)
    tips = list(dict.fromkeys(r.target for r in listed if r.kind != "missing"))
    if head is None:
        head = head_of(git_dir)[0]
    tips += [h for h in dict.fromkeys([head, *worktree_heads(git_dir)]) if h and h not in tips]
    if reflog:
        log = subprocess.run(_git(git_dir, "log", "-g", "--all", "--format=%H"),
                             capture_output=True, check=False)
        tips.extend(t for t in dict.fromkeys(log.stdout.decode().split()) if t not in tips)
    return tips


def worktree_heads(git_dir: Path) -> list[str]:
    """The commits the repository's other worktrees are on when detached there (a branch
    checked out there is a ref already): git counts them as reachable (`--all`, `gc`), so
    a key committed in a scratch worktree is in history. Read from their HEAD files."""
    common = objects_dir(git_dir).parent
    try:
        names = os.listdir(common / "worktrees")
    except OSError:
        names = []
    out = []
    here = os.path.realpath(git_dir)
    for folder in [common, *(common / "worktrees" / name for name in names)]:
        if os.path.realpath(folder) == here:
            continue
        try:
            text = (folder / "HEAD").read_bytes().strip().decode("ascii")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) in (40, 64) and not text.strip("0123456789abcdef"):
            out.append(text)
    return out


def is_partial_clone(git_dir: Path) -> bool:
    """A partial clone lacks objects by design: promisor packs or a partial-clone filter
    (read from the files: this is asked before attribution, on re-scans too)."""
    packs = git_dir / "objects" / "pack"
    if packs.is_dir() and any(packs.glob("*.promisor")):
        return True
    try:
        config = (git_dir / "config").read_bytes().lower()
    except OSError:
        return False
    return b"partialclone" in config.replace(b" ", b"").replace(b"\t", b"")


def promisor_remote(git_dir: Path) -> str:
    """The remote a partial clone fetches what it lacks from ("" when none is named)."""
    proc = subprocess.run(_git(git_dir, "config", "--get", "extensions.partialclone"),
                          capture_output=True, check=False)
    name = proc.stdout.decode("utf-8", "surrogateescape").strip()
    if name:
        return name
    proc = subprocess.run(_git(git_dir, "config", "--bool", "--get-regexp",
                               r"^remote\..*\.promisor$"), capture_output=True, check=False)
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        key, _, value = line.rpartition(" ")
        if value == "true":
            return key[len("remote."):-len(".promisor")]
    return ""


def fetch_missing(git_dir: Path, shas: Sequence[str]) -> str:
    """Fetch `shas` into a partial clone in one request to its promisor remote, the way
    git fetches what one of its own commands lacks (promisor-remote.c): "" when git
    fetched them, else why not. Never prompts for credentials."""
    remote = promisor_remote(git_dir)
    if not remote:
        return "the clone names no promisor remote to fetch them from"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = subprocess.run(
            _git(git_dir, "-c", "fetch.negotiationAlgorithm=noop", "fetch", remote,
                 "--no-tags", "--no-write-fetch-head", "--recurse-submodules=no",
                 "--filter=blob:none", "--stdin"),
            input="".join(f"{sha}\n" for sha in shas).encode(), capture_output=True,
            env=env, check=False, timeout=_FETCH_SECONDS)
    except subprocess.TimeoutExpired:
        return f"fetching from {remote} took over {_FETCH_SECONDS} s"
    if proc.returncode == 0:
        return ""
    from keyscan.report.redact import without_userinfo

    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    said = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines
    why = without_userinfo(said[0]) if said else "no detail"
    return f"fetching from {remote} failed: {why}"


_FETCH_SECONDS = 600


def is_shallow(git_dir: Path) -> bool:
    return (git_dir / "shallow").exists()


def shallow_boundary(git_dir: Path) -> str:
    """The commits a shallow clone's history stops at (its `shallow` file, which a
    `git fetch --deepen` or `--unshallow` changes); "" for a whole clone."""
    try:
        return (git_dir / "shallow").read_text("ascii", "replace")
    except OSError:
        return ""


def existing(git_dir: Path, shas: Iterable[str]) -> list[str]:
    return [r.sha for r in describe_objects(git_dir, list(shas)) if r.kind != "missing"]
