"""The single error path: one clear line for the user, a traceback only with --debug."""

from __future__ import annotations


class KeyscanError(Exception):
    """An error the user can act on. The message says what happened and what to do."""


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan that can still report what it read (a history scan)."""

    def __init__(self, partial: object) -> None:
        super().__init__("interrupted")
        self.partial = partial  # the ScanResult so far
