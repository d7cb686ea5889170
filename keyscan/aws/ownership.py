"""Ownership checks (--verify): ask IAM and STS, with the operator's own credentials,
whose key each found key ID is. The leaked secret is never used here.

Per key: sts:GetAccessKeyInfo (the account of any key ID), iam:GetAccessKeyLastUsed
(owning user and last use, for keys of the caller's account) and iam:ListAccessKeys
for that user (status, creation date, how many keys). A key is *confirmed* ours only
when IAM in the operator's account lists it under that user.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from keyscan.aws import classify
from keyscan.aws.classify import Accounts
from keyscan.aws.session import (
    ERROR_SEPARATOR,
    AwsOptions,
    Operator,
    client,
    describe,
    error_code,
)
from keyscan.model import Finding, Ownership, Status
from keyscan.record import replace

ROOT_USER_NAMES = ("<root_account>", "root")
MAX_KEYS_PER_USER = 2  # an IAM limit: a third CreateAccessKey fails with LimitExceeded


@dataclass(frozen=True, slots=True)
class Clients:
    iam: Any
    sts: Any

    @classmethod
    def make(cls, session: Any, options: AwsOptions) -> Clients:
        return cls(iam=client(session, "iam", options), sts=client(session, "sts", options))


@dataclass
class Checker:
    """Checks keys concurrently (a bounded pool) and remembers each answer for the run."""

    clients: Clients
    operator: Operator
    accounts: Accounts
    workers: int = 8
    _cache: dict[str, Ownership] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check_findings(self, findings: Iterable[Finding]) -> list[Finding]:
        """Findings with IAM's answer attached; canaries are never sent to AWS."""
        findings = list(findings)
        todo = {f.key_id: f.ownership or Ownership() for f in findings
                if f.key_id and f.status is Status.LEAK and not _is_canary(f)}
        self.check_many(todo)
        return [self._attach(f) for f in findings]

    def check_many(self, keys: dict[str, Ownership]) -> None:
        with self._lock:
            missing = {k: v for k, v in keys.items() if k not in self._cache}
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(missing)))) as pool:
            answers = pool.map(lambda item: self.check(*item), missing.items())
            for key_id, answer in zip(missing, answers, strict=True):
                with self._lock:
                    self._cache[key_id] = answer

    def cached(self, key_id: str) -> Ownership | None:
        with self._lock:
            return self._cache.get(key_id)

    def check(self, key_id: str, offline: Ownership) -> Ownership:
        """One key: every failure becomes a value in the answer, never an exception."""
        try:
            return check_key(self.clients, self.operator, self.accounts, key_id, offline)
        except Exception as exc:  # one key's failure never stops the others
            return replace(offline, checked=True, error=describe(exc, "ownership check"))

    def _attach(self, f: Finding) -> Finding:
        answer = self.cached(f.key_id) if f.key_id else None
        if answer is None:
            return f
        severity = "critical" if answer.root else f.severity
        return replace(f, ownership=answer, severity=severity)


def _is_canary(f: Finding) -> bool:
    return f.ownership is not None and f.ownership.classification == classify.CANARY


def check_key(clients: Clients, operator: Operator, accounts: Accounts, key_id: str,
              offline: Ownership) -> Ownership:
    errors: list[str] = []
    notes = list(offline.notes)
    account = _account(clients, key_id, errors) or offline.account
    if not key_id.startswith("AKIA"):
        notes.append("temporary or special credentials: IAM cannot deactivate them; they "
                     "expire, or revoke the role's sessions")
        return _finish(offline, accounts, operator, account=account, notes=notes,
                       errors=errors)
    user, last = _last_used(clients, key_id, errors)
    if user in ROOT_USER_NAMES:
        notes.append("root-user key: critical; sign in as the root user and delete it")
        return _finish(offline, accounts, operator, account=account, notes=notes,
                       errors=errors, root=True, user=user,
                       confirmed=account == operator.account, **last)
    listed = _listed(clients, user, key_id, errors) if user else {}
    confirmed = bool(listed) and account == operator.account and \
        offline.account in ("", operator.account)
    if not user and not errors:
        notes.append(f"not found in the operator's account {operator.account}")
    count = int(listed.get("key_count", 0))
    if count >= MAX_KEYS_PER_USER:
        notes.append(f"{user} already has {count} access keys (IAM allows {MAX_KEYS_PER_USER}): "
                     "to rotate, delete one before creating the replacement")
    return _finish(offline, accounts, operator, account=account, notes=notes, errors=errors,
                   user=user, confirmed=confirmed, **last, **listed)


def _finish(offline: Ownership, accounts: Accounts, operator: Operator, *, account: str,
            notes: list[str], errors: list[str], **found: Any) -> Ownership:
    ours = Accounts(ours=accounts.ours or frozenset({operator.account}),
                    canaries=accounts.canaries)
    kind = classify.classify(account, ours)
    if found.get("confirmed") and kind != classify.OURS:
        notes.append(f"in the operator's account {account}, which is not in --our-account")
    return replace(offline, classification=kind, account=account, checked=True,
                   notes=tuple(dict.fromkeys(notes)), error=ERROR_SEPARATOR.join(errors), **found)


def _account(clients: Clients, key_id: str, errors: list[str]) -> str:
    try:
        return str(clients.sts.get_access_key_info(AccessKeyId=key_id)["Account"])
    except Exception as exc:
        errors.append(describe(exc, "sts:GetAccessKeyInfo"))
        return ""


def _last_used(clients: Clients, key_id: str, errors: list[str]) -> tuple[str, dict[str, str]]:
    try:
        answer = clients.iam.get_access_key_last_used(AccessKeyId=key_id)
    except Exception as exc:
        if error_code(exc) != "NoSuchEntity":  # NoSuchEntity: not a key of this account
            errors.append(describe(exc, "iam:GetAccessKeyLastUsed"))
        return "", {}
    used = answer.get("AccessKeyLastUsed", {})
    last = {
        "last_used": _date(used.get("LastUsedDate")),
        "last_service": _known(used.get("ServiceName")),
        "last_region": _known(used.get("Region")),
    }
    return str(answer.get("UserName", "")), last


def _listed(clients: Clients, user: str, key_id: str, errors: list[str]) -> dict[str, Any]:
    try:
        pages = clients.iam.get_paginator("list_access_keys").paginate(UserName=user)
        keys = [k for page in pages for k in page["AccessKeyMetadata"]]
    except Exception as exc:
        if error_code(exc) != "NoSuchEntity":  # the user is not in this account
            errors.append(describe(exc, "iam:ListAccessKeys"))
        return {}
    mine = [k for k in keys if k["AccessKeyId"] == key_id]
    if not mine:
        return {}
    return {"status": str(mine[0]["Status"]), "created": _date(mine[0].get("CreateDate")),
            "key_count": len(keys), "arn": _user_arn(clients, user)}


def _user_arn(clients: Clients, user: str) -> str:
    try:
        return str(clients.iam.get_user(UserName=user)["User"]["Arn"])
    except Exception:  # the ARN is a nicety; IAM already confirmed the owner
        return ""


def _date(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="seconds")
    return ""


def _known(value: object) -> str:
    return "" if value in (None, "", "N/A") else str(value)
