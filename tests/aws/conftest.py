"""A real local IAM for the AWS tests: moto's server on a free 127.0.0.1 port.

Started once per session (subprocess.Popen, ready when GET /moto-api/ answers 200),
reset between tests, stopped with SIGTERM. boto3 reaches it through AWS_ENDPOINT_URL;
nothing else is ever contacted. Keys are created at run time, never committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_helpers import Iam

from keyscan.aws.demo import LocalIam


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalIam]:
    with LocalIam() as server:
        yield server


@pytest.fixture
def iam(moto_server: LocalIam, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
        ) -> Iterator[Iam]:
    moto_server.reset()
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_server.env(tmp_path / "aws-config").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield Iam(moto_server, monkeypatch)
    moto_server.post("/moto-api/reset-auth", b"inf")


