"""Baselines: accept the leaks a repository already has, fail only on new ones.

`keyscan baseline PATH --output FILE` writes the current leaks — fingerprint, rule,
kind, path, key ID and location, never a secret — to FILE (mode 0600). A later
`keyscan scan --baseline FILE` reports only leaks whose fingerprint is not in it, and
lists the entries no longer found (stale: fixed, or the file moved). A fingerprint is
rule + path + a keyed hash of the value, so moving lines does not change it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from keyscan import __version__
from keyscan.errors import KeyscanError
from keyscan.lazy import lazy_pattern
from keyscan.model import BaselineCheck, BaselineEntry, Finding, ScanResult, Status

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

FORMAT_VERSION = 1
ALLOW = "keyscan:allow"  # the inline mark (keyscan.match): a baseline is no leak


def add_scan_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, metavar="FILE",
                        help="report only leaks not in FILE (made by `keyscan baseline`) and "
                             "list FILE's entries no longer found")


def entry(f: Finding) -> BaselineEntry:
    return BaselineEntry(fingerprint=f.fingerprint, rule=f.rule_id, kind=f.kind,
                         path=f.location.path, key_id=f.key_id, line=f.line, column=f.column,
                         commit=f.commit.sha if f.commit else "")


def entry_dict(e: BaselineEntry) -> dict[str, Any]:
    from keyscan.report.redact import printable

    return {"fingerprint": e.fingerprint, "rule": e.rule, "kind": e.kind,
            "path": printable(e.path), "key_id": e.key_id or None, "line": e.line,
            "column": e.column, "commit": e.commit or None}


def render(result: ScanResult) -> str:
    """The baseline file for a scan: its leaks, one line per fingerprint, sorted.

    One entry per line keeps diffs reviewable, and each line carries the inline
    `keyscan:allow` mark: the key IDs a committed baseline names are not new leaks.
    """
    entries = {f.fingerprint: entry(f) for f in result.findings if f.status is Status.LEAK}
    rows = [json.dumps({**entry_dict(entries[k]), "allow": ALLOW}) for k in sorted(entries)]
    head = json.dumps({"keyscan_baseline": FORMAT_VERSION,
                       "tool": {"name": "keyscan", "version": __version__},
                       "mode": result.mode})
    body = ",\n".join(f"    {row}" for row in rows)
    return f"{head[:-1]},\n  \"findings\": [\n{body}\n  ]\n}}\n" if rows else \
        f"{head[:-1]}, \"findings\": []}}\n"


def read(path: Path) -> tuple[str, list[BaselineEntry]]:
    """(mode the baseline was made in, its entries); KeyscanError says what is wrong."""
    from keyscan.report.redact import quoted

    tip = f"make it with `keyscan baseline PATH --output {path}`"
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"),  # a BOM: an editor's
                         object_pairs_hook=_object)
    except _KeyGivenTwice as twice:
        raise KeyscanError(f"{path}: key {quoted(twice.key)} is given twice in one object, and "
                           "JSON readers keep only the last: remove the one you do not mean, "
                           f"or {tip}") from None
    except FileNotFoundError:
        raise KeyscanError(f"baseline {path} does not exist: {tip}") from None
    except OSError as exc:
        raise KeyscanError(f"cannot read baseline {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise KeyscanError(f"baseline {path} is not JSON: {tip}") from None
    version = doc.get("keyscan_baseline") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise KeyscanError(f"{path} is a baseline of format {version}, made by a newer keyscan: "
                           f"this one (version {__version__}) reads format {FORMAT_VERSION}; "
                           "upgrade keyscan, or rewrite the baseline with this one")
    if not isinstance(doc, dict) or type(version) is not int or version != FORMAT_VERSION \
            or not isinstance(doc.get("findings"), list):
        raise KeyscanError(f"{path} is not a keyscan baseline (version {FORMAT_VERSION}): {tip}")
    entries = []
    for number, row in enumerate(doc["findings"], 1):
        if not isinstance(row, dict) or not isinstance(row.get("fingerprint"), str):
            raise KeyscanError(f"{path}: entry {number} has no fingerprint: {tip}")
        # a hand-edited file: what is shown back (stale entries) must be what a report
        # shows, never a secret pasted into a field
        for name in _SHAPES:
            value = row.get(name)
            if value is not None and not (isinstance(value, str) and _fits(name, value)):
                raise KeyscanError(f"{path}: entry {number}: {quoted(value)} is not a "
                                   f"{name.replace('_', ' ')} ({_SHAPES[name]}): {tip}")
        entries.append(BaselineEntry(
            fingerprint=row["fingerprint"].lower(), rule=str(row.get("rule") or ""),
            kind=str(row.get("kind") or ""), path=str(row.get("path") or ""),
            key_id=str(row.get("key_id") or ""), line=_int(row.get("line")),
            column=_int(row.get("column")), commit=str(row.get("commit") or "")))
    mode = doc.get("mode")
    return (mode if isinstance(mode, str) and mode.isidentifier() else ""), entries


_SHAPES = {"fingerprint": "20 hex characters", "rule": "a rule ID", "kind": "a finding kind",
           "path": "one line of printable characters, as reports show a path",
           "key_id": "an access key ID", "commit": "a commit ID"}
# matched from the start (`match`) to the very end: `\Z`, as `$` allows a final newline
_FIELDS = {name: lazy_pattern(shape) for name, shape in (
    ("fingerprint", r"[0-9a-fA-F]{20}\Z"), ("rule", r"[a-z0-9][a-z0-9-]*\Z"),
    ("kind", r"[a-z-]+\Z"), ("key_id", r"[A-Z0-9]{16,128}\Z"), ("commit", r"[0-9a-f]{4,64}\Z"))}


def _fits(name: str, value: str) -> bool:
    """Whether `value` has the shape of the field `name` (`_SHAPES`)."""
    if name == "path":  # any file name, as `render` writes it (`printable`)
        return _printed_path(value)
    return _FIELDS[name].match(value) is not None


def _printed_path(value: str) -> bool:
    """A path as a report prints it: not empty, and no NUL, line break or other control
    character. `render` writes every path through `printable`, which escapes them (a
    file named with one is written `\\x1b`): a path holding one is no entry keyscan
    wrote."""
    return value != "" and value.isprintable()


class _KeyGivenTwice(Exception):
    """A JSON object gives `key` twice (raised through `json.loads`: no ValueError, which
    would say the file is not JSON)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object of a baseline, refusing a key given twice: `json` keeps the last of
    two, silently (a hand-merged entry with two `fingerprint`s matched only one)."""
    doc = dict(pairs)
    if len(doc) < len(pairs):
        keys = [key for key, _ in pairs]
        raise _KeyGivenTwice(next(key for i, key in enumerate(keys) if key in keys[:i]))
    return doc


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def apply(result: ScanResult, path: Path, complete: bool) -> None:
    """Drop the leaks the baseline knows; record the entries this scan no longer finds.

    `complete` is False for partial scans (--staged, --range): they cannot tell whether
    an entry is gone, so they report no stale entries. Nor can a scan of another mode
    than the baseline's (a scan of the files does not see a leak only the history holds)
    or of a clone missing part of the history (shallow, partial).
    """
    mode, entries = read(path)
    known = {e.fingerprint: e for e in entries}
    present = {f.fingerprint for f in result.findings}
    kept = [f for f in result.findings
            if not (f.status is Status.LEAK and f.fingerprint in known)]
    result.stats.baselined = len(result.findings) - len(kept)
    result.findings[:] = kept
    other_mode = bool(mode) and mode != result.mode
    checked = complete and result.whole_history and not other_mode
    stale = tuple(e for e in entries if e.fingerprint not in present) if checked else ()
    result.baseline = BaselineCheck(path=str(path), entries=len(known),
                                    stale=stale, checked_stale=checked)
    # a history baseline holds all a scan of the files can find in committed files (the
    # setup the README recommends): no note on every such scan
    if complete and other_mode and not (mode == "history" and result.mode == "worktree"):
        result.notes.append(f"the baseline was made by a {mode} scan and this is a "
                            f"{result.mode} scan: leaks only this one sees show as new, and "
                            f"stale entries are checked only by a {mode} scan")
    elif complete and not result.whole_history:
        result.notes.append("stale baseline entries are not checked: this clone holds only "
                            "part of the history")
