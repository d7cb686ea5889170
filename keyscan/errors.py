"""The single error path: one clear line for the user, a traceback only with --debug."""

from __future__ import annotations


class KeyscanError(Exception):
    """An error the user can act on. The message says what happened and what to do."""


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan that can still report what it read (a history scan)."""

    def __init__(self, partial: object) -> None:
        super().__init__("interrupted")
        self.partial = partial  # the ScanResult so far


# Exit codes, the same for every command.
EXIT_CLEAN = 0
EXIT_LEAKS = 1  # the default; --exit-code / `exit_code:` choose another
EXIT_ERROR = 2  # usage or runtime error
EXIT_AWS_FAILED = 3  # an AWS check or action you asked for failed
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what shells report for Ctrl-C
_RESERVED = {EXIT_ERROR: "a usage or runtime error", EXIT_AWS_FAILED: "an AWS action failed",
             EXIT_INTERRUPTED: "interrupted"}


def leak_exit_code_problem(value: int) -> str | None:
    """Why `value` cannot be the exit code for leaks found, or None when it can: a code
    keyscan gives another meaning would hide a leak from CI, or fake an error."""
    if not 0 <= value <= 255:
        return f"{value} is not an exit code (0 to 255)"
    if value in _RESERVED:
        return (f"{value} already means {_RESERVED[value]!r}: choose another "
                f"(0 to 255 but {', '.join(map(str, sorted(_RESERVED)))})")
    return None
