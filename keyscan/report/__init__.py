"""The only layer that prints findings or writes report files.

Redaction happens here, once, on the way out (redact.py), so no other layer can
forget it. Report files are created private (0600).
"""

from __future__ import annotations

import os
from pathlib import Path

from keyscan.errors import KeyscanError


def write_private(path: Path, text: str) -> None:
    """Write a report readable only by its owner, whatever the umask."""
    fd = open_private(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:  # a full disk, a quota, an I/O error: one line, exit 2
        raise KeyscanError(f"cannot write report {path}: {exc.strerror or exc}") from None


def open_private(path: Path) -> int:
    """A report file opened for writing, readable only by its owner: an existing file
    is made so too. Not a device or a pipe (`-o /dev/null`, `-o /dev/stdout`): those
    are written as they are, their modes left alone (a chmod of /dev/null as root
    would break every other program's use of it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise KeyscanError(f"cannot write report {path}: {exc.strerror}") from None
    keep_private(fd)
    return fd


def keep_private(fd: int) -> None:
    """An existing file keeps its old mode unless changed: make it the owner's only, if
    it is a regular file (never a device such as /dev/null, nor a pipe)."""
    import stat

    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchmod(fd, 0o600)
