"""Undo: reactivate keys keyscan deactivated and lift its quarantine policy.

From explicit key IDs (IAM is asked who owns each) or from the audit log (every
key whose last recorded change left it deactivated or quarantined). Only keys in
the operator's own account; plan first, act with --yes, every change audited.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from keyscan.aws import audit
from keyscan.aws.audit import AuditLog
from keyscan.aws.canaries import canary_service
from keyscan.aws.deactivate import (
    NOT_IAM_USER_KEYS,
    TEMPORARY,
    Outcome,
    Step,
    has_quarantine,
    run_steps,
    set_quarantine,
    set_status,
)
from keyscan.aws.ownership import Checker
from keyscan.aws.session import Operator
from keyscan.model import Ownership


def steps_for_keys(key_ids: list[str], checker: Checker) -> list[Step]:
    from keyscan.attribute import account_id

    canary = {k: service for k in key_ids
              if (service := canary_service(account_id(k), checker.accounts.canaries))}
    checker.check_many({k: Ownership(account=account_id(k)) for k in key_ids
                        if k not in canary})  # a canary key named to IAM trips its alarm
    steps = [_canary_step(k, canary[k]) if k in canary
             else _step(k, checker.cached(k) or Ownership(), checker.operator) for k in key_ids]
    return [replace(s, quarantine=_quarantined(checker, s.user)) if s.act else s for s in steps]


def _canary_step(key_id: str, service: str) -> Step:
    return Step(key_id=key_id, user="", account="", status="", act=False,
                reason=f"canary token of {service}: never sent to AWS, never reactivated")


def _quarantined(checker: Checker, user: str) -> bool:
    try:
        return has_quarantine(checker.clients.iam, user)
    except Exception:  # unknown: let the undo step try, and report what IAM says
        return True


def _step(key_id: str, own: Ownership, operator: Operator) -> Step:
    base = Step(key_id=key_id, user=own.user, account=own.account, status=own.status,
                act=False, reason="")
    if key_id.startswith(NOT_IAM_USER_KEYS):
        return _replace(base, reason=TEMPORARY)
    if own.error:
        return _replace(base, reason=f"ownership not confirmed: {own.error}")
    if own.root:
        return _replace(base, reason="root-user key: keyscan never changes it; sign in as "
                                     "the root user")
    if not own.confirmed:
        return _replace(base, reason=f"not a key of your account {operator.account}")
    return _replace(base, act=True,
                    reason=f"confirmed in your account {own.account} (user {own.user})")


@dataclass
class _Undo:
    entry: audit.Entry
    inactive: bool = False
    quarantined: bool = False


def steps_from_log(path: Path, operator: Operator) -> list[Step]:
    """Keys whose last change logged by keyscan left them deactivated or quarantined."""
    state: dict[str, _Undo] = {}
    for e in audit.read(path):
        if e.result != audit.OK:
            continue
        undo = state.setdefault(e.key_id, _Undo(e))
        undo.entry = e
        if e.action in ("deactivate", "reactivate"):
            undo.inactive = e.action == "deactivate"
        elif e.action in ("quarantine", "unquarantine"):
            undo.quarantined = e.action == "quarantine"
    steps = []
    for key_id, undo in state.items():
        if not (undo.inactive or undo.quarantined):
            continue
        e = undo.entry
        # the key's status as keyscan left it; unknown when keyscan only quarantined (the
        # key may have been switched off before, by someone else: the undo leaves it so)
        status = "Inactive" if undo.inactive else ""
        base = Step(key_id=key_id, user=e.user, account=e.account, status=status,
                    act=False, reason="", quarantine=undo.quarantined,
                    quarantine_only=not undo.inactive)
        if e.account != operator.account:
            steps.append(_replace(base, reason=f"logged for account {e.account}, but you run "
                                               f"in account {operator.account}"))
            continue
        steps.append(_replace(base, act=True, reason=f"{path}: keyscan left it "
                              + " and ".join(_what(undo))))
    return steps


def _what(undo: _Undo) -> list[str]:
    return [w for w, on in (("deactivated", undo.inactive), ("quarantined", undo.quarantined))
            if on]


def _replace(step: Step, **changes: Any) -> Step:
    return replace(step, **changes)


def apply(steps: list[Step], iam: Any, operator: Operator, log: AuditLog,
          dry_run: bool) -> list[Outcome]:
    """Reactivate, or lift the quarantine of, every step that acts (`run_steps`)."""

    def act(step: Step, out: list[Outcome]) -> None:
        if not step.quarantine_only:
            out.append(set_status(step, iam, operator, log, "Active"))
        if step.quarantine:
            out.append(set_quarantine(step, iam, operator, log, on=False))

    return run_steps(steps, log, dry_run, act, lambda step: "would-lift-quarantine"
                     if step.quarantine_only else "would-reactivate")
