"""--verify against the local IAM: owner, status, foreign keys, canaries, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_helpers import (
    DEFAULT_ACCOUNT,
    OTHER_ACCOUNT,
    Iam,
    env_file,
    fake_key_id,
    fake_secret,
    json_findings,
    make_repo,
    run_cli,
)

from keyscan.aws.canaries import CANARY_ACCOUNTS


def test_verify_names_the_owner_of_our_key(iam: Iam, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("ci-deployer")
    repo = make_repo(tmp_path / "repo", {"deploy.env": env_file(key["AccessKeyId"])})
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify", "-f", "json")
    finding = json_findings(out)[key["AccessKeyId"]]
    own = finding["ownership"]
    assert code == 1, err
    assert finding["classification"] == "ours"
    assert own["confirmed"] is True
    assert own["user"] == "ci-deployer"
    assert own["arn"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/ci-deployer"
    assert own["status"] == "Active"
    assert own["key_count"] == 1
    assert own["created"].startswith("20")
    assert own["error"] == ""


def test_verify_says_when_rotation_first_needs_a_key_deleted(
        iam: Iam, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("app")
    iam.new_key("app")
    repo = make_repo(tmp_path / "repo", {"app.env": env_file(key["AccessKeyId"])})
    _, out, _ = run_cli(capsys, "scan", str(repo), "--verify")
    assert "app already has 2 access keys (IAM allows 2)" in out
    assert "delete one before creating the replacement" in out


def test_foreign_and_unknown_keys_are_not_confirmed(iam: Iam, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    theirs = iam.new_key("bob", account=OTHER_ACCOUNT)["AccessKeyId"]
    nowhere = fake_key_id(DEFAULT_ACCOUNT)  # decodes to our account, but IAM never made it
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(theirs),
                                         "b.env": env_file(nowhere)})
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify", "-f", "json")
    found = json_findings(out)
    assert code == 1, err
    assert found[theirs]["classification"] == "foreign"
    assert found[theirs]["ownership"]["account"] == OTHER_ACCOUNT
    assert found[theirs]["ownership"]["confirmed"] is False
    assert found[nowhere]["ownership"]["confirmed"] is False
    assert f"not found in the operator's account {DEFAULT_ACCOUNT}" in \
        found[nowhere]["ownership"]["notes"]


def test_canary_keys_are_never_sent_to_aws(iam: Iam, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    iam.record()
    canary = fake_key_id(next(iter(CANARY_ACCOUNTS)))
    ours = iam.new_key("ci")
    repo = make_repo(tmp_path / "repo", {
        "canary.env": env_file(canary, fake_secret()),
        "ours.env": env_file(ours["AccessKeyId"]),
    })
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify", "--verify-live",
                             "--deactivate", "--yes", "-f", "json")
    found = json_findings(out)
    assert code == 1, err
    assert iam.sent, "the other key was checked"
    assert not [body for _, body in iam.sent if canary in body]
    assert found[canary]["ownership"] is None
    assert "never sends it to AWS" in err
    assert iam.status(ours) == "Inactive"


def test_throttling_is_retried_and_recovered(iam: Iam, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("ci")
    iam.fail("GetAccessKeyLastUsed", "Throttling", times=1)
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(key["AccessKeyId"])})
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify", "-f", "json",
                             "--aws-max-attempts", "2")
    assert code == 1, err
    assert json_findings(out)[key["AccessKeyId"]]["ownership"]["user"] == "ci"
    assert len(iam.calls("GetAccessKeyLastUsed")) == 2  # throttled once, then answered


def test_throttling_that_never_ends_is_reported(iam: Iam, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("ci")
    iam.fail("GetAccessKeyLastUsed", "Throttling")
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(key["AccessKeyId"])})
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify", "-f", "json",
                             "--aws-max-attempts", "2")
    assert code == 3
    assert "kept throttling iam:GetAccessKeyLastUsed" in err
    assert json_findings(out)[key["AccessKeyId"]]["ownership"]["confirmed"] is False


def test_access_denied_is_one_clear_message_and_the_report_stays(
        iam: Iam, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = [iam.new_key("ci")["AccessKeyId"], iam.new_key("web")["AccessKeyId"]]
    iam.use_operator(iam.new_key("intern"))  # no policy: may only ask who it is
    iam.auth_on()
    repo = make_repo(tmp_path / "repo", {f"{i}.env": env_file(k) for i, k in enumerate(keys)})
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify", "-f", "json")
    assert code == 3
    assert set(json_findings(out)) == set(keys)
    errors = [line for line in err.splitlines() if line.startswith("keyscan: error:")]
    assert len(errors) == 2  # one per operation, each naming how many keys it hit
    assert all("access denied" in line and "(2 keys)" in line for line in errors)
    assert any("iam:GetAccessKeyLastUsed" in line for line in errors)


def test_missing_credentials_are_reported_clearly(iam: Iam, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    key = iam.new_key("ci")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(key["AccessKeyId"])})
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify", "-f", "json")
    assert code == 3
    assert "no usable AWS credentials" in err
    assert "--profile" in err
    assert key["AccessKeyId"] in json_findings(out)


def test_unknown_profile_is_reported_clearly(iam: Iam, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("ci")
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(key["AccessKeyId"])})
    code, _, err = run_cli(capsys, "scan", str(repo), "--verify", "--profile", "nope")
    assert code == 3
    assert "AWS profile 'nope' not found" in err


def test_no_key_ids_means_no_aws_calls(iam: Iam, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    iam.record()
    repo = make_repo(tmp_path / "repo", {"README": "nothing here\n"})
    code, _, _ = run_cli(capsys, "scan", str(repo), "--verify", "--deactivate", "--yes")
    assert code == 0
    assert iam.sent == []


def test_json_ownership_is_serialisable_and_secret_free(
        iam: Iam, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("ci")
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(key["AccessKeyId"],
                                                           key["SecretAccessKey"])})
    _, out, err = run_cli(capsys, "scan", str(repo), "--verify", "--verify-live", "-f", "json")
    assert key["SecretAccessKey"] not in out + err
    assert json.loads(out)["findings"][0]["ownership"]["live"] is True
