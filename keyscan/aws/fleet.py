"""Ownership at fleet scale (`keyscan audit --verify`): every distinct key ID found in any
repository is checked against IAM once, from the client process, at a bounded rate.

The same key leaked in forty repositories is one IAM question, not forty; and one
process asking means one global rate limit, however many workers scanned.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from keyscan.aws import classify
from keyscan.aws.ownership import Checker, Clients
from keyscan.model import Ownership, Status
from keyscan.record import asdict


class TokenBucket:
    """At most `rate` takes per second on average, shared by every thread that takes."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = 1.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(1.0, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = (1.0 - self._tokens) / self.rate
            time.sleep(wait)


@dataclass
class PacedChecker(Checker):
    """keyscan.aws's checker (bounded pool, per-run cache), paced by a token bucket."""

    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(5))

    def check(self, key_id: str, offline: Ownership) -> Ownership:
        self.bucket.take()
        return super().check(key_id, offline)


def askable(row: dict[str, Any]) -> bool:
    return bool(row.get("key_id")) and row.get("status") == Status.LEAK.value \
        and row.get("classification") != classify.CANARY


def verify_rows(rows: list[dict[str, Any]], args: argparse.Namespace) -> tuple[int, list[str]]:
    """Attach IAM's answer to every finding row; (distinct keys checked, error messages).

    Credentials that do not work are one error, and the findings stay as they were.
    """
    from keyscan.aws import session
    from keyscan.aws.cli import _aws
    from keyscan.errors import KeyscanError

    keys = {r["key_id"]: Ownership(classification=r.get("classification") or "unknown",
                                   account=r.get("account") or "")
            for r in rows if askable(r)}
    if not keys:
        return 0, []
    aws = _aws(args)
    try:
        boto = session.boto_session(aws.options)
        operator = session.operator(boto, aws.options)
    except KeyscanError as exc:
        return 0, [str(exc)]
    checker = PacedChecker(Clients.make(boto, aws.options), operator, aws.accounts,
                           workers=aws.options.workers, bucket=TokenBucket(args.aws_rate))
    checker.check_many(keys)
    errors: dict[str, None] = {}
    for row in rows:
        answer = checker.cached(row["key_id"]) if askable(row) else None
        if answer is None:
            continue
        row["ownership"] = asdict(answer)
        row["classification"] = answer.classification
        if answer.root:
            row["severity"] = "critical"
        if answer.error:
            errors[f"{row['key_id']}: {answer.error}"] = None
    return len(keys), list(errors)
