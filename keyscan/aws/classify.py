"""Offline classification of a found key: ours, foreign, unknown or canary. No network."""

from __future__ import annotations

from collections.abc import Iterable

from keyscan.attribute import account_id
from keyscan.aws.canaries import canary_service
from keyscan.model import Finding, Ownership
from keyscan.record import record, replace

OURS = "ours"
FOREIGN = "foreign"
UNKNOWN = "unknown"
CANARY = "canary"


@record
class Accounts:
    """The operator's idea of which accounts are theirs, and extra canary accounts."""

    ours: frozenset[str] = frozenset()
    canaries: frozenset[str] = frozenset()


def classify(account: str, accounts: Accounts) -> str:
    if not account:
        return UNKNOWN
    if canary_service(account, accounts.canaries):
        return CANARY
    if not accounts.ours:
        return UNKNOWN
    return OURS if account in accounts.ours else FOREIGN


def offline(finding: Finding, accounts: Accounts) -> Ownership:
    account = finding.account or account_id(finding.key_id)
    kind = classify(account, accounts)
    notes: tuple[str, ...] = ()
    if kind == CANARY:
        notes = (f"canary token of {canary_service(account, accounts.canaries)}: keyscan "
                 "never sends it to AWS (any use would trip its alarm)",)
    elif not account:
        notes = ("account unknown: older key IDs do not encode their account",)
    return Ownership(classification=kind, account=account, notes=notes)


def classify_all(findings: Iterable[Finding], accounts: Accounts) -> list[Finding]:
    """Findings with an offline Ownership attached to each one that has a key ID."""
    return [replace(f, ownership=offline(f, accounts)) if f.key_id else f for f in findings]


def parse_accounts(values: Iterable[str]) -> frozenset[str]:
    """12-digit account IDs from repeatable, comma-separated option values."""
    from keyscan.errors import KeyscanError

    out = set()
    for value in values:
        for item in value.replace(" ", "").split(","):
            if not item:
                continue
            if len(item) != 12 or not item.isdigit():
                raise KeyscanError(f"not an AWS account ID: {item!r} (give 12 digits, "
                                   "e.g. --our-account 123456789012)")
            out.add(item)
    return frozenset(out)
