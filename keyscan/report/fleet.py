"""Reports of a fleet audit: findings as JSON Lines (each tagged with its repository), a
per-repository status table and status file, and a SARIF file per repository.

Findings arrive already redacted from the workers (report/json.py's finding_dict with
reveal=False); this module only writes them, privately (0600).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from keyscan import __version__
from keyscan.report import open_private, write_private
from keyscan.report.redact import printable

COLUMNS = ("status", "findings", "leaks", "blobs", "bytes", "seconds", "error")


class FindingsFile:
    """The JSON Lines findings report: --output FILE (mode 0600) or stdout."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: IO[str] = sys.stdout
        if path is not None:
            self._fh = os.fdopen(open_private(path), "w", encoding="utf-8")

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self.path is not None:
            self._fh.close()


def write_sarif(folder: Path, label: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # its reports name leaked keys
    path = folder / f"{label}.sarif"
    write_private(path, text)
    return path


def status_table(rows: list[dict[str, Any]]) -> str:
    """One line per repository, failures last, for people."""
    order = {"error": 1, "timeout": 1, "partial": 0}
    rows = sorted(rows, key=lambda r: (order.get(r["status"], 0), r["repo"]))
    width = min(max([len("REPOSITORY"), *(len(r["repo"]) for r in rows)]), 60)
    # what this run read: a repository its cache knows gives only what is new since
    lines = [f"{'REPOSITORY':{width}}  {'STATUS':8} {'LEAKS':>5} {'FOUND':>5} {'READ':>8} "
             f"{'MB READ':>9} {'SECONDS':>8} {'LAST COMMIT':11}  ERROR"]
    for r in rows:
        name = printable(r["repo"])
        if len(name) > width:
            name = "…" + name[-(width - 1):]
        lines.append(f"{name:{width}}  {r['status']:8} {r['leaks']:>5} {r['findings']:>5} "
                     f"{r['blobs']:>8} {r['bytes'] / 1e6:>9.1f} {r['seconds']:>8.1f} "
                     f"{str(r.get('last_commit') or '-')[:10]:11}  "
                     f"{_short(printable(r['error']))}")
    return "\n".join(lines) + "\n"


def _short(text: str, limit: int = 100) -> str:
    """The table keeps one line per repository; the status file has the whole message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def totals(rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    count: dict[str, int] = {}
    for r in rows:
        count[r["status"]] = count.get(r["status"], 0) + 1
    return {"repositories": len(rows), "by_status": count,
            "findings": sum(r["findings"] for r in rows), "leaks": sum(r["leaks"] for r in rows),
            "blobs": sum(r["blobs"] for r in rows), "bytes": sum(r["bytes"] for r in rows),
            "seconds": round(seconds, 3)}


def status_document(rows: list[dict[str, Any]], summary: dict[str, Any],
                    notes: list[str]) -> str:
    doc = {"schema_version": 1, "tool": {"name": "keyscan", "version": __version__},
           "summary": summary, "repositories": sorted(rows, key=lambda r: r["repo"]),
           "notes": notes}
    return json.dumps(doc, indent=2) + "\n"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def summary_line(summary: dict[str, Any]) -> str:
    by = summary["by_status"]
    failed = by.get("error", 0) + by.get("timeout", 0)
    parts = [_count(summary["repositories"], "repository", "repositories"),
             _count(summary["leaks"], "leak", "leaks"),
             f"{summary['bytes'] / 1e6:.1f} MB in {summary['seconds']:.1f} s"]
    if failed:
        parts.append(f"{failed} failed")
    if by.get("partial"):
        parts.append(f"{by['partial']} partly unreadable")
    if by.get("done"):
        parts.append(f"{by['done']} done earlier (--resume)")
    return "keyscan audit: " + ", ".join(parts)
