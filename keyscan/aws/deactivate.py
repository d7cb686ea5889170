"""Deactivation: plan -> dry run -> apply, only for keys confirmed in the operator's account.

`plan` is pure: it decides, per key, whether to act and says why. `apply` makes the
IAM calls, re-reading each key's status first (idempotent: an inactive key gets no
call), and appends every change to the audit log. Failures are outcomes, not
exceptions: one key's failure never stops the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from keyscan.aws import classify
from keyscan.aws.audit import FAILED, OK, AuditLog, Entry, Unlogged
from keyscan.aws.session import Operator, describe, error_code
from keyscan.interrupt import held
from keyscan.model import Finding, Status
from keyscan.report.redact import printable

QUARANTINE_POLICY = "keyscan-quarantine"
UNLOGGED = "made-unlogged"  # changed in IAM, but the audit log did not take the line
INTERRUPTED = "interrupted"  # Ctrl-C came before this step: nothing was done to the key
NOT_IAM_USER_KEYS = ("ASIA", "ABIA", "ACCA")  # STS and context-specific credentials
TEMPORARY = ("not a long-term IAM user key: IAM cannot switch it off or on; temporary "
             "credentials expire (or revoke the role's sessions)")
DENY_ALL = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Sid": "KeyscanQuarantine", "Effect": "Deny", "Action": "*",
                   "Resource": "*"}],
})


@dataclass(frozen=True, slots=True)
class Step:
    """What keyscan will (act) or will not do to one key, and why."""

    key_id: str
    user: str
    account: str
    status: str
    act: bool
    reason: str
    where: tuple[str, ...] = ()
    quarantine: bool = False
    quarantine_only: bool = False  # undo: keyscan did not switch the key off; leave it be


@dataclass(frozen=True, slots=True)
class Outcome:
    step: Step
    result: str  # deactivated | already-inactive | would-deactivate | skipped | failed | ...
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.result in (FAILED, UNLOGGED)


def interrupted(step: Step) -> Outcome:
    return Outcome(step, INTERRUPTED, "not attempted: interrupted (Ctrl-C)")


def plan(findings: Iterable[Finding], operator: Operator, ours: frozenset[str],
         quarantine: bool = False) -> list[Step]:
    """One step per leaked key ID, in the order found."""
    by_key: dict[str, list[Finding]] = {}
    for f in findings:
        if f.key_id and f.status is Status.LEAK:
            by_key.setdefault(f.key_id, []).append(f)
    return [_step(key_id, fs, operator, ours, quarantine) for key_id, fs in by_key.items()]


def _step(key_id: str, fs: list[Finding], operator: Operator, ours: frozenset[str],
          quarantine: bool) -> Step:
    own = fs[0].ownership
    where = tuple(dict.fromkeys(
        f"{f.location.path}{'!' + f.member if f.member else ''}:{f.line}" for f in fs))
    base = Step(key_id=key_id, user=own.user if own else "", account=own.account if own else "",
                status=own.status if own else "", act=False, reason="", where=where)
    why_not = _why_not(key_id, own, operator, ours)
    if why_not:
        return _with(base, reason=why_not)
    if base.status == "Inactive" and not quarantine:
        return _with(base, reason="already inactive in IAM: nothing can sign with it; "
                                  "nothing to do")
    guard_user = quarantine and base.user == operator.user
    reason = f"confirmed in your account {base.account} (user {base.user}); found at " \
        + ", ".join(where[:3]) + (" …" if len(where) > 3 else "")
    if guard_user:
        reason += "; no quarantine: it is the user keyscan runs as (lock-out guard)"
    return _with(base, act=True, reason=reason, quarantine=quarantine and not guard_user)


def _why_not(key_id: str, own: Any, operator: Operator, ours: frozenset[str]) -> str:
    if own is None:
        return "no ownership information"
    if own.classification == classify.CANARY:
        return "canary token: never sent to AWS, never deactivated"
    if key_id.startswith(NOT_IAM_USER_KEYS):
        return TEMPORARY
    if key_id == operator.key_id:
        return ("lock-out guard: keyscan is running with this key; deactivate it from "
                "another identity")
    if not own.checked:
        return "ownership not checked (run with --verify)"
    if own.root:
        return "root-user key: only the root user can remove it; sign in as root and delete it"
    if not own.confirmed:
        if own.error:
            return f"ownership not confirmed: {own.error}"
        where = f"account {own.account}" if own.account else "an unknown account"
        return (f"not a key of your account {operator.account} (it is in {where}): never "
                "touched; tell its owner")
    if ours and own.account not in ours:
        return f"account {own.account} is not in --our-account"
    return ""


def _with(step: Step, **changes: Any) -> Step:
    return replace(step, **changes)


def render_plan(steps: list[Step], verb: str = "deactivate", extra: str = "quarantine") -> str:
    if not steps:
        return f"Plan: no keys to {verb}.\n"
    lines = ["Plan:"]
    for s in steps:
        what = verb if s.act else "skip"
        if s.act and s.quarantine:
            what = extra if s.quarantine_only else f"{what} + {extra}"
        who = f"user {s.user or '?'}, account {s.account or 'unknown'}"
        lines.append(f"  {what:24s} {s.key_id}  ({who}, status {s.status or 'unknown'})")
        lines.append(f"  {'':24s} why: {printable(s.reason)}")  # it names paths
    acting = sum(s.act for s in steps)
    lines.append(f"{acting} of {len(steps)} key(s) to {verb}.")
    return "\n".join(lines) + "\n"


def render_outcomes(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        text = f"  {o.result:24s} {o.step.key_id}  (user {o.step.user or '?'})"
        if o.message:
            text += f": {printable(o.message)}"
        lines.append(text)
    return "\n".join(lines) + ("\n" if lines else "")


def apply(steps: list[Step], iam: Any, operator: Operator, log: AuditLog,
          dry_run: bool) -> list[Outcome]:
    """Deactivate (and optionally quarantine) every step that acts (`run_steps`)."""

    def act(step: Step, out: list[Outcome]) -> None:
        out.append(set_status(step, iam, operator, log, "Inactive"))
        if step.quarantine:
            out.append(set_quarantine(step, iam, operator, log, on=True))

    return run_steps(steps, log, dry_run, act,
                     lambda step: "would-deactivate" + "+quarantine" * step.quarantine)


def run_steps(steps: list[Step], log: AuditLog, dry_run: bool,
              act: Callable[[Step, list[Outcome]], None], would: Callable[[Step], str]
              ) -> list[Outcome]:
    """`act` on every step that acts (its outcomes appended to the list it is given), or
    say what it `would` do with `dry_run`. The log is checked before any change; once
    it stops taking lines, the change it did not take is told in full and no other is
    made. Ctrl-C lets the key in progress finish (its IAM change and audit line), then
    the rest are reported as not attempted."""
    if not dry_run and any(s.act for s in steps):
        log.check()  # an IAM change the log cannot hold would be one no undo can find
    out: list[Outcome] = []
    broken = ""  # why the audit log stopped taking lines
    with held() as hold:
        for step in steps:
            if not step.act:
                out.append(Outcome(step, "skipped", step.reason))
            elif hold.received:
                out.append(interrupted(step))
            elif dry_run:
                out.append(Outcome(step, would(step)))
            elif broken:
                out.append(Outcome(step, FAILED, f"not attempted: {broken}"))
            else:
                try:
                    act(step, out)
                except Unlogged as exc:
                    out.append(unlogged(step, exc))
                    broken = f"the audit log stopped taking lines ({exc})"
    return out


def unlogged(step: Step, exc: Unlogged) -> Outcome:
    """A change the audit log did not take, told in full here (the report is then its
    only record), or a failed one."""
    e = exc.entry
    if e.result != OK:
        return Outcome(step, FAILED, f"{e.error}; and {exc}")
    undo = f"; undo: `keyscan reactivate {e.key_id}`" \
        if e.action in ("deactivate", "quarantine") else ""
    return Outcome(step, UNLOGGED, (
        f"{e.action} of {e.key_id} (user {e.user}, account {e.account}) WAS MADE in IAM "
        f"at {e.time} ({e.previous_status or 'none'} -> {e.new_status or 'none'}) but is in "
        f"no audit log ({exc}){undo}"))


def current_status(iam: Any, user: str, key_id: str) -> str:
    pages = iam.get_paginator("list_access_keys").paginate(UserName=user)
    for page in pages:
        for key in page["AccessKeyMetadata"]:
            if key["AccessKeyId"] == key_id:
                return str(key["Status"])
    return ""


def set_status(step: Step, iam: Any, operator: Operator, log: AuditLog,
               status: str) -> Outcome:
    """Idempotent: the status is read first, and a key already there gets no call."""
    action = "deactivate" if status == "Inactive" else "reactivate"
    try:
        previous = current_status(iam, step.user, step.key_id)
    except Exception as exc:  # the read failed: UpdateAccessKey was never sent
        return _failed(step, operator, log, action, describe(exc, _read_before(
            "iam:ListAccessKeys", action)))
    if not previous:
        return Outcome(step, FAILED, f"IAM no longer lists this key under {step.user}")
    if previous == status:
        return Outcome(step, f"already-{status.lower()}")
    try:
        iam.update_access_key(UserName=step.user, AccessKeyId=step.key_id, Status=status)
    except KeyboardInterrupt:  # a second Ctrl-C: the call's fate is unknown, so say so
        log.record(_entry(step, operator, action, previous, "", FAILED,
                          "interrupted during the IAM call: the change may or may not have "
                          "been made; check the key's status"))
        raise
    except Exception as exc:
        message = describe(exc, f"iam:UpdateAccessKey ({action})")
        if _status_now(iam, step) == status:
            # the change was made and only its answer lost (a timeout): record what IS
            log.record(_entry(step, operator, action, previous, status, OK,
                              f"{message}; yet IAM now lists the key as {status}"))
            return Outcome(step, "deactivated" if status == "Inactive" else "reactivated")
        return _failed(step, operator, log, action, message, previous)
    log.record(_entry(step, operator, action, previous, status, OK))
    return Outcome(step, "deactivated" if status == "Inactive" else "reactivated")


def _read_before(call: str, action: str) -> str:
    """How a failed read names itself: the call that failed, and that no change followed."""
    return f"{call} (read before {action}; nothing was changed)"


def _failed(step: Step, operator: Operator, log: AuditLog, action: str, message: str,
            previous: str = "") -> Outcome:
    log.record(_entry(step, operator, action, previous, previous, FAILED, message))
    return Outcome(step, FAILED, message)


def _status_now(iam: Any, step: Step) -> str:
    try:
        return current_status(iam, step.user, step.key_id)
    except Exception:  # unknown: the failure stands
        return ""


def set_quarantine(step: Step, iam: Any, operator: Operator, log: AuditLog,
                   on: bool) -> Outcome:
    """Attach (on) or remove keyscan's deny-all inline policy on the key's user."""
    action = "quarantine" if on else "unquarantine"
    try:
        present = has_quarantine(iam, step.user)
    except Exception as exc:  # the read failed: Put/DeleteUserPolicy was never sent
        return _failed(step, operator, log, action,
                       describe(exc, _read_before("iam:GetUserPolicy", action)))
    if present == on:
        return Outcome(step, "already-quarantined" if on else "not-quarantined")
    try:
        if on:
            iam.put_user_policy(UserName=step.user, PolicyName=QUARANTINE_POLICY,
                                PolicyDocument=DENY_ALL)
        else:
            iam.delete_user_policy(UserName=step.user, PolicyName=QUARANTINE_POLICY)
    except Exception as exc:
        return _failed(step, operator, log, action,
                       describe(exc, f"iam:{'Put' if on else 'Delete'}UserPolicy ({action})"))
    states = ("", QUARANTINE_POLICY) if on else (QUARANTINE_POLICY, "")
    log.record(_entry(step, operator, action, *states, OK))
    return Outcome(step, "quarantined" if on else "unquarantined")


def has_quarantine(iam: Any, user: str) -> bool:
    try:
        iam.get_user_policy(UserName=user, PolicyName=QUARANTINE_POLICY)
    except Exception as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
    return True


def _entry(step: Step, operator: Operator, action: str, previous: str, new: str,
           result: str, error: str = "") -> Entry:
    return Entry(action=action, key_id=step.key_id, user=step.user, account=step.account,
                 previous_status=previous, new_status=new, result=result,
                 operator_arn=operator.arn, error=error)
