"""What `keyscan audit --resume` knows: the repositories an earlier run finished, under
which settings, and their (redacted) results. One JSON Lines file in the workdir,
appended as each repository finishes, so an audit stopped half-way loses nothing.

It holds what the findings file and the SARIF reports hold (key IDs, paths, commits;
secrets redacted), so it is private (0600 in a 0700 folder). The last line for a
repository wins; a torn last line from a killed run is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from keyscan.aws.classify import Accounts
from keyscan.fleet_repo import PARTIAL, SCANNED

FILE_NAME = "audit-state.jsonl"


def settings_digest(rules_digest: str, max_file_size: int, unreachable: bool,
                    accounts: Accounts) -> str:
    """What must match for an earlier result to count: the rules and what changes findings
    (the accounts given as ours or canaries classify each finding)."""
    material = json.dumps([rules_digest, max_file_size, unreachable,
                           sorted(accounts.ours), sorted(accounts.canaries)])
    return hashlib.sha256(material.encode()).hexdigest()[:24]


class AuditState:
    def __init__(self, workdir: Path, digest: str) -> None:
        self.path = workdir / FILE_NAME
        self.digest = digest
        self.entries = _load(self.path)
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._compact()

    def done(self, name: str, sarif: bool = False) -> dict[str, Any] | None:
        """The earlier payload of `name` when it finished under the same settings (and
        made its SARIF report, when `sarif`: it is written again from here)."""
        entry = self.entries.get(name)
        if entry is None or entry.get("settings") != self.digest:
            return None
        payload: dict[str, Any] = entry["payload"]
        if sarif and not payload.get("sarif"):
            return None
        return payload if payload["row"]["status"] in (SCANNED, PARTIAL) else None

    def record(self, payload: dict[str, Any]) -> None:
        entry = {"repo": payload["row"]["repo"], "settings": self.digest,
                 "payload": payload}
        self.entries[entry["repo"]] = entry
        with _open_private(self.path, os.O_APPEND) as fh:
            fh.write(json.dumps(entry) + "\n")

    def _compact(self) -> None:
        """Rewrite with one line per repository, so the file stays small run after run."""
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with _open_private(tmp, os.O_TRUNC) as fh:
            fh.writelines(json.dumps(e) + "\n" for e in self.entries.values())
        os.replace(tmp, self.path)


def _load(path: Path) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return entries
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            entries[str(entry["repo"])] = entry
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a killed run
    return entries


def _open_private(path: Path, mode: int) -> Any:
    from keyscan.report import keep_private

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o600)
    keep_private(fd)
    return os.fdopen(fd, "w", encoding="utf-8")
