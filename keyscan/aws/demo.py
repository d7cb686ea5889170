"""`keyscan demo`: the whole AWS workflow against a local emulated IAM, no account needed.

Starts moto's server on a free 127.0.0.1 port, creates a user and a key, commits
the key into a temporary repository, scans it with --verify --deactivate --yes,
shows the audit log, reactivates the key, and stops the server. Nothing leaves the
machine: the AWS environment is pointed at the local server for the duration.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from keyscan.errors import KeyscanError

# Environment that could send boto3 anywhere but the local server, or to a real profile.
_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
            "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS", "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moto_server_path() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        raise KeyscanError("the demo needs moto's server: pip install 'moto[server]'")
    return found


class LocalIam:
    """moto_server on a free loopback port: started, polled until ready, stopped by PID."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalIam:
        self._proc = subprocess.Popen(
            [moto_server_path(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise KeyscanError(f"moto_server exited with code {self._proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise KeyscanError(f"moto_server did not answer on {self.url} within 15 s")

    def post(self, path: str, body: bytes = b"", content_type: str = "text/plain") -> None:
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=5):
            pass

    def reset(self) -> None:
        self.post("/moto-api/reset")

    def env(self, config_dir: Path) -> dict[str, str]:
        """Environment that points boto3 here, with dummy credentials and no real config."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "local-demo-operator",
            "AWS_SECRET_ACCESS_KEY": "local-demo-operator-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(config_dir / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "credentials"),
        }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*values, *_CLEARED)}
    for k in _CLEARED:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="keyscan-demo-") as tmp, LocalIam() as iam_server:
        base = Path(tmp)
        with environment(iam_server.env(base)):
            return _walkthrough(iam_server, base, out)


def _say(out: TextIO, text: str) -> None:
    out.write(f"\n== {text}\n")
    out.flush()


def _walkthrough(server: LocalIam, base: Path, out: TextIO) -> int:
    import boto3

    from keyscan.cli import main

    _say(out, f"1. A local emulated IAM (moto) is listening on {server.url}")
    iam = boto3.client("iam")
    operator = _new_key(iam, "keyscan-operator")
    os.environ["AWS_ACCESS_KEY_ID"] = operator["AccessKeyId"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = operator["SecretAccessKey"]
    out.write("   keyscan runs as IAM user keyscan-operator (its own key is never touched)\n")
    leaked = _new_key(iam, "ci-deployer")
    key_id = leaked["AccessKeyId"]
    out.write(f"   created IAM user ci-deployer with access key {key_id}\n")

    _say(out, "2. Someone commits that key into a repository")
    repo = _commit_key(base / "repo", leaked)
    out.write(f"   {repo}/deploy.env committed\n")

    log = base / "audit.jsonl"
    _say(out, "3. keyscan scan --verify --deactivate --yes  (plan and actions, then the report)")
    out.flush()
    with redirect_stderr(out):  # one readable stream for the walkthrough
        code = main(["scan", str(repo), "--verify", "--deactivate", "--yes", "--no-color",
                     "--audit-log", str(log)])
    out.write(f"   exit code {code} (1: leaks found)\n")
    out.write(f"   IAM now says the key is {_status(iam, key_id)}\n")

    _say(out, f"4. The audit log ({log}, mode {oct(log.stat().st_mode & 0o777)})")
    out.write(log.read_text(encoding="utf-8"))

    _say(out, f"5. keyscan reactivate {key_id} --yes (undo)")
    out.flush()
    undo = main(["reactivate", key_id, "--yes", "--audit-log", str(log)])
    out.write(f"   IAM now says the key is {_status(iam, key_id)}\n")
    ok = code == 1 and undo == 0 and _status(iam, key_id) == "Active"
    _say(out, "Done: the local IAM is stopped and the temporary files removed."
         if ok else "The demo did not go as expected: see the messages above.")
    return 0 if ok else 3


def _new_key(iam: Any, user: str) -> dict[str, str]:
    iam.create_user(UserName=user)
    key: dict[str, str] = iam.create_access_key(UserName=user)["AccessKey"]
    return key


def _status(iam: Any, key_id: str) -> str:
    keys = iam.list_access_keys(UserName="ci-deployer")["AccessKeyMetadata"]
    return next((str(k["Status"]) for k in keys if k["AccessKeyId"] == key_id), "missing")


def _commit_key(repo: Path, key: dict[str, str]) -> Path:
    repo.mkdir()
    (repo / "deploy.env").write_text(
        f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}\n"
        f"AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n", encoding="utf-8")
    git = ["git", "-C", str(repo), "-c", "user.name=Demo", "-c", "user.email=demo@example.com",
           "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "deploy.env"], ["commit", "-q", "-m", "deploy config"]):
        subprocess.run([*git, *args], check=True, stdout=subprocess.DEVNULL)
    return repo
