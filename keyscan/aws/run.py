"""The AWS stages of the pipeline for one scan result: ownership -> liveness -> act.

The CLI calls these; each returns what happened (errors as values), and the CLI
decides what to print and which exit code to use.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyscan.aws import classify, deactivate, live, session
from keyscan.aws.audit import AuditLog, default_path
from keyscan.aws.classify import Accounts
from keyscan.aws.deactivate import Outcome, Step
from keyscan.aws.ownership import Checker, Clients
from keyscan.aws.session import ERROR_SEPARATOR, AwsOptions, Operator
from keyscan.errors import KeyscanError
from keyscan.model import Finding, Location, Status
from keyscan.record import replace


@dataclass
class Aws:
    """One run's AWS connection: session, operator identity and ownership cache."""

    options: AwsOptions
    accounts: Accounts
    boto: Any = None
    operator: Operator | None = None
    checker: Checker | None = None
    errors: list[str] = field(default_factory=list)

    def connect(self) -> Checker:
        """The operator's session and identity; KeyscanError when the credentials fail."""
        if self.checker is None:
            self.boto = session.boto_session(self.options)
            self.operator = session.operator(self.boto, self.options)
            self.checker = Checker(Clients.make(self.boto, self.options), self.operator,
                                   self.accounts, workers=self.options.workers)
        return self.checker


def verify(findings: list[Finding], aws: Aws) -> list[Finding]:
    """Ownership of every non-canary key ID (--verify); errors collected in aws.errors."""
    if not any(_askable(f) for f in findings):
        return findings
    checked = aws.connect().check_findings(findings)
    aws.errors.extend(_distinct_errors(checked))
    return checked


def verify_live(findings: list[Finding], aws: Aws) -> list[Finding]:
    if not any(_askable(f) and f.secret is not None for f in findings):
        return findings
    if aws.boto is None:
        aws.boto = session.boto_session(aws.options)
    before = {f.ownership.error for f in findings if f.ownership and f.ownership.error}
    checked = live.check_findings(findings, aws.boto, aws.options)
    aws.errors.extend(e for e in _distinct_errors(checked) if e not in before)
    return checked


def _askable(f: Finding) -> bool:
    return bool(f.key_id) and f.status is Status.LEAK and f.ownership is not None \
        and f.ownership.classification != classify.CANARY


def _distinct_errors(findings: Iterable[Finding]) -> list[str]:
    """Each distinct failure once, with how many keys it hit: one clear message each."""
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    for f in findings:
        if f.ownership is not None and f.ownership.error and f.key_id not in seen:
            seen.add(f.key_id)
            for part in f.ownership.error.split(ERROR_SEPARATOR):
                counts[part] += 1
    return [f"{msg} ({n} keys)" if n > 1 else msg for msg, n in counts.items()]


@dataclass(frozen=True, slots=True)
class Acting:
    """How to act: --yes to change anything, --dry-run to only plan."""

    yes: bool = False
    dry_run: bool = False
    quarantine: bool = False
    audit_log: Path | None = None
    inside: Path | None = None  # the work tree scanned: the log is not written via links in it


def plan_deactivation(findings: list[Finding], aws: Aws, acting: Acting) -> list[Step]:
    if not any(f.key_id and f.status is Status.LEAK for f in findings):
        return []
    checker = aws.connect()
    return deactivate.plan(findings, checker.operator, aws.accounts.ours, acting.quarantine)


def apply_deactivation(steps: list[Step], aws: Aws, acting: Acting) -> list[Outcome]:
    if not steps:
        return []
    checker = aws.connect()
    log = AuditLog(acting.audit_log or default_path(), acting.inside)
    dry = acting.dry_run or not acting.yes
    return deactivate.apply(steps, checker.clients.iam, checker.operator, log, dry)


def with_outcomes(findings: list[Finding], outcomes: list[Outcome]) -> list[Finding]:
    """Record on each finding what was done to its key."""
    done: dict[str, list[str]] = {}
    for o in outcomes:
        text = o.result + (f": {o.message}" if o.message and o.result != "skipped" else "")
        done.setdefault(o.step.key_id, []).append(text)
    out = []
    for f in findings:
        if f.ownership is not None and f.key_id in done:
            own = f.ownership
            status = "Inactive" if "deactivated" in done[f.key_id] else own.status
            f = replace(f, ownership=replace(own, action="; ".join(done[f.key_id]),
                                             status=status))
        out.append(f)
    return out


def findings_from_report(path: Path) -> list[Finding]:
    """The leaked key IDs of a saved `keyscan scan --format json` report (no secrets needed)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        rows = doc["findings"]
        return [_finding(row) for row in rows if row.get("key_id")]
    except OSError as exc:
        raise KeyscanError(f"cannot read the report {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise KeyscanError(f"{path} is not a keyscan JSON report: create one with "
                           "`keyscan scan --format json -o FILE`") from None


def _finding(row: dict[str, Any]) -> Finding:
    from keyscan.attribute import account_id

    key_id = str(row["key_id"])
    return Finding(
        rule_id=str(row.get("rule", "")), description=str(row.get("description", "")),
        severity=str(row.get("severity", "high")), status=Status(row.get("status", "leak")),
        location=Location(path=str(row.get("path", "")), source=str(row.get("source", ""))),
        line=int(row.get("line", 0)), column=int(row.get("column", 0)),
        kind=str(row.get("kind", "key-id")), key_id=key_id, account=account_id(key_id),
    )
