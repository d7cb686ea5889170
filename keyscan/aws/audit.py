"""The audit log: one JSON line per change keyscan makes (or fails to make) in IAM.

Fields: time (UTC), action, key_id, user, account, previous_status, new_status,
result (ok | failed), error, operator_arn, tool. Never a secret: key IDs are
identifiers that AWS itself logs in CloudTrail. Created private (0600).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from keyscan import __version__
from keyscan.errors import KeyscanError

OK = "ok"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Entry:
    action: str  # deactivate | reactivate | quarantine | unquarantine
    key_id: str
    user: str
    account: str
    previous_status: str
    new_status: str
    result: str
    operator_arn: str
    error: str = ""
    time: str = ""
    tool: str = ""


def default_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "keyscan" / "audit.jsonl"


class Unlogged(KeyscanError):
    """The audit log did not take `entry`: what was done (or failed) is told nowhere else."""

    def __init__(self, reason: str, entry: Entry) -> None:
        super().__init__(reason)
        self.entry = entry


def _append(fd: int, line: bytes) -> None:
    """`line` appended whole, or not at all: a write cut short (a full disk, a file size
    limit) is taken back, so the log never holds half a line that undo cannot read."""
    size = os.fstat(fd).st_size
    written = os.write(fd, line)
    if written != len(line):
        os.ftruncate(fd, size)
        raise OSError(errno.ENOSPC, "the line was cut short (disk full?)")


class AuditLog:
    """Appends entries; each line is written and flushed at once, so a crash loses none."""

    def __init__(self, path: Path, inside: Path | None = None) -> None:
        self.path = path
        self.inside = inside  # the work tree of the repository scanned, if any
        self._lock = threading.Lock()

    def record(self, entry: Entry) -> Entry:
        stamped = Entry(**{**asdict(entry),
                           "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "tool": f"keyscan {__version__}"})
        line = (json.dumps(asdict(stamped), sort_keys=True) + "\n").encode()
        with self._lock:
            try:
                fd = self._open()
            except KeyscanError as exc:  # it could be written when the run started
                raise Unlogged(str(exc), stamped) from None
            try:
                _append(fd, line)
            except OSError as exc:
                raise Unlogged(f"cannot write the audit log {self.path}: "
                               f"{_why_not(self.path, exc)}", stamped) from None
            finally:
                os.close(fd)
        return stamped

    def check(self) -> None:
        """Fail before any change when the log cannot be written: no change goes unaudited."""
        with self._lock:
            try:
                os.close(self._open())
            except KeyscanError as exc:
                raise KeyscanError(f"{exc}; nothing was changed in IAM") from None

    def _open(self) -> int:
        """The log opened for append: never through a symbolic link (one committed into a
        repository under the log's name would have keyscan append to the file it points
        to), nor through a linked folder inside the repository scanned (one committed
        as `logs -> /etc/cron.d`), never a pipe or device (O_NONBLOCK: a pipe nobody
        reads does not hang)."""
        from keyscan.report import (
            is_link,
            keep_private,
            link_refused,
            open_unlinked,
            refuse_linked_folder,
        )

        refuse_linked_folder("the audit log", self.path, self.inside,
                             "give a path outside the repository with --audit-log FILE")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = open_unlinked(self.path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        except OSError as exc:
            if is_link(exc, self.path):
                raise link_refused("the audit log", self.path, "which keyscan never "
                                   "follows: give the log's own path with --audit-log "
                                   "FILE, or remove the link") from None
            raise KeyscanError(f"cannot write the audit log {self.path}: "
                               f"{_why_not(self.path, exc)}; choose another with "
                               "--audit-log FILE") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise KeyscanError(f"cannot write the audit log {self.path}: "
                               f"{_NOT_REGULAR}; choose another with --audit-log FILE")
        keep_private(fd)
        return fd


_NOT_REGULAR = "it is not a regular file (a device, a pipe or a socket)"


def _why_not(path: Path, exc: OSError) -> str:
    """Why the log could not be opened: a pipe nobody reads or a socket (ENXIO) is
    named as what it is, not as 'No such device or address'."""
    try:
        regular = stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        regular = True  # gone, or unreadable: the system's own reason
    return _NOT_REGULAR if exc.errno == errno.ENXIO and not regular \
        else str(exc.strerror or exc)


def read(path: Path) -> Iterator[Entry]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KeyscanError(f"cannot read the audit log {path}: {exc.strerror}") from None
    fields = set(Entry.__dataclass_fields__)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            yield Entry(**{k: str(v) for k, v in data.items() if k in fields})
        except (ValueError, TypeError):
            raise KeyscanError(f"{path}:{number}: not a keyscan audit log line") from None
