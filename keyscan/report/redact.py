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
    `https://user:token@host/...` -> `https://***@host/...`, and the value of a query
    parameter named like a token (`?access_token=...`) -> `***`."""
    import re

    def masked(url: re.Match[str]) -> str:
        scheme, rest = url[1], url[2]
        end = userinfo_end(rest)
        return masked_query(f"{scheme}***{rest[end:]}" if end >= 0 else url[0])

    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"<>]+)", masked, message)


def userinfo_end(rest: str) -> int:
    """Where a URL's credentials end in `rest` (the URL after `scheme://`): at the last
    "@" before the first "/", as git reads them; when the text before that "/" holds a
    ":" that starts no port number (a password with an unencoded "/"), at the last "@"
    of the URL. -1: no credentials."""
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        return authority.rfind("@")
    if ":" in authority and not authority.rsplit(":", 1)[1].isdigit():
        return rest.rfind("@")
    return -1


def masked_query(url: str) -> str:
    """`url` with the values of query parameters named like credentials masked
    (`?access_token=`, `private_token`, `password`, `sig`...)."""
    import re

    return re.sub(r"(?i)([?&;][\w.-]*(?:token|key|secret|passw|pwd|auth|sig|credential)"
                  r"[\w.-]*=)[^&#;]+", r"\1***", url)
