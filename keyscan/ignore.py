"""`.keyscanignore` at the repository root: findings to stop reporting, by fingerprint.

One fingerprint per line (as `keyscan scan` prints it), an optional reason after it;
blank lines and lines starting with `#` are comments:

    # test fixture, key deleted in IAM on 2024-03-02
    36abf5c1f2ba0e69e663  revoked, kept in the history of docs/setup.md

Ignored findings leave the report and the exit code; the summary counts them.
"""

from __future__ import annotations

from pathlib import Path

from keyscan.errors import KeyscanError
from keyscan.lazy import lazy_pattern
from keyscan.model import ScanResult
from keyscan.record import record
from keyscan.report.redact import quoted

FILE_NAME = ".keyscanignore"
_FINGERPRINT = lazy_pattern(r"^[0-9a-f]{20}$")


@record
class Ignored:
    fingerprint: str
    reason: str
    line: int


def read(path: Path) -> dict[str, Ignored]:
    """The entries of an ignore file by fingerprint; none when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark: Notepad's
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KeyscanError(f"cannot read {path}: {detail}") from None
    entries: dict[str, Ignored] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fingerprint, _, reason = line.partition(" ")
        fingerprint = fingerprint.split("\t")[0].lower()
        if not _FINGERPRINT.match(fingerprint):
            raise KeyscanError(f"{path}:{number}: {quoted(fingerprint[:40])} is not a fingerprint "
                               "(20 hex characters, as `keyscan scan` prints them)")
        entries[fingerprint] = Ignored(fingerprint, reason.strip().lstrip("#").strip(), number)
    return entries


def apply(result: ScanResult, entries: dict[str, Ignored]) -> None:
    """Drop the findings listed in the ignore file; count them in the summary."""
    if not entries:
        return
    kept = [f for f in result.findings if f.fingerprint not in entries]
    result.stats.ignored += len(result.findings) - len(kept)
    result.findings[:] = kept
