"""Helpers for the AWS tests: fake keys made at run time, real repositories, the local IAM."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import string
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyscan.aws import session as aws_session
from keyscan.aws.demo import LocalIam
from keyscan.cli import main

DEFAULT_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "222233334444"
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def fake_key_id(account: str | None, prefix: str = "AKIA") -> str:
    """A key ID that encodes `account` the way AWS does (None: an older, undecodable ID)."""
    if account is None:
        return prefix + "I" + "".join(secrets.choice(_B32) for _ in range(15))
    high = (1 << 47) | (int(account) << 7) | secrets.randbelow(128)
    raw = high.to_bytes(6, "big") + secrets.token_bytes(4)
    return prefix + base64.b32encode(raw).decode()


def fake_secret() -> str:
    alphabet = string.ascii_letters + string.digits + "/+"
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(40))
        if any(c.isdigit() for c in value) and any(c.isupper() for c in value) \
                and any(c.islower() for c in value):
            return value


def env_file(key_id: str, secret: str | None = None) -> str:
    text = f"AWS_ACCESS_KEY_ID={key_id}\n"
    if secret is not None:
        text += f"AWS_SECRET_ACCESS_KEY={secret}\n"
    return text


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A real git repository with `files` committed."""
    root.mkdir(parents=True, exist_ok=True)
    git = ["git", "-C", str(root), "-c", "user.name=Test", "-c", "user.email=t@example.com",
           "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "add config"], check=True)
    return root


class Iam:
    """Test-side access to the local IAM: create users and keys, read state, inject faults."""

    def __init__(self, server: LocalIam, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.monkeypatch = monkeypatch
        self.sent: list[tuple[str, str]] = []  # (operation, body) keyscan sent
        self.signers: list[str] = []  # the access key ID that signed each request
        self._faults: list[Callable[[str, str], Any]] = []
        self._hooked = False

    def client(self, service: str, account: str | None = None, **kwargs: Any) -> Any:
        import boto3

        c = boto3.client(service, **kwargs)
        if account is not None:
            def pick_account(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = account
            c.meta.events.register("before-sign.*.*", pick_account)
        return c

    def new_key(self, user: str, account: str | None = None) -> dict[str, str]:
        iam = self.client("iam", account)
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_user(UserName=user)
        key: dict[str, str] = iam.create_access_key(UserName=user)["AccessKey"]
        return key

    def status(self, key: dict[str, str], account: str | None = None) -> str:
        keys = self.client("iam", account).list_access_keys(
            UserName=key["UserName"])["AccessKeyMetadata"]
        return next(str(k["Status"]) for k in keys if k["AccessKeyId"] == key["AccessKeyId"])

    def use_operator(self, key: dict[str, str]) -> None:
        """Run keyscan as the IAM user owning `key` (its account follows the key)."""
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])

    def auth_on(self) -> None:
        self.server.post("/moto-api/reset-auth", b"0")

    def record(self) -> None:
        """Record every request keyscan's own clients send (operation, body)."""
        if self._hooked:
            return
        self._hooked = True
        original = aws_session.boto_session

        def hooked(options: aws_session.AwsOptions) -> Any:
            s = original(options)
            s.events.register("before-send", self._before_send)
            return s
        self.monkeypatch.setattr(aws_session, "boto_session", hooked)

    def fail(self, operation: str, code: str, times: int = 1_000_000, status: int = 400,
             when: str = "") -> None:
        """Answer `operation` (only requests whose body holds `when`) with an AWS error."""
        self.record()
        left = [times]

        def fault(op: str, body: str) -> Any:
            if op != operation or when not in body or left[0] <= 0:
                return None
            left[0] -= 1
            return _error_response(code, status)
        self._faults.append(fault)

    def on_send(self, operation: str, action: Callable[[], None], when: str = "") -> None:
        """Run `action` as keyscan sends `operation` (a request whose body holds `when`),
        once: the world changing under a run (a disk filling up), at a known step."""
        self.record()
        left = [1]

        def hook(op: str, body: str) -> Any:
            if op == operation and when in body and left[0]:
                left[0] -= 1
                action()
            return None
        self._faults.append(hook)

    def _before_send(self, request: Any, **_: Any) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        op = next((p.split("=", 1)[1] for p in body.split("&") if p.startswith("Action=")), "")
        self.sent.append((op, body))
        auth = str(request.headers.get("Authorization", b""), "utf-8", "replace") \
            if isinstance(request.headers.get("Authorization"), bytes) \
            else str(request.headers.get("Authorization", ""))
        self.signers.append(auth.partition("Credential=")[2].partition("/")[0])
        for fault in self._faults:
            response = fault(op, body)
            if response is not None:
                return response
        return None

    def calls(self, operation: str) -> list[str]:
        return [body for op, body in self.sent if op == operation]


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def _error_response(code: str, status: int) -> Any:
    from botocore.awsrequest import AWSResponse

    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>simulated {code}</Message></Error>"
            "<RequestId>keyscan-test</RequestId></ErrorResponse>").encode()
    return AWSResponse("http://127.0.0.1/", status, {"Content-Type": "text/xml"}, _Raw(body))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_findings(out: str) -> dict[str, dict[str, Any]]:
    """The JSON report's findings by key ID."""
    return {f["key_id"]: f for f in json.loads(out)["findings"] if f["key_id"]}
