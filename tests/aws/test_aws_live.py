"""--verify-live: sign sts:GetCallerIdentity with the found pair (auth on in moto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_helpers import (
    DEFAULT_ACCOUNT,
    Iam,
    env_file,
    fake_secret,
    json_findings,
    make_repo,
    run_cli,
)


def test_live_and_dead_pairs(iam: Iam, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    alive = iam.new_key("alice")
    wrong = iam.new_key("carol")
    gone = iam.new_key("bob")
    iam.client("iam").delete_access_key(UserName="bob", AccessKeyId=gone["AccessKeyId"])
    iam.auth_on()  # from here on, moto checks every signature
    repo = make_repo(tmp_path / "repo", {
        "alive.env": env_file(alive["AccessKeyId"], alive["SecretAccessKey"]),
        "wrong.env": env_file(wrong["AccessKeyId"], fake_secret()),
        "gone.env": env_file(gone["AccessKeyId"], gone["SecretAccessKey"]),
    })
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify-live", "-f", "json")
    found = {k: f["ownership"] for k, f in json_findings(out).items()}
    assert code == 1, err
    assert found[alive["AccessKeyId"]]["live"] is True
    assert found[alive["AccessKeyId"]]["live_arn"] == \
        f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/alice"
    assert found[wrong["AccessKeyId"]]["live"] is False
    assert "secret does not match" in " ".join(found[wrong["AccessKeyId"]]["notes"])
    assert found[gone["AccessKeyId"]]["live"] is False
    assert "does not know this key ID" in " ".join(found[gone["AccessKeyId"]]["notes"])
    for key in (alive, wrong, gone):
        assert key["SecretAccessKey"] not in out + err


def test_live_check_never_uses_the_operator_credentials(
        iam: Iam, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    iam.record()
    key = iam.new_key("alice")
    repo = make_repo(tmp_path / "repo", {
        "a.env": env_file(key["AccessKeyId"], key["SecretAccessKey"])})
    _, out, _ = run_cli(capsys, "scan", str(repo), "--verify-live", "-f", "json")
    assert json_findings(out)[key["AccessKeyId"]]["ownership"]["live"] is True
    assert [op for op, _ in iam.sent] == ["GetCallerIdentity"]
    assert iam.signers == [key["AccessKeyId"]]  # signed with the found pair only


def test_text_report_shows_liveness(iam: Iam, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    key = iam.new_key("alice")
    repo = make_repo(tmp_path / "repo", {
        "a.env": env_file(key["AccessKeyId"], key["SecretAccessKey"])})
    _, out, _ = run_cli(capsys, "scan", str(repo), "--verify-live")
    assert f"live     yes, as arn:aws:iam::{DEFAULT_ACCOUNT}:user/alice" in out


def test_a_live_check_that_fails_is_in_the_findings_json(
        iam: Iam, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--verify-live alone: the text report named the error on the finding, JSON gave
    `ownership: null` (only the run's errors said something failed, for no key)."""
    from aws_helpers import fake_key_id

    temp = fake_key_id(DEFAULT_ACCOUNT, prefix="ASIA")
    key = iam.new_key("alice")
    repo = make_repo(tmp_path / "repo", {
        "temp.env": env_file(temp, fake_secret()),
        "alice.env": env_file(key["AccessKeyId"], key["SecretAccessKey"])})
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify-live", "-f", "json",
                             "--aws-max-attempts", "1")
    assert code == 3, err
    found = {k: f["ownership"] for k, f in json_findings(out).items()}
    assert found[temp]["error"] == ""  # not checked is no failure: a note
    assert "without its session token" in " ".join(found[temp]["notes"])
    assert found[temp]["live"] is None
    assert "cannot reach the AWS endpoint" in found[key["AccessKeyId"]]["error"]
    assert found[key["AccessKeyId"]]["live"] is None


def test_a_temporary_key_without_its_token_is_not_checked_and_not_a_failure(
        iam: Iam, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ASIA key found without its session token cannot be signed with: it was counted
    as a failed AWS step (exit 3, "an AWS step failed") although nothing failed. It is a
    note on the finding; the exit code follows the findings."""
    from aws_helpers import fake_key_id

    temp = fake_key_id(DEFAULT_ACCOUNT, prefix="ASIA")
    key = iam.new_key("alice")
    repo = make_repo(tmp_path / "repo", {
        "temp.env": env_file(temp, fake_secret()),
        "alice.env": env_file(key["AccessKeyId"], key["SecretAccessKey"])})
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify-live", "-f", "json")
    assert code == 1, err
    assert json.loads(out)["errors"] == [] and "error" not in err
    found = {k: f["ownership"] for k, f in json_findings(out).items()}
    assert found[temp]["live"] is None and found[temp]["error"] == ""
    assert any("liveness not checked" in n and "session token" in n
               for n in found[temp]["notes"])
    assert found[key["AccessKeyId"]]["live"] is True
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify-live")
    assert code == 1, err
    assert "note     liveness not checked" in out
    assert "error    " not in out


def test_a_live_check_that_is_throttled_is_still_a_failure_beside_an_unchecked_key(
        iam: Iam, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real failures still give exit 3: a GetCallerIdentity AWS kept throttling."""
    from aws_helpers import fake_key_id

    temp = fake_key_id(DEFAULT_ACCOUNT, prefix="ASIA")
    key = iam.new_key("alice")
    repo = make_repo(tmp_path / "repo", {
        "temp.env": env_file(temp, fake_secret()),
        "alice.env": env_file(key["AccessKeyId"], key["SecretAccessKey"])})
    iam.fail("GetCallerIdentity", "Throttling")
    code, out, err = run_cli(capsys, "scan", str(repo), "--verify-live", "-f", "json",
                             "--aws-max-attempts", "1")
    assert code == 3, err
    found = {k: f["ownership"] for k, f in json_findings(out).items()}
    assert "kept throttling sts:GetCallerIdentity" in found[key["AccessKeyId"]]["error"]
    assert found[temp]["error"] == ""
    assert json.loads(out)["errors"] == [found[key["AccessKeyId"]]["error"]]
