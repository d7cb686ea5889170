"""Files as they are now: what git would commit in a repository, every file in a folder."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from keyscan import gitrepo
from keyscan.model import Location, Skipped
from keyscan.sources import Content, Unit


def files(target: Path, follow_symlinks: bool = False) -> tuple[Path, list[bytes]]:
    """(base folder, relative paths) to scan for `target`: a file, a folder or a repository.
    Inside a repository the paths are relative to its root, whatever part of it is
    scanned, as --staged and --history give them: the settings' allow_paths, the
    .keyscanignore and baseline fingerprints name them so."""
    repo = gitrepo.discover(target)
    root = repo.root if repo is not None and not repo.bare else None
    inside = os.fsencode(os.path.relpath(os.path.realpath(target), os.path.realpath(root))) \
        if root is not None else b""
    up = os.fsencode(os.pardir)  # `..cache` is a folder in the repository, `../x` is not
    if inside == up or inside.startswith(up + os.fsencode(os.sep)):
        root, inside = None, b""  # a link out of the repository: scanned where it leads
    if target.is_file() and not target.is_symlink():
        return (root, [inside]) if root is not None else (target.parent,
                                                          [os.fsencode(target.name)])
    if repo is not None:
        listed, unopened = gitrepo.worktree_listing(target)
        paths = sorted(listed) + unopened  # read() reports the unopened folders
        if root is None or inside == b".":
            return target, paths
        return root, [os.path.join(inside, p) for p in paths]
    return target, sorted(_walk(target, follow_symlinks))


def _walk(top: Path, follow_symlinks: bool) -> Iterator[bytes]:
    """Every path under `top`, relative to it, except inside `.git` folders; the folders that
    could not be listed, and (unfollowed) links to folders, as paths too: read() reports
    them, nothing is skipped silently. A stack, not recursion: os.walk recursed, and a
    tree some 1000 folders deep raised RecursionError."""
    base = os.fsencode(top)
    seen: set[tuple[int, int]] = set()
    stack = [b""]
    while stack:
        rel = stack.pop()
        folder = os.path.join(base, rel) if rel else base
        try:
            if follow_symlinks:  # a symlink loop must not walk forever
                st = os.stat(folder)
                if (st.st_dev, st.st_ino) in seen:
                    yield rel  # read() says why it was not walked
                    continue
                seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            yield rel or os.fsencode(os.curdir)  # read() reports the unopened folder
            continue
        for entry in entries:
            path = os.path.join(rel, entry.name) if rel else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=follow_symlinks)
            except OSError:  # a symlink loop, a name gone since: read() says which
                is_dir = False
            if not is_dir:
                yield path  # a file, a link not followed, a FIFO...: read() sorts them
            elif entry.name != b".git":
                stack.append(path)


def read(base: Path, paths: Iterable[bytes], max_size: int, follow_symlinks: bool = False
         ) -> Iterator[Unit]:
    """Each file's bytes, or a Skipped saying why not. Never raises for one bad file."""
    base_b = os.fsencode(base)
    for rel in paths:
        full = os.path.join(base_b, rel)
        shown = gitrepo.fsdecode(rel)
        try:
            st = os.stat(full) if follow_symlinks else os.lstat(full)
        except FileNotFoundError:
            if follow_symlinks and os.path.islink(full):
                yield Skipped(shown, "symlink to nothing (its target does not exist)")
            continue  # tracked but deleted in the work tree: nothing there to leak
        except OSError as exc:
            yield Skipped(shown, _why(exc))
            continue
        if stat.S_ISLNK(st.st_mode):
            yield Skipped(shown, "symlink not followed (use --follow-symlinks)")
            continue
        if stat.S_ISDIR(st.st_mode):
            yield Skipped(shown, _why_folder(full))
            continue
        if not stat.S_ISREG(st.st_mode):
            yield Skipped(shown, "not a regular file (FIFO, socket or device)")
            continue
        if st.st_size > max_size:
            yield Skipped(shown, f"larger than the size limit ({st.st_size} > {max_size} bytes;"
                                 " raise it with --max-file-size)")
            continue
        try:
            data = _read_file(full, st.st_size, max_size, follow_symlinks)
        except OSError as exc:
            swapped = exc.errno == errno.ELOOP and not follow_symlinks
            yield Skipped(shown, "replaced by a symlink while being scanned: not followed"
                          if swapped else _why(exc))
            continue
        if len(data) > max_size:  # grown since stat, or sized 0 by the system (/proc)
            yield Skipped(shown, f"larger than the size limit (over {max_size} bytes when "
                                 "read; raise it with --max-file-size)")
            continue
        yield Content(Location(path=shown), data)


def _read_file(full: bytes, size: int, max_size: int, follow_symlinks: bool = False) -> bytes:
    """The file's bytes to its end, up to max_size + 1 (more: over the limit). Sized from
    stat, so no buffer of max_size is allocated per file; but not cut there: a file in
    /proc or /sys says size 0 and holds more, and a file may grow since stat.
    Swapped for a link (not followed) or a FIFO since stat: ELOOP, or EAGAIN at once,
    not a read that hangs."""
    nofollow = 0 if follow_symlinks else os.O_NOFOLLOW
    fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | nofollow)
    try:
        want = max_size + 1
        data = os.read(fd, min(size, max_size) + 1)
        while len(data) < want:  # the end (one more read, as short as can be), or more
            more = os.read(fd, min(want - len(data), 1 << 20))
            if not more:
                return data  # no copy of the usual file's bytes
            data += more
        return data
    finally:
        os.close(fd)


def _why_folder(full: bytes) -> str:
    """Folders reach read() only when they could not be listed, or hold another repository."""
    if os.path.islink(full):
        return ("symlink to a folder not walked here (a loop, or a link git keeps as a "
                "link): scan its target on its own")
    if not os.access(full, os.R_OK | os.X_OK):
        return "unreadable folder: permission denied"
    if os.path.lexists(os.path.join(full, b".git")):
        return "another git repository (submodule or nested): scan it on its own"
    return "folder not listed"


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "unreadable: permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return f"unreadable: {exc.strerror or exc}"
