"""Offline attribution: no network, no boto3 — ours / foreign / canary / undecodable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aws_helpers import env_file, fake_key_id, fake_secret, json_findings, make_repo, run_cli

from keyscan.aws import deactivate
from keyscan.aws.canaries import CANARY_ACCOUNTS
from keyscan.aws.session import Operator
from keyscan.model import Finding, Location, Ownership, Status

OURS, THEIRS = "111122223333", "444455556666"
CANARY = next(iter(CANARY_ACCOUNTS))


@pytest.fixture
def keys() -> dict[str, str]:
    return {"ours": fake_key_id(OURS), "foreign": fake_key_id(THEIRS),
            "canary": fake_key_id(CANARY), "old": fake_key_id(None)}


@pytest.fixture
def four_keys_repo(tmp_path: Path, keys: dict[str, str]) -> Path:
    return make_repo(tmp_path / "repo", {f"{name}.env": env_file(key, fake_secret())
                                         for name, key in keys.items()})


def test_every_key_is_classified_offline(capsys: pytest.CaptureFixture[str],
                                         four_keys_repo: Path, keys: dict[str, str]) -> None:
    code, out, err = run_cli(capsys, "scan", str(four_keys_repo), "-f", "json",
                             "--our-account", OURS)
    found = json_findings(out)
    assert code == 1
    assert {name: found[key]["classification"] for name, key in keys.items()} == {
        "ours": "ours", "foreign": "foreign", "canary": "canary", "old": "unknown"}
    assert found[keys["ours"]]["account"] == OURS
    assert found[keys["old"]]["account"] is None
    assert all(f["ownership"] is None for f in found.values())  # nothing was asked of AWS
    assert f"{keys['canary']}: canary token of Thinkst" in err
    assert "never sends it to AWS" in err


def test_without_our_accounts_only_canaries_are_known(capsys: pytest.CaptureFixture[str],
                                                      four_keys_repo: Path,
                                                      keys: dict[str, str]) -> None:
    _, out, _ = run_cli(capsys, "scan", str(four_keys_repo), "-f", "json")
    found = json_findings(out)
    assert found[keys["canary"]]["classification"] == "canary"
    assert found[keys["ours"]]["classification"] == "unknown"


def test_text_report_says_canary_and_unknown_account(capsys: pytest.CaptureFixture[str],
                                                     four_keys_repo: Path,
                                                     keys: dict[str, str]) -> None:
    _, out, _ = run_cli(capsys, "scan", str(four_keys_repo), "--our-account",
                        f"{OURS},{THEIRS}")
    assert "class    canary" in out
    assert "account unknown (older key ID)" in out
    assert out.count("class    ours") == 2  # both listed accounts are ours


def test_extra_canary_account(capsys: pytest.CaptureFixture[str], four_keys_repo: Path,
                              keys: dict[str, str]) -> None:
    _, out, _ = run_cli(capsys, "scan", str(four_keys_repo), "-f", "json",
                        "--canary-account", THEIRS)
    assert json_findings(out)[keys["foreign"]]["classification"] == "canary"


def test_bad_account_id_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                         four_keys_repo: Path) -> None:
    code, _, err = run_cli(capsys, "scan", str(four_keys_repo), "--our-account", "12345")
    assert code == 2
    assert "not an AWS account ID: '12345'" in err


def test_scan_without_aws_flags_never_imports_boto3(four_keys_repo: Path) -> None:
    probe = ("import sys\nfrom keyscan.cli import main\n"
             "for argv in (['--version'], ['scan', sys.argv[1], '--our-account', "
             f"'{OURS}']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    done = subprocess.run([sys.executable, "-c", probe, str(four_keys_repo)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def _finding(key_id: str, own: Ownership) -> Finding:
    return Finding(rule_id="aws-access-key-id", description="", severity="high",
                   status=Status.LEAK, location=Location("a.env"), line=1, column=1,
                   key_id=key_id, ownership=own)


def test_plan_never_acts_on_root_foreign_unchecked_or_canary_keys() -> None:
    me = Operator(account=OURS, arn=f"arn:aws:iam::{OURS}:user/ops", key_id="")
    mine = Ownership(classification="ours", account=OURS, checked=True, confirmed=True,
                     user="ci", status="Active")
    cases = {
        "root": Ownership(classification="ours", account=OURS, checked=True, confirmed=True,
                          root=True, user="<root_account>"),
        "foreign": Ownership(classification="foreign", account=THEIRS, checked=True),
        "unchecked": Ownership(classification="ours", account=OURS),
        "canary": Ownership(classification="canary", account=CANARY),
        "mine": mine,
    }
    steps = deactivate.plan([_finding(name, own) for name, own in cases.items()], me,
                            frozenset())
    acting = {s.key_id: s.act for s in steps}
    assert acting == {"root": False, "foreign": False, "unchecked": False, "canary": False,
                      "mine": True}
    reasons = {s.key_id: s.reason for s in steps}
    assert "root-user key" in reasons["root"]
    assert "never touched" in reasons["foreign"]
    assert "--verify" in reasons["unchecked"]
