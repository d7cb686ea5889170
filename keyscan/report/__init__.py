"""The only layer that prints findings or writes report files.

Redaction happens here, once, on the way out (redact.py), so no other layer can
forget it. Report files are created private (0600).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from keyscan.errors import KeyscanError


def write_private(path: Path, text: str, inside: Path | None = None) -> None:
    """Write a report readable only by its owner, whatever the umask; `inside`: the work
    tree of the repository scanned (see `refuse_linked_folder`)."""
    fd = open_private(path, inside)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:  # a full disk, a quota, an I/O error: one line, exit 2
        raise KeyscanError(f"cannot write report {path}: {exc.strerror or exc}") from None


def open_private(path: Path, inside: Path | None = None) -> int:
    """A report file opened for writing, readable only by its owner: an existing file
    is made so too. Not a device or a pipe (`-o /dev/null`, `-o /dev/stdout`): those
    are written as they are, their modes left alone (a chmod of /dev/null as root
    would break every other program's use of it). A symbolic link is not followed to a
    file (see `_through_link`), nor a linked folder inside the work tree `inside`."""
    refuse_linked_folder("report", path, inside, REPORT_INSTEAD)
    try:
        fd = open_unlinked(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as exc:
        if not is_link(exc, path):
            raise KeyscanError(f"cannot write report {path}: {exc.strerror}") from None
        fd = _through_link(path)
    keep_private(fd)
    return fd


def open_unlinked(path: Path, flags: int) -> int:
    """`path` opened with `flags`, never through a symbolic link (O_NOFOLLOW), created
    readable only by its owner (0600) when new. An OSError as os.open raises it: see
    `is_link` and `link_refused` for the link."""
    return os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600)


def is_link(exc: OSError, path: Path) -> bool:
    """Whether `open_unlinked` failed because `path` is a symbolic link."""
    return exc.errno == errno.ELOOP and os.path.islink(path)


def link_refused(what: str, path: Path, why: str, link: Path | None = None) -> KeyscanError:
    """The error for a link keyscan will not write through, naming where it leads:
    `path` itself, or the folder `link` on the way to it."""
    try:
        target = f" (to {os.readlink(link or path)})"
    except OSError:
        target = ""
    said = "it" if link is None else str(link)
    return KeyscanError(f"cannot write {what} {path}: {said} is a symbolic link{target}, {why}")


REPORT_INSTEAD = "give a path outside the repository"


def refuse_linked_folder(what: str, path: Path, inside: Path | None, give: str) -> None:
    """Refuse to write `what` at `path` through a folder that is a symbolic link inside
    `inside`, the work tree of the repository scanned (None: none was). O_NOFOLLOW
    guards the last name only: a pull request committing `reports -> /etc/cron.d` had
    `-o reports/keyscan.json` (or `--audit-log logs/audit.jsonl`) create the file in
    the link's target, as root in many CI jobs. Links outside the work tree (a home
    folder, /tmp on some systems) are followed as always. `give`: what to do instead."""
    link = None if inside is None else linked_folder(path, inside)
    if link is not None:
        raise link_refused(what, path, f"a folder of the scanned repository {inside}, "
                           f"which keyscan never follows there: {give}, or remove the link",
                           link)


def linked_folder(path: Path, tree: Path) -> Path | None:
    """The first folder on the way to `path` that is a symbolic link at or below `tree`,
    or None. Walked as the system resolves it, name by name (`reports/../x` goes up
    from where `reports` leads), each link judged by where it sits, not by the name it
    was reached through."""
    tree = Path(os.path.realpath(tree))
    here = os.path.realpath("/" if path.is_absolute() else ".")
    for name in path.parts[1 if path.is_absolute() else 0 : -1]:
        if name == "..":
            here = os.path.dirname(here)
            continue
        entry = os.path.join(here, name)
        if os.path.islink(entry) and Path(entry).is_relative_to(tree):
            return Path(entry)
        here = os.path.realpath(entry)
    return None


def _through_link(path: Path) -> int:
    """The device or pipe a link given as the report file leads to (/dev/stdout,
    /dev/fd/N, a link to /dev/null), or the file standard output or error already
    writes to (`-o /dev/stdout > report.json`). Never another file: the README's CI
    recipes write `--output keyscan.sarif` into a checkout, and a link committed under
    that name would have had keyscan overwrite, and chmod, whatever it points to (or
    create the file a dangling link names)."""
    import stat

    refused = link_refused("report", path, "which a report never follows to a file: give "
                                           "the file's own path, or remove the link")
    try:
        fd = os.open(path, os.O_WRONLY)  # no O_CREAT: a dangling link makes nothing
    except OSError:
        raise refused from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return fd
    for std in (1, 2):
        try:
            out = os.fstat(std)
        except OSError:
            continue
        if (out.st_dev, out.st_ino) == (st.st_dev, st.st_ino):
            os.ftruncate(fd, 0)
            return fd
    os.close(fd)
    raise refused


def keep_private(fd: int) -> None:
    """An existing file keeps its old mode unless changed: make it the owner's only, if
    it is a regular file (never a device such as /dev/null, nor a pipe)."""
    import stat

    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchmod(fd, 0o600)
