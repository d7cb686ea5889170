"""Redaction: the one place a Secret is unwrapped for output."""

from __future__ import annotations

from keyscan.model import SHOWN, Secret

__all__ = ["SHOWN", "display_path", "show"]


def show(value: Secret | None, reveal: bool) -> str | None:
    if value is None:
        return None
    if reveal:
        return value.reveal()
    return f"{value.prefix()}…({len(value)} chars, redacted)"


def display_path(path: str) -> str:
    """A path safe for one terminal line: control and non-UTF-8 bytes escaped."""
    raw = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw)
