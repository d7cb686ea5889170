"""Fixtures: the matcher as a function of text, fresh git repositories, the CLI in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from repos import CliResult, git

from keyscan.cli import main
from keyscan.match import Matcher
from keyscan.model import Finding, Location
from keyscan.rules import RuleSet, load_rules
from keyscan.scan import ScanOptions, findings_in
from keyscan.sources import Content

# -- the matcher, as a function of text -------------------------------------------------


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules()


@pytest.fixture(scope="session")
def matcher(rules: RuleSet) -> Matcher:
    return Matcher(rules)


@pytest.fixture(scope="session")
def find(matcher: Matcher) -> Callable[[str | bytes], list[Finding]]:
    """Findings for some content, as the scan pipeline makes them (no I/O)."""

    def run(content: str | bytes, path: str = "file.txt") -> list[Finding]:
        data = content.encode() if isinstance(content, str) else content
        return findings_in(Content(Location(path=path), data), matcher, ScanOptions())

    return run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh, empty git repository."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    return path


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., CliResult]:
    """Run `keyscan ARGS` in-process, as a user would type it."""

    def run(*args: str | Path, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def scan_json(cli: Callable[..., CliResult], *args: str | Path) -> tuple[int, dict[str, Any]]:
    result = cli("scan", *args, "--format", "json")
    assert result.code in (0, 1), result.err
    return result.code, result.json


def pytest_configure(config: pytest.Config) -> None:
    # honoured by pytest-timeout when installed; declared so the mark is never "unknown"
    config.addinivalue_line("markers", "timeout(seconds): fail a test that runs longer")
