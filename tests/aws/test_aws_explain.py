"""`keyscan explain KEY --verify` against the local IAM: whose key, its status, what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_helpers import DEFAULT_ACCOUNT, Iam, env_file, make_repo, run_cli


def test_a_confirmed_own_key_gets_the_rotation_steps(iam: Iam, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("ci-deployer")
    kid = key["AccessKeyId"]
    repo = make_repo(tmp_path / "repo", {"deploy.env": env_file(kid, key["SecretAccessKey"])})

    code, out, err = run_cli(capsys, "explain", kid, str(repo), "--verify")

    assert code == 0, err
    assert key["SecretAccessKey"] not in out
    assert "class       ours (confirmed by IAM)" in out
    assert f"owner       arn:aws:iam::{DEFAULT_ACCOUNT}:user/ci-deployer; Active; 1 key(s)" in out
    steps = out.split("Next steps:")[1].splitlines()[1:]
    assert steps[0].startswith("  1. Deactivate it now: `aws iam update-access-key --user-name "
                               f"ci-deployer --access-key-id {kid} --status Inactive`")
    assert steps[1].startswith("  2. Rotate: `aws iam create-access-key --user-name "
                               "ci-deployer` — the new secret is shown only once, at creation")
    assert steps[2].startswith("  3. Delete the old key once nothing breaks: `aws iam "
                               f"delete-access-key --user-name ci-deployer --access-key-id {kid}`")
    assert steps[3].startswith("  4. Remove it from deploy.env")


def test_an_inactive_key_skips_deactivation(iam: Iam, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("old-app")
    iam.client("iam").update_access_key(UserName="old-app", AccessKeyId=key["AccessKeyId"],
                                        Status="Inactive")
    repo = make_repo(tmp_path / "repo", {"app.env": env_file(key["AccessKeyId"])})

    code, out, _ = run_cli(capsys, "explain", key["AccessKeyId"], str(repo), "--verify",
                           "-f", "json")

    doc = json.loads(out)
    assert code == 0
    assert doc["ownership"]["status"] == "Inactive"
    assert doc["next_steps"][0].startswith("Already inactive in IAM")
    assert not any("update-access-key" in s for s in doc["next_steps"])
