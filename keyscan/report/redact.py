"""Redaction: the one place a Secret is unwrapped for output."""

from __future__ import annotations

from keyscan.model import Secret

SHOWN = 4  # never more than this many characters of a secret


def show(value: Secret | None, reveal: bool) -> str | None:
    if value is None:
        return None
    raw = value.reveal()
    if reveal:
        return raw
    return f"{raw[: min(SHOWN, len(raw) // 4)]}…({len(raw)} chars, redacted)"


def display_path(path: str) -> str:
    """A path safe for one terminal line: control and non-UTF-8 bytes escaped."""
    raw = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw)
