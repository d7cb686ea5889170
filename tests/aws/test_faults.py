"""AWS faults during verify and deactivate, injected with botocore event hooks on the local IAM.

Throttling storms, HTTP 500s, read timeouts, AccessDenied and expired credentials arriving
mid-run, and Ctrl-C mid-run. Whatever happens: no key that is not ours is touched, no key
is changed twice, the audit log records every change made (and every failed attempt),
and the exit code says something went wrong. Already covered elsewhere:
test_aws_verify.py (throttling during --verify, recovered or not; AccessDenied on
every look-up; missing credentials) and test_aws_deactivate.py (AccessDenied on one
key's UpdateAccessKey).
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import OTHER_ACCOUNT, Iam, _error_response, env_file, make_repo, run_cli

OURS = ("alpha", "bravo", "charlie")


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries still happen, as many as configured; only botocore's sleeps are skipped."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)


class World:
    """Three keys of ours and one of another account, leaked in one repository."""

    def __init__(self, iam: Iam, tmp_path: Path) -> None:
        self.iam = iam
        self.keys = {user: iam.new_key(user) for user in OURS}
        self.foreign = iam.new_key("partner", account=OTHER_ACCOUNT)
        files = {f"{i}-{user}.env": env_file(k["AccessKeyId"], k["SecretAccessKey"])
                 for i, (user, k) in enumerate(self.keys.items())}
        files["9-partner.env"] = env_file(self.foreign["AccessKeyId"])
        self.repo = make_repo(tmp_path / "repo", files)
        self.log = tmp_path / "audit.jsonl"
        self.faulted: list[tuple[str, str]] = []  # requests answered by a fault, not IAM
        # (operation, body, SDK invocation id: the same for each retry of one call)
        self.reached: list[tuple[str, str, str]] = []
        iam.record()
        from keyscan.aws import session as aws_session

        recording = aws_session.boto_session
        seen = [0]

        def record_reached(request: Any, **_: Any) -> None:
            faulted = len(self.faulted) > seen[0]  # the fault hook ran just before this one
            seen[0] = len(self.faulted)
            if not faulted:
                op, body = self.iam.sent[-1]
                self.reached.append((op, body, str(request.headers.get(
                    "amz-sdk-invocation-id", ""))))

        def with_recorder(options: Any) -> Any:
            s = recording(options)
            s.events.register("before-send", record_reached)
            return s
        iam.monkeypatch.setattr(aws_session, "boto_session", with_recorder)

    def key_id(self, user: str) -> str:
        return self.keys[user]["AccessKeyId"]

    def inject(self, fault: Callable[[str, str], Any]) -> None:
        def recorded(op: str, body: str) -> Any:
            response = fault(op, body)
            if response is not None:
                self.faulted.append((op, body))
            return response
        self.iam._faults.append(recorded)

    def deactivate(self, capsys: pytest.CaptureFixture[str], *extra: str
                   ) -> tuple[int, str, str]:
        return run_cli(capsys, "deactivate", str(self.repo), "--yes", "--audit-log",
                       str(self.log), "--aws-max-attempts", "3", *extra)

    def entries(self) -> list[dict[str, str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def applied_updates(self) -> Counter[str]:
        """UpdateAccessKey calls that reached IAM, per key ID (an SDK retry of one call
        after a lost answer is the same call)."""
        calls = {(self._key_in(body), call) for op, body, call in self.reached
                 if op == "UpdateAccessKey"}
        return Counter(key for key, _ in calls)

    def _key_in(self, body: str) -> str:
        return next(k["AccessKeyId"] for k in [*self.keys.values(), self.foreign]
                    if k["AccessKeyId"] in body)

    def check_invariants(self) -> None:
        """What must hold after any run, whatever failed."""
        foreign = self.foreign["AccessKeyId"]
        assert self.iam.status(self.foreign, account=OTHER_ACCOUNT) == "Active"
        assert not [b for _, b in self.iam.sent if foreign in b and "Update" in b]
        applied = self.applied_updates()
        assert all(n == 1 for n in applied.values()), applied  # never twice
        entries = self.entries()
        assert foreign not in {e["key_id"] for e in entries}
        ok = Counter(e["key_id"] for e in entries
                     if e["result"] == "ok" and e["action"] == "deactivate")
        assert all(n == 1 for n in ok.values()), ok
        for user, key in self.keys.items():
            state = self.iam.status(key)
            # the audit log is complete: a key is Inactive exactly when an ok entry says so
            assert (state == "Inactive") == (ok[key["AccessKeyId"]] == 1), (user, state)
            assert (state == "Inactive") == (applied[key["AccessKeyId"]] == 1), (user, state)


@pytest.fixture
def world(iam: Iam, tmp_path: Path) -> World:
    return World(iam, tmp_path)


def after(n: int, op: str, fault: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
    """`fault` for every `op` request after the first `n` got through."""
    seen = [0]

    def maybe(o: str, body: str) -> Any:
        if o != op:
            return None
        seen[0] += 1
        return fault(o, body) if seen[0] > n else None
    return maybe


def error(code: str, status: int = 400) -> Callable[[str, str], Any]:
    return lambda op, body: _error_response(code, status)


def for_ops(ops: tuple[str, ...], fault: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
    return lambda op, body: fault(op, body) if op in ops else None


def read_timeout(op: str, body: str) -> Any:
    from botocore.exceptions import ReadTimeoutError

    raise ReadTimeoutError(endpoint_url="http://127.0.0.1/")


def test_a_throttling_storm_fails_cleanly(world: World,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    world.inject(for_ops(("UpdateAccessKey",), error("Throttling")))
    code, out, _ = world.deactivate(capsys)
    assert code == 3
    assert out.count("kept throttling iam:UpdateAccessKey") == 3
    world.check_invariants()
    assert [e["result"] for e in world.entries()] == ["failed"] * 3
    assert len(world.iam.calls("UpdateAccessKey")) == 9  # 3 attempts each, none reached IAM


def test_a_throttled_status_read_is_named_not_the_update_it_came_before(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Deactivation reads each key's status (ListAccessKeys) before UpdateAccessKey: a
    throttled read was reported as "kept throttling iam:UpdateAccessKey", a call never
    made. The ownership checks (which list keys too) run before the audit log exists."""
    world.inject(lambda op, body: _error_response("Throttling", 400)
                 if op == "ListAccessKeys" and world.log.exists() else None)
    code, out, _ = world.deactivate(capsys)
    assert code == 3
    assert out.count("kept throttling iam:ListAccessKeys") == 3
    assert "UpdateAccessKey" not in out
    assert world.iam.calls("UpdateAccessKey") == []
    world.check_invariants()
    entries = world.entries()
    assert [e["result"] for e in entries] == ["failed"] * 3
    assert all("iam:ListAccessKeys" in e["error"] and "UpdateAccessKey" not in e["error"]
               for e in entries)
    assert all(world.iam.status(k) == "Active" for k in world.keys.values())


def test_a_throttled_policy_read_is_named_not_the_quarantine_it_came_before(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Quarantine reads the user's policy (GetUserPolicy) before PutUserPolicy: a
    throttled read was reported as "kept throttling iam:PutUserPolicy"."""
    world.inject(for_ops(("GetUserPolicy",), error("Throttling")))
    code, out, _ = world.deactivate(capsys, "--quarantine")
    assert code == 3
    assert out.count("kept throttling iam:GetUserPolicy") == 3
    assert "PutUserPolicy" not in out
    assert world.iam.calls("PutUserPolicy") == []
    world.check_invariants()
    failed = [e for e in world.entries() if e["result"] == "failed"]
    assert [e["action"] for e in failed] == ["quarantine"] * 3
    assert all("iam:GetUserPolicy" in e["error"] for e in failed)


def test_throttling_that_eases_is_retried_to_success(world: World,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    left = [2]  # with 3 attempts a call, each throttled call still gets its answer

    def storm(op: str, body: str) -> Any:
        if op in ("ListAccessKeys", "UpdateAccessKey") and left[0] > 0:
            left[0] -= 1
            return _error_response("Throttling", 400)
        return None
    world.inject(storm)
    code, out, err = world.deactivate(capsys)
    assert code == 0, out + err
    world.check_invariants()
    assert {e["key_id"] for e in world.entries()} == {world.key_id(u) for u in OURS}


def test_http_500s(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    bravo = world.key_id("bravo")
    once = [True]

    def fivehundred(op: str, body: str) -> Any:
        if op != "UpdateAccessKey":
            return None
        if bravo in body:
            return _error_response("InternalFailure", 500)  # never recovers for bravo
        if once[0]:
            once[0] = False
            return _error_response("ServiceUnavailable", 503)  # one blip, retried
        return None
    world.inject(fivehundred)
    code, out, _ = world.deactivate(capsys)
    assert code == 3
    assert "iam:UpdateAccessKey (deactivate) failed: InternalFailure" in out
    world.check_invariants()
    results = {e["key_id"]: e["result"] for e in world.entries()}
    assert results == {world.key_id("alpha"): "ok", bravo: "failed",
                       world.key_id("charlie"): "ok"}


def test_read_timeouts(world: World, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """bravo: every attempt times out before reaching IAM. charlie: IAM makes the change
    but the answer is lost (the timeout hits while reading it)."""
    bravo, charlie = world.key_id("bravo"), world.key_id("charlie")
    world.inject(lambda op, body: read_timeout(op, body)
                 if op == "UpdateAccessKey" and bravo in body else None)
    lose_answer_for(monkeypatch, "UpdateAccessKey", charlie)
    code, out, _ = world.deactivate(capsys)
    assert code == 3
    assert "cannot reach the AWS endpoint for iam:UpdateAccessKey" in out
    world.check_invariants()
    results = {e["key_id"]: e["result"] for e in world.entries()}
    assert results == {world.key_id("alpha"): "ok", bravo: "failed", charlie: "ok"}
    [lost] = [e for e in world.entries() if e["key_id"] == charlie]
    assert "yet IAM now lists the key as Inactive" in lost["error"]
    assert world.iam.status(world.keys["charlie"]) == "Inactive"


def lose_answer_for(monkeypatch: pytest.MonkeyPatch, operation: str, needle: str) -> None:
    """The request reaches IAM and is applied; then reading the answer times out."""
    from botocore.exceptions import ReadTimeoutError

    from keyscan.aws import session as aws_session

    hooked = aws_session.boto_session

    def with_lost_answers(options: Any) -> Any:
        s = hooked(options)
        s.events.register("before-send", remember_body)
        s.events.register(f"before-parse.iam.{operation}", lose_last)
        return s

    last: list[str] = [""]

    def remember_body(request: Any, **_: Any) -> None:
        last[0] = request.body.decode() if isinstance(request.body, bytes) else str(request.body)

    def lose_last(**_: Any) -> None:
        if needle in last[0]:
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1/")

    monkeypatch.setattr(aws_session, "boto_session", with_lost_answers)


def test_read_timeouts_while_checking_ownership_mean_no_action(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    alpha = world.key_id("alpha")
    world.inject(lambda op, body: read_timeout(op, body)
                 if op == "GetAccessKeyLastUsed" and alpha in body else None)
    code, out, err = world.deactivate(capsys)
    assert code == 3
    assert "cannot reach the AWS endpoint" in err
    assert f"skip                     {alpha}" in out  # unconfirmed: never acted on
    world.check_invariants()
    assert world.iam.status(world.keys["alpha"]) == "Active"
    assert not [b for b in world.iam.calls("UpdateAccessKey") if alpha in b]


def test_access_denied_mid_run(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.inject(after(1, "UpdateAccessKey", error("AccessDenied", 403)))
    code, out, _ = world.deactivate(capsys)
    assert code == 3
    assert out.count("access denied for iam:UpdateAccessKey") == 2
    world.check_invariants()
    assert [(e["key_id"], e["result"]) for e in world.entries()] == [
        (world.key_id("alpha"), "ok"), (world.key_id("bravo"), "failed"),
        (world.key_id("charlie"), "failed")]


def test_credentials_expiring_mid_run(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    expired = error("ExpiredToken", 403)
    first_update = [False]

    def expire(op: str, body: str) -> Any:
        if first_update[0]:
            return expired(op, body)  # every call after the first change: expired
        if op == "UpdateAccessKey":
            first_update[0] = True
        return None
    world.inject(expire)
    code, out, _ = world.deactivate(capsys, "--quarantine")
    assert code == 3
    assert "the AWS credentials have expired" in out
    world.check_invariants()
    entries = world.entries()
    assert (entries[0]["key_id"], entries[0]["action"], entries[0]["result"]) == \
        (world.key_id("alpha"), "deactivate", "ok")
    assert all(e["result"] == "failed" for e in entries[1:])
    assert {e["key_id"] for e in entries[1:]} == {world.key_id(u) for u in OURS}
    # the rerun with fresh credentials finishes the job, and changes alpha no more
    world.iam._faults.clear()
    code, out, _ = world.deactivate(capsys, "--quarantine")
    assert code == 0, out
    assert "already-inactive" in out
    world.check_invariants()


# -- Ctrl-C -------------------------------------------------------------------------------


@pytest.fixture
def sigint_default() -> Iterator[None]:
    """Python's own Ctrl-C handling, whatever the test runner installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_deactivation_finishes_the_key_in_progress(
        world: World, capsys: pytest.CaptureFixture[str], sigint_default: None) -> None:
    fired: list[bool] = []

    def ctrl_c_once(op: str, body: str) -> Any:
        if op == "UpdateAccessKey" and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # lets the request through
        return None
    world.iam._faults.append(ctrl_c_once)
    code, out, err = world.deactivate(capsys)
    assert code == 130
    assert "interrupted: 2 key(s) not attempted" in err
    assert out.count("not attempted: interrupted") == 2
    assert [(e["key_id"], e["result"]) for e in world.entries()] == [
        (world.key_id("alpha"), "ok")]
    assert [world.iam.status(world.keys[u]) for u in OURS] == ["Inactive", "Active", "Active"]
    world.check_invariants()


def test_a_second_ctrl_c_aborts_and_the_audit_log_says_the_change_is_unknown(
        world: World, capsys: pytest.CaptureFixture[str], sigint_default: None) -> None:
    def ctrl_c_twice(op: str, body: str) -> Any:
        if op == "UpdateAccessKey":
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return None
    world.iam._faults.append(ctrl_c_twice)
    code, _, err = world.deactivate(capsys)
    assert code == 130
    assert "keyscan: interrupted" in err
    [entry] = world.entries()
    assert (entry["key_id"], entry["result"]) == (world.key_id("alpha"), "failed")
    assert "may or may not have been made" in entry["error"]
    assert [world.iam.status(world.keys[u]) for u in OURS][1:] == ["Active", "Active"]


def test_ctrl_c_during_reactivation(world: World, capsys: pytest.CaptureFixture[str],
                                    sigint_default: None) -> None:
    assert world.deactivate(capsys)[0] == 0
    fired: list[bool] = []

    def ctrl_c_once(op: str, body: str) -> Any:
        if op == "UpdateAccessKey" and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return None
    world.iam._faults.append(ctrl_c_once)
    code, out, _ = run_cli(capsys, "reactivate", "--from-audit-log", str(world.log), "--yes",
                           "--audit-log", str(world.log))
    assert code == 130
    assert out.count("not attempted: interrupted") == 2
    actions = [(e["action"], e["result"]) for e in world.entries()]
    assert actions == [("deactivate", "ok")] * 3 + [("reactivate", "ok")]
    assert sorted(world.iam.status(world.keys[u]) for u in OURS) == \
        ["Active", "Inactive", "Inactive"]
