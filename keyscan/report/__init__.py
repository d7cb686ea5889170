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
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise KeyscanError(f"cannot write report {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode unless changed
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
