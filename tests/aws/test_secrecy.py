"""Secrecy audit: every command and output format on a repository with planted keys, and
no secret (nor any 8-character piece of one) in stdout, stderr, report files, the history
cache, the user cache, audit logs or error messages, unless --show-secrets was given.

Lives under tests/aws/ for the local IAM: deactivate and reactivate run for real.
`keyscan demo` is left out: it plants throwaway keys of its own (tests/aws/test_aws_demo.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_helpers import Iam, fake_key_id, fake_secret, run_cli
from repos import clean_env, git

from keyscan import scan as scan_module

PIECE = 8
FORMATS = ("text", "json", "jsonl", "sarif")


def pieces(secret: str) -> set[str]:
    return {secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1)}


class Planted:
    def __init__(self, iam: Iam, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.cache_home = tmp_path / "cache-home"
        monkeypatch.setenv("XDG_CACHE_HOME", str(self.cache_home))
        self.key = iam.new_key("ci-deployer")  # a real key of the local IAM
        self.staged_secret = fake_secret()
        token_body = fake_secret() + fake_secret()
        self.secrets = [self.key["SecretAccessKey"], self.staged_secret, token_body]
        self.repo = tmp_path / "repo"
        self.repo.mkdir()
        git(self.repo, "init", "-q")
        (self.repo / "deploy").mkdir()
        (self.repo / "deploy" / "prod.env").write_text(
            f"AWS_ACCESS_KEY_ID={self.key['AccessKeyId']}\n"
            f"AWS_SECRET_ACCESS_KEY={self.key['SecretAccessKey']}\n")
        (self.repo / "sts.json").write_text(
            f'{{"AccessKeyId": "ASIA{fake_key_id(None)[4:]}",\n'
            f' "SessionToken": "IQoJb3JpZ2luX2Vj{token_body}"}}\n')
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"config, see {self.key['AccessKeyId']}")
        (self.repo / "staged.ini").write_text(
            f"[default]\naws_access_key_id = {fake_key_id('123456789012')}\n"
            f"aws_secret_access_key = {self.staged_secret}\n")
        git(self.repo, "add", "staged.ini")
        self.log = tmp_path / "state" / "audit.jsonl"
        self.reports = tmp_path / "reports"
        self.reports.mkdir()
        self.seen: list[str] = []  # everything keyscan printed

    def run(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        code, out, err = run_cli(capsys, *argv)
        self.seen.append(f"$ keyscan {' '.join(argv)}\n{out}\n{err}")
        return code, out, err

    def files(self) -> Iterator[Path]:
        """Every file keyscan may have written."""
        for folder in (self.reports, self.repo / ".git" / "keyscan", self.cache_home,
                       self.log.parent, Path.home() / ".cache" / "keyscan"):
            if folder.is_dir():
                yield from (p for p in folder.rglob("*") if p.is_file())

    def leaks(self, text: str | bytes) -> list[str]:
        data = text.encode() if isinstance(text, str) else text
        return sorted(p for s in self.secrets for p in pieces(s) if p.encode() in data)


@pytest.fixture
def planted(iam: Iam, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Planted:
    return Planted(iam, tmp_path, monkeypatch)


def test_no_command_and_no_format_reveals_a_secret(planted: Planted, iam: Iam,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    p, repo = planted, str(planted.repo)
    for fmt in FORMATS:
        for mode in ((), ("--staged",), ("--history",), ("--history", "--no-cache")):
            code, out, _ = p.run(capsys, "scan", repo, *mode, "-f", fmt, "--verbose")
            assert code == 1 and out
            report = p.reports / f"{fmt}{''.join(mode)}.out"
            assert p.run(capsys, "scan", repo, *mode, "-f", fmt, "-o", str(report))[0] == 1
            assert report.stat().st_size > 0
    p.run(capsys, "scan", repo, "--history", "--unreachable", "--reflog", "-f", "json")
    p.run(capsys, "scan", repo, "--verify", "--verify-live", "-f", "json")
    p.run(capsys, "rules")

    report = p.reports / "for-deactivate.json"
    p.run(capsys, "scan", repo, "-f", "json", "-o", str(report))
    audit = ("--audit-log", str(p.log))
    p.run(capsys, "deactivate", repo, *audit)  # the plan only
    p.run(capsys, "deactivate", repo, "--dry-run", "--yes", *audit)
    assert p.run(capsys, "deactivate", "--report", str(report), "--yes", "--quarantine",
                 *audit)[0] == 0
    assert iam.status(p.key) == "Inactive"
    assert p.run(capsys, "reactivate", "--from-audit-log", str(p.log), "--yes", *audit)[0] == 0
    p.run(capsys, "scan", repo, "--deactivate", "--yes", "-f", "sarif", *audit)
    assert iam.status(p.key) == "Inactive" and p.log.stat().st_size > 0

    assert p.leaks("\n".join(p.seen)) == []
    written = list(p.files())
    assert len(written) >= 4 * 4 + 2  # the reports, the cache and the audit log
    for path in written:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # the shared user cache, pruned meanwhile by another run
            continue
        assert p.leaks(data) == [], path


def test_show_secrets_reveals_them(planted: Planted, capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    for fmt in FORMATS:
        _, out, err = planted.run(capsys, "scan", str(planted.repo), "--staged", "-f", fmt,
                                  "--show-secrets")
        assert planted.staged_secret in out
        assert planted.leaks(err) == []  # the summary on stderr never shows one


def test_an_internal_error_names_no_secret_and_shows_no_traceback(
        planted: Planted, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = scan_module.findings_in

    def broken(unit: object, *args: object) -> object:
        found = real(unit, *args)  # type: ignore[arg-type]
        if found:
            raise RuntimeError(f"cannot report {unit!r}: {found!r} {planted.secrets}")
        return found
    monkeypatch.setattr(scan_module, "findings_in", broken)
    code, out, err = planted.run(capsys, "scan", str(planted.repo), "-f", "json")
    assert code == 2
    assert "internal error: RuntimeError; rerun with --debug" in err
    assert "Traceback" not in err and out == ""
    assert planted.leaks(out + err) == []


def test_the_installed_command_in_ci_prints_no_secret(planted: Planted) -> None:
    """A child process as CI runs it: stdout and stderr as a CI log would keep them."""
    from repos import KEYSCAN_BIN

    for args in (["scan", "--history"], ["scan", "--staged", "-f", "sarif"]):
        proc = subprocess.run([str(KEYSCAN_BIN), *args, str(planted.repo)], cwd=planted.repo,
                              capture_output=True, text=True, check=False,
                              env=clean_env(CI="true", XDG_CACHE_HOME=str(planted.cache_home)))
        assert proc.returncode == 1, proc.stderr
        assert planted.leaks(proc.stdout + proc.stderr) == []
