"""Deactivation end to end: plan, --dry-run, --yes, audit log, idempotence, guards, undo."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from aws_helpers import (
    DEFAULT_ACCOUNT,
    OTHER_ACCOUNT,
    Iam,
    env_file,
    json_findings,
    make_repo,
    run_cli,
)
from repos import commit_all

from keyscan.aws.deactivate import QUARANTINE_POLICY


@pytest.fixture
def leaked(iam: Iam) -> dict[str, str]:
    return iam.new_key("ci-deployer")


@pytest.fixture
def repo(tmp_path: Path, leaked: dict[str, str]) -> Path:
    return make_repo(tmp_path / "repo", {
        "deploy/prod.env": env_file(leaked["AccessKeyId"], leaked["SecretAccessKey"])})


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "keyscan.jsonl"


def entries(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_without_yes_only_the_plan_is_printed(iam: Iam, repo: Path, leaked: dict[str, str],
                                              log: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--audit-log", str(log))
    assert code == 0
    assert f"deactivate               {leaked['AccessKeyId']}" in out
    assert "user ci-deployer, account 123456789012, status Active" in out
    assert "deploy/prod.env:1" in out
    assert "rerun with --yes" in out
    assert iam.status(leaked) == "Active"
    assert not log.exists()


def test_the_plan_names_a_hostile_path_escaped(iam: Iam, leaked: dict[str, str],
                                               tmp_path: Path, log: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The plan says where each key was found: a file name cannot drive the terminal."""
    repo = make_repo(tmp_path / "hostile", {
        "deploy/\x1b[2Jprod.env": env_file(leaked["AccessKeyId"], leaked["SecretAccessKey"])})
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--audit-log", str(log))
    assert code == 0
    assert "found at deploy/\\x1b[2Jprod.env:1" in out
    assert "\x1b" not in out


def test_dry_run_changes_nothing(iam: Iam, repo: Path, leaked: dict[str, str], log: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--dry-run", "--yes",
                           "--audit-log", str(log))
    assert code == 0
    assert "Dry run: nothing changed." in out
    assert "would-deactivate" in out
    assert iam.status(leaked) == "Active"
    assert not log.exists()


def test_yes_deactivates_and_audits(iam: Iam, repo: Path, leaked: dict[str, str], log: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log", str(log))
    assert code == 0, err
    assert iam.status(leaked) == "Inactive"  # moto still accepts inactive keys: ask IAM
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    [entry] = entries(log)
    assert entry["action"] == "deactivate"
    assert entry["key_id"] == leaked["AccessKeyId"]
    assert entry["user"] == "ci-deployer"
    assert entry["account"] == DEFAULT_ACCOUNT
    assert (entry["previous_status"], entry["new_status"], entry["result"]) == \
        ("Active", "Inactive", "ok")
    assert entry["operator_arn"].startswith("arn:aws:")
    assert entry["time"].endswith("+00:00")
    assert leaked["SecretAccessKey"] not in log.read_text() + out + err


def test_second_run_is_idempotent(iam: Iam, repo: Path, leaked: dict[str, str], log: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log", str(log))
    iam.record()
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log", str(log))
    assert code == 0
    assert "already inactive in IAM" in out and "0 of 1 key(s) to deactivate" in out
    assert iam.calls("UpdateAccessKey") == []
    assert len(entries(log)) == 1


def test_deactivate_from_a_saved_report(iam: Iam, repo: Path, leaked: dict[str, str],
                                        log: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    run_cli(capsys, "scan", str(repo), "-f", "json", "-o", str(report))
    code, out, _ = run_cli(capsys, "deactivate", "--report", str(report), "--yes",
                           "--audit-log", str(log))
    assert code == 0
    assert "deactivated" in out
    assert iam.status(leaked) == "Inactive"


def test_scan_and_deactivate_in_one_ci_step(iam: Iam, repo: Path, leaked: dict[str, str],
                                            log: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "scan", str(repo), "--deactivate", "--yes", "-f", "json",
                             "--audit-log", str(log))
    assert code == 1  # leaks found; every action succeeded
    own = json_findings(out)[leaked["AccessKeyId"]]["ownership"]
    assert (own["action"], own["status"]) == ("deactivated", "Inactive")
    assert "Plan:" in err
    assert iam.status(leaked) == "Inactive"


def test_a_foreign_key_is_never_touched(iam: Iam, leaked: dict[str, str], tmp_path: Path,
                                        log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    theirs = iam.new_key("partner", account=OTHER_ACCOUNT)
    repo = make_repo(tmp_path / "repo", {"ours.env": env_file(leaked["AccessKeyId"]),
                                         "theirs.env": env_file(theirs["AccessKeyId"])})
    iam.record()
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--yes", "--quarantine",
                           "--audit-log", str(log))
    assert code == 0
    assert f"not a key of your account {DEFAULT_ACCOUNT}" in out
    assert iam.status(leaked) == "Inactive"
    assert iam.status(theirs, account=OTHER_ACCOUNT) == "Active"
    changes = iam.calls("UpdateAccessKey") + iam.calls("PutUserPolicy")
    assert changes and not [b for b in changes if theirs["AccessKeyId"] in b or "partner" in b]
    assert {e["key_id"] for e in entries(log)} == {leaked["AccessKeyId"]}


def test_lock_out_guard_spares_the_operators_own_key(iam: Iam, tmp_path: Path, log: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    mine = iam.new_key("keyscan-ci")
    iam.use_operator(mine)
    repo = make_repo(tmp_path / "repo", {"ci.env": env_file(mine["AccessKeyId"])})
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--yes", "--quarantine",
                           "--audit-log", str(log))
    assert code == 0
    assert "lock-out guard: keyscan is running with this key" in out
    assert iam.status(mine) == "Active"
    assert not log.exists()


def test_no_quarantine_for_the_operators_own_user(iam: Iam, tmp_path: Path, log: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    iam.use_operator(iam.new_key("keyscan-ci"))
    old = iam.new_key("keyscan-ci")  # the operator's second, leaked key
    repo = make_repo(tmp_path / "repo", {"ci.env": env_file(old["AccessKeyId"])})
    run_cli(capsys, "deactivate", str(repo), "--yes", "--quarantine", "--audit-log", str(log))
    assert iam.status(old) == "Inactive"
    assert iam.client("iam").list_user_policies(UserName="keyscan-ci")["PolicyNames"] == []


def test_quarantine_and_its_undo(iam: Iam, repo: Path, leaked: dict[str, str], log: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    client = iam.client("iam")
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--yes", "--quarantine",
                           "--audit-log", str(log))
    assert code == 0
    assert "quarantined" in out
    policy = client.get_user_policy(UserName="ci-deployer", PolicyName=QUARANTINE_POLICY)
    assert policy["PolicyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert [e["action"] for e in entries(log)] == ["deactivate", "quarantine"]

    # the plan from the audit log gives the key's status, not the quarantine's policy
    _, plan, _ = run_cli(capsys, "reactivate", "--from-audit-log", str(log), "--dry-run")
    assert "status Inactive" in plan and QUARANTINE_POLICY not in plan
    code, out, _ = run_cli(capsys, "reactivate", leaked["AccessKeyId"], "--yes",
                           "--audit-log", str(log))
    assert code == 0
    assert iam.status(leaked) == "Active"
    assert client.list_user_policies(UserName="ci-deployer")["PolicyNames"] == []
    assert [e["action"] for e in entries(log)][2:] == ["reactivate", "unquarantine"]


def test_reactivate_needs_yes(iam: Iam, repo: Path, leaked: dict[str, str], log: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log", str(log))
    code, out, _ = run_cli(capsys, "reactivate", leaked["AccessKeyId"], "--audit-log",
                           str(log))
    assert code == 0
    assert "rerun with --yes" in out
    assert iam.status(leaked) == "Inactive"


def test_reactivate_from_the_audit_log(iam: Iam, leaked: dict[str, str], tmp_path: Path,
                                       log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second = iam.new_key("web")
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(leaked["AccessKeyId"]),
                                         "b.env": env_file(second["AccessKeyId"])})
    run_cli(capsys, "deactivate", str(repo), "--yes", "--quarantine", "--audit-log", str(log))
    assert (iam.status(leaked), iam.status(second)) == ("Inactive", "Inactive")
    code, out, _ = run_cli(capsys, "reactivate", "--from-audit-log", str(log), "--yes",
                           "--audit-log", str(log))
    assert code == 0, out
    assert (iam.status(leaked), iam.status(second)) == ("Active", "Active")
    assert iam.client("iam").list_user_policies(UserName="web")["PolicyNames"] == []
    code, out, _ = run_cli(capsys, "reactivate", "--from-audit-log", str(log), "--yes",
                           "--audit-log", str(log))
    assert (code, out) == (0, "Plan: no keys to reactivate.\n")  # all undone already


def test_one_failed_deactivation_does_not_stop_the_others(
        iam: Iam, leaked: dict[str, str], tmp_path: Path, log: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    second = iam.new_key("web")
    iam.fail("UpdateAccessKey", "AccessDenied", status=403, when=leaked["AccessKeyId"])
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(leaked["AccessKeyId"]),
                                         "b.env": env_file(second["AccessKeyId"])})
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log", str(log))
    assert code == 3
    assert "access denied for iam:UpdateAccessKey" in out
    assert (iam.status(leaked), iam.status(second)) == ("Active", "Inactive")
    results = {e["key_id"]: e["result"] for e in entries(log)}
    assert results == {leaked["AccessKeyId"]: "failed", second["AccessKeyId"]: "ok"}


def test_keys_outside_our_accounts_are_skipped(iam: Iam, repo: Path, leaked: dict[str, str],
                                               log: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--yes", "--our-account",
                           OTHER_ACCOUNT, "--audit-log", str(log))
    assert code == 0
    assert f"account {DEFAULT_ACCOUNT} is not in --our-account" in out
    assert iam.status(leaked) == "Active"


def test_deactivate_without_credentials_changes_nothing_and_says_why(
        iam: Iam, repo: Path, leaked: dict[str, str], log: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log", str(log))
    assert code == 3
    assert err.count("no usable AWS credentials") == 1
    assert iam.status(leaked) == "Active"


def test_quarantine_needs_deactivate(iam: Iam, repo: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "scan", str(repo), "--quarantine")
    assert code == 2
    assert "--quarantine only works with --deactivate" in err


@pytest.mark.parametrize("command", ["deactivate", "scan"])
def test_an_audit_log_that_cannot_be_written_stops_before_any_change(
        iam: Iam, repo: Path, leaked: dict[str, str], tmp_path: Path, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The key was deactivated, then the log failed: a change no audit line (no undo) held."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    log = blocker / "audit.jsonl"
    argv = ["deactivate", str(repo)] if command == "deactivate" \
        else ["scan", str(repo), "--deactivate"]
    code, _, err = run_cli(capsys, *argv, "--yes", "--audit-log", str(log))
    assert code == (2 if command == "deactivate" else 3)
    assert f"cannot write the audit log {log}" in err
    assert "nothing was changed in IAM" in err
    assert iam.status(leaked) == "Active"


def test_reactivate_with_an_audit_log_that_cannot_be_written_changes_nothing(
        iam: Iam, repo: Path, leaked: dict[str, str], log: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log", str(log))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "reactivate", "--from-audit-log", str(log), "--yes",
                           "--audit-log", str(blocker / "audit.jsonl"))
    assert code == 2
    assert "nothing was changed in IAM" in err
    assert iam.status(leaked) == "Inactive"


def _acting_argv(command: str, repo: Path) -> list[str]:
    return {"deactivate": ["deactivate", str(repo)],
            "scan": ["scan", str(repo), "--deactivate"],
            "reactivate": ["reactivate", "--from-audit-log", str(repo.parent / "done.jsonl")],
            }[command]


@pytest.mark.parametrize("command", ["deactivate", "scan", "reactivate"])
def test_the_audit_log_is_never_written_through_a_planted_symlink(
        iam: Iam, repo: Path, leaked: dict[str, str], tmp_path: Path, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--audit-log audit.jsonl` run in a checkout where a commit planted `audit.jsonl`
    as a symbolic link: keyscan appended its audit lines to the file the link points to
    (or created the file a dangling link names). Refused, before any change in IAM."""
    if command == "reactivate":  # something to undo, logged in an ordinary file
        run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log",
                str(repo.parent / "done.jsonl"))
    before = iam.status(leaked)
    victim = tmp_path / "victim.sh"
    victim.write_text("echo precious\n")
    victim.chmod(0o755)
    checkout = make_repo(tmp_path / "checkout", {"README": "hello\n"})
    (checkout / "audit.jsonl").symlink_to(victim)
    (checkout / "dangling.jsonl").symlink_to(tmp_path / "created-by-keyscan")
    for name in ("audit.jsonl", "dangling.jsonl"):
        link = checkout / name
        code, _, err = run_cli(capsys, *_acting_argv(command, repo), "--yes",
                               "--audit-log", str(link))
        assert code == (3 if command == "scan" else 2), err
        assert f"cannot write the audit log {link}: it is a symbolic link" in err
        assert "--audit-log FILE" in err and "nothing was changed in IAM" in err
        assert "Traceback" not in err
    assert iam.status(leaked) == before
    assert victim.read_text() == "echo precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert not (tmp_path / "created-by-keyscan").exists()


@pytest.mark.parametrize("command", ["deactivate", "scan"])
def test_the_audit_log_is_never_written_through_a_linked_folder_of_the_scanned_repository(
        iam: Iam, leaked: dict[str, str], tmp_path: Path, command: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--audit-log logs/audit.jsonl` in a CI checkout where a pull request committed
    `logs` as a symbolic link to a folder (/etc/cron.d): O_NOFOLLOW guards the log's own
    name only, and keyscan created the log in the link's target and appended to it.
    Refused before any change in IAM; a linked folder outside the repository is
    followed as before."""
    target = tmp_path / "cron.d"
    target.mkdir()
    checkout = make_repo(tmp_path / "checkout", {
        "deploy/prod.env": env_file(leaked["AccessKeyId"], leaked["SecretAccessKey"])})
    (checkout / "logs").symlink_to(target)
    commit_all(checkout, "a pull request: logs -> /etc/cron.d")
    monkeypatch.chdir(checkout)
    real = checkout.resolve()
    for log in ("logs/audit.jsonl", str(checkout / "logs" / "audit.jsonl")):
        code, _, err = run_cli(capsys, *_acting_argv(command, Path(".")), "--yes",
                               "--audit-log", log)
        assert code == (3 if command == "scan" else 2), err
        assert f"cannot write the audit log {log}: {real / 'logs'} is a symbolic link (to " \
               f"{target}), a folder of the scanned repository {real}" in err, err
        assert "give a path outside the repository with --audit-log FILE, or remove the " \
               "link" in err and "nothing was changed in IAM" in err
    assert iam.status(leaked) == "Active"
    assert list(target.iterdir()) == []
    outside = tmp_path / "state"
    outside.symlink_to(target)
    code, _, err = run_cli(capsys, *_acting_argv(command, Path(".")), "--yes",
                           "--audit-log", str(outside / "audit.jsonl"))
    assert code == (1 if command == "scan" else 0), err
    assert iam.status(leaked) == "Inactive"
    assert [e["key_id"] for e in entries(target / "audit.jsonl")] == [leaked["AccessKeyId"]]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["deactivate", "reactivate"])
def test_an_audit_log_that_is_not_a_regular_file_is_refused(
        iam: Iam, repo: Path, leaked: dict[str, str], tmp_path: Path, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A named pipe (nobody reading: opening it must not hang) or a device is no log."""
    import os

    if command == "reactivate":
        run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log",
                str(repo.parent / "done.jsonl"))
    before = iam.status(leaked)
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    for path in (Path(os.devnull), fifo):  # pre-fix: the pipe hung the run
        code, _, err = run_cli(capsys, *_acting_argv(command, repo), "--yes",
                               "--audit-log", str(path))
        assert code == 2, err
        assert f"cannot write the audit log {path}: it is not a regular file" in err
        assert "nothing was changed in IAM" in err
    assert iam.status(leaked) == before
    assert stat.S_IMODE(os.stat(os.devnull).st_mode) == 0o666


def test_reactivate_never_sends_a_canary_key_to_aws(iam: Iam, log: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`keyscan reactivate KEY_ID` asked IAM and STS about a canary key: its alarm fired."""
    from aws_helpers import fake_key_id

    from keyscan.aws.canaries import CANARY_ACCOUNTS

    iam.record()
    canary = fake_key_id(next(iter(CANARY_ACCOUNTS)))
    listed = fake_key_id("999988887777")
    code, out, _ = run_cli(capsys, "reactivate", canary, listed, "--yes",
                           "--canary-account", "999988887777", "--audit-log", str(log))
    assert code == 0
    assert out.count("never sent to AWS, never reactivated") == 2
    assert iam.sent, "the operator's identity was asked"
    assert not [body for _, body in iam.sent if canary in body or listed in body]


def test_temporary_keys_are_not_said_to_be_of_another_account(
        iam: Iam, tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ASIA key of the operator's own account was 'not a key of your account 123…
    (it is in account 123…)': the plan must say why it is really skipped."""
    from aws_helpers import fake_key_id, fake_secret

    temp = fake_key_id(DEFAULT_ACCOUNT, prefix="ASIA")
    repo = make_repo(tmp_path / "repo", {"t.env": env_file(temp, fake_secret())})
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--audit-log", str(log))
    assert code == 0
    assert "not a key of your account" not in out
    assert "temporary credentials expire" in out
    code, out, _ = run_cli(capsys, "reactivate", temp, "--audit-log", str(log))
    assert code == 0
    assert "not a key of your account" not in out
    assert "temporary credentials expire" in out


def test_reactivate_leaves_a_root_key_alone(iam: Iam, log: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """IAM names the root user as a key's owner: reactivate planned to act on it (and failed
    on ListAccessKeys for a user '<root_account>')."""
    from aws_helpers import _Raw, fake_key_id
    from botocore.awsrequest import AWSResponse

    root_key = fake_key_id(DEFAULT_ACCOUNT)
    body = (b"<GetAccessKeyLastUsedResponse><GetAccessKeyLastUsedResult>"
            b"<UserName>&lt;root_account&gt;</UserName><AccessKeyLastUsed>"
            b"<ServiceName>N/A</ServiceName><Region>N/A</Region></AccessKeyLastUsed>"
            b"</GetAccessKeyLastUsedResult></GetAccessKeyLastUsedResponse>")

    def root_owner(op: str, sent: str) -> object:
        if op == "GetAccessKeyLastUsed" and root_key in sent:
            return AWSResponse("http://127.0.0.1/", 200, {"Content-Type": "text/xml"},
                               _Raw(body))
        return None
    iam.record()
    iam._faults.append(root_owner)
    code, out, _ = run_cli(capsys, "reactivate", root_key, "--yes", "--audit-log", str(log))
    assert code == 0, out
    assert "root-user key" in out
    assert "0 of 1 key(s) to reactivate" in out
    assert iam.calls("UpdateAccessKey") == [] and iam.calls("ListAccessKeys") == []
    assert not log.exists()


def test_deactivate_applies_the_projects_settings_as_scan_does(
        iam: Iam, leaked: dict[str, str], tmp_path: Path, log: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`keyscan deactivate PATH` read no settings: it deactivated a key whose account the
    project's our_accounts excludes, and a key .keyscanignore accepts (a planted canary
    user of one's own), both of which `keyscan scan --deactivate` leaves alone."""
    planted = iam.new_key("honeypot")
    repo = make_repo(tmp_path / "repo", {
        "deploy/prod.env": env_file(leaked["AccessKeyId"], leaked["SecretAccessKey"]),
        "docs/trap.env": env_file(planted["AccessKeyId"], planted["SecretAccessKey"])})
    _, out, _ = run_cli(capsys, "scan", str(repo), "-f", "json")
    trap = json_findings(out)[planted["AccessKeyId"]]["fingerprint"]
    (repo / ".keyscanignore").write_text(f"{trap}  our own tripwire\n")
    (repo / ".keyscan.yaml").write_text(f'our_accounts: ["{OTHER_ACCOUNT}"]\n')
    for argv in (["scan", str(repo), "--deactivate"], ["deactivate", str(repo)]):
        _, out, err = run_cli(capsys, *argv, "--yes", "--audit-log", str(log))
        plan = out + err
        assert planted["AccessKeyId"] not in plan, argv
        assert f"account {DEFAULT_ACCOUNT} is not in --our-account" in plan, argv
    assert (iam.status(leaked), iam.status(planted)) == ("Active", "Active")
    assert not log.exists()


def test_deactivate_history_acts_on_a_key_removed_from_the_files(
        iam: Iam, leaked: dict[str, str], tmp_path: Path, log: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "repo", {
        "deploy/prod.env": env_file(leaked["AccessKeyId"], leaked["SecretAccessKey"])})
    make_repo(repo, {"deploy/prod.env": "AWS_ACCESS_KEY_ID=${FROM_VAULT}\n"})
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--audit-log", str(log))
    assert (code, out) == (0, "Plan: no keys to deactivate.\n")  # the files hold none
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--history", "--yes",
                           "--audit-log", str(log))
    assert code == 0, out
    assert f"deactivated              {leaked['AccessKeyId']}" in out
    assert iam.status(leaked) == "Inactive"
    code, _, err = run_cli(capsys, "deactivate", "--report", str(log), "--history")
    assert code == 2 and "drop one of them" in err


def test_undo_from_the_log_does_not_reactivate_a_key_keyscan_did_not_switch_off(
        iam: Iam, repo: Path, leaked: dict[str, str], log: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An admin switched the leaked key off by hand; keyscan only quarantined its user.
    Undo from the log reactivated the key too: a leaked key live again."""
    iam.client("iam").update_access_key(UserName="ci-deployer",
                                        AccessKeyId=leaked["AccessKeyId"], Status="Inactive")
    code, out, _ = run_cli(capsys, "deactivate", str(repo), "--quarantine", "--yes",
                           "--audit-log", str(log))
    assert code == 0, out
    assert [e["action"] for e in entries(log)] == ["quarantine"]
    code, out, _ = run_cli(capsys, "reactivate", "--from-audit-log", str(log),
                           "--audit-log", str(log))
    assert f"lift quarantine          {leaked['AccessKeyId']}" in out
    assert "reactivate" not in out.split("\n", 2)[1]
    code, out, _ = run_cli(capsys, "reactivate", "--from-audit-log", str(log), "--yes",
                           "--audit-log", str(log))
    assert code == 0, out
    assert "unquarantined" in out and "reactivated" not in out
    assert iam.status(leaked) == "Inactive"
    assert iam.client("iam").list_user_policies(UserName="ci-deployer")["PolicyNames"] == []
    assert [e["action"] for e in entries(log)] == ["quarantine", "unquarantine"]


@pytest.mark.parametrize("command", ["deactivate", "reactivate"])
def test_an_audit_log_lost_in_the_middle_of_a_run_loses_no_change(
        iam: Iam, leaked: dict[str, str], tmp_path: Path, log: Path, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The log was writable when the run started, then stopped taking lines (its disk
    gone: a folder where the file was) just as IAM switched a key off: keyscan stopped
    with "cannot write the audit log" and no word of the change it had made, and never
    tried the other key. Now the report tells that change in full (the key, its user,
    the switch, how to undo it), no other change is made, and the run exits 3."""
    second = iam.new_key("web")
    repo = make_repo(tmp_path / "repo", {"a.env": env_file(leaked["AccessKeyId"]),
                                         "b.env": env_file(second["AccessKeyId"])})
    if command == "reactivate":
        run_cli(capsys, "deactivate", str(repo), "--yes", "--audit-log",
                str(tmp_path / "done.jsonl"))
    moved = log.with_name("moved.jsonl")

    def lose_the_log() -> None:
        log.rename(moved)
        log.mkdir()

    iam.on_send("UpdateAccessKey", lose_the_log)
    argv = [str(repo)] if command == "deactivate" else [
        leaked["AccessKeyId"], second["AccessKeyId"]]
    code, out, err = run_cli(capsys, command, *argv, "--yes", "--audit-log", str(log))

    assert code == 3, (out, err)
    assert "Traceback" not in err
    changed = {k["AccessKeyId"]: iam.status(k) for k in (leaked, second)}
    made = [key for key, status in changed.items()
            if status == ("Inactive" if command == "deactivate" else "Active")]
    assert len(made) == 1, changed  # the one IAM switched; the other was not attempted
    assert f"{command} of {made[0]}" in out and "WAS MADE in IAM" in out, out
    assert "made-unlogged" in out and "is in no audit log" in out
    assert "not attempted: the audit log stopped" in out
    if command == "deactivate":
        assert f"keyscan reactivate {made[0]}" in out
    assert moved.read_text() == ""  # the line was never half-written anywhere
