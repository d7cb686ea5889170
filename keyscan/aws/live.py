"""Liveness (--verify-live): sign sts:GetCallerIdentity with a found ID + secret pair.

This *uses* the leaked key: AWS records the call against it (CloudTrail, last-used
date) and a canary key raises its alarm, so it is a separate opt-in and canary keys
are never sent. The operator's credentials are never mixed in: the client gets the
found pair explicitly.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from keyscan.aws import classify
from keyscan.aws.session import ERROR_SEPARATOR, AwsOptions, client, describe, error_code
from keyscan.model import LIVENESS_NOT_CHECKED, Finding, Ownership, Secret, Status
from keyscan.record import replace

_DEAD = {
    "InvalidClientTokenId": "AWS does not know this key ID (deleted, or never existed)",
    "SignatureDoesNotMatch": "the key ID exists but this secret does not match it",
    "ExpiredToken": "the temporary credentials have expired",
    "ExpiredTokenException": "the temporary credentials have expired",
}


def check_findings(findings: list[Finding], session: Any, options: AwsOptions) -> list[Finding]:
    todo = {_pair_id(f): f for f in findings if _checkable(f)}
    if not todo:
        return findings
    with ThreadPoolExecutor(max_workers=max(1, min(options.workers, len(todo)))) as pool:
        answers = dict(zip(todo, pool.map(lambda f: check_pair(f, session, options),
                                          todo.values()), strict=True))
    return [_attach(f, answers.get(_pair_id(f))) if _checkable(f) else f for f in findings]


def _checkable(f: Finding) -> bool:
    if not f.key_id or f.secret is None or f.ownership is None or f.status is not Status.LEAK:
        return False
    return f.ownership.classification != classify.CANARY


def _pair_id(f: Finding) -> tuple[str, str]:
    return f.key_id, f.secret.digest() if f.secret is not None else ""


@dataclass(frozen=True, slots=True)
class Answer:
    """One pair's liveness. `error`: the check itself failed (an AWS step failed, exit 3);
    `note`: why the pair is not live, or why it was not checked (no failure)."""

    live: bool | None = None  # None: not known (not checked, or the check failed)
    arn: str = ""
    note: str = ""
    error: str = ""


NO_SESSION_TOKEN = Answer(note=f"{LIVENESS_NOT_CHECKED}: a temporary (ASIA) key found "
                               "without its session token cannot sign a request")


def _attach(f: Finding, answer: Answer | None) -> Finding:
    if answer is None or f.ownership is None:
        return f
    own: Ownership = f.ownership
    own = replace(own, live=answer.live, live_arn=answer.arn,
                  notes=own.notes + ((answer.note,) if answer.note else ()),
                  error=ERROR_SEPARATOR.join(filter(None, (own.error, answer.error))))
    return replace(f, ownership=own)


def check_pair(f: Finding, session: Any, options: AwsOptions) -> Answer:
    """Sign sts:GetCallerIdentity with the found pair: live, dead (why), or the check failed."""
    if f.key_id.startswith("ASIA") and f.session_token is None:
        return NO_SESSION_TOKEN  # nothing failed: keyscan cannot sign with it
    try:
        sts = client(session, "sts", options, **_credentials(f.key_id, f.secret,
                                                             f.session_token))
        identity = sts.get_caller_identity()
    except Exception as exc:
        code = error_code(exc)
        if code in _DEAD:
            return Answer(live=False, note=f"not live: {_DEAD[code]}")
        return Answer(error=describe(exc, "sts:GetCallerIdentity with the found key"))
    return Answer(live=True, arn=str(identity.get("Arn", "")))


def _credentials(key_id: str, secret: Secret | None, token: Secret | None) -> dict[str, str]:
    # The one place outside the report layer that unwraps a Secret: signing needs it.
    creds = {"aws_access_key_id": key_id,
             "aws_secret_access_key": secret.reveal() if secret is not None else ""}
    if token is not None:
        creds["aws_session_token"] = token.reveal()
    return creds
