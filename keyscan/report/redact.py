"""Redaction and escaping: the one place a Secret is unwrapped for output, and the one
place text from the repository is made safe for a terminal."""

from __future__ import annotations

from keyscan.model import SHOWN, Secret

__all__ = ["SHOWN", "printable", "quoted", "show", "without_userinfo"]


def show(value: Secret | None, reveal: bool) -> str | None:
    if value is None:
        return None
    if reveal:
        return value.reveal()
    return f"{value.prefix()}…({len(value)} chars, redacted)"


def quoted(value: object) -> str:
    """A value a user typed (a setting, an ignore-file line) quoted back in an error:
    a credential pasted in the wrong place is not printed whole (its first 4
    characters, as reports show it)."""
    from keyscan.attribute import masked_subject

    return printable(masked_subject(repr(value)))


def printable(text: str) -> str:
    """Text from a repository (a path, an author, a subject, a ref or tag name) safe
    for one terminal line: control characters and non-UTF-8 bytes escaped (`\\x1b`,
    `\\xff`), so no committer can move the cursor, clear or retitle the screen."""
    if text.isprintable():
        return text
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw)


def without_userinfo(message: str) -> str:
    """`message` (git's own wording too) with the credentials of any URL in it masked:
    `https://user:token@host/...` -> `https://***@host/...`."""
    import re

    return re.sub(r"(://)[^/@\s]+@", r"\1***@", message)
