"""A user's rule file cannot make a scan hang through catastrophic backtracking.

Two guards: nested repeats such as `(a+)+` are refused when the file is read (see
test_rules.py's BROKEN["catastrophic-regex"]), and every user pattern must finish a
time-boxed run over adversarial input before any scan uses it (keyscan/regexcheck.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from repos import CliResult

from keyscan.regexcheck import Pattern, _first_slow, adversarial_inputs
from keyscan.rules import load_rules

Cli = Callable[..., CliResult]

# each slips past the static nested-repeat check, each takes forever on "aaa...a!"
SLOW = {
    "alternation": ("regex", "(?P<value>(a|aa)+b)"),
    "group-in-group": ("regex", "tok_(?P<value>((a+))+$)"),
    "allowlist": ("allowlist.values", "^((a+))+b"),
    "examples": ("examples", "(x|x)+y"),
}


def rule_file(field: str, pattern: str) -> str:
    body = (f"    regex: '{pattern}'\n" if field == "regex"
            else "    regex: 'tok_(?P<value>[a-z]{8})'\n")
    if field == "allowlist.values":
        body += f"    allowlist:\n      values: ['{pattern}']\n"
    elif field == "examples":
        body += f"    examples: ['{pattern}']\n"
    return ("version: 1\nrules:\n  - id: slow-rule\n    description: d\n"
            "    keywords: [tok_]\n" + body)


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "keyscan"


@pytest.mark.parametrize("case", sorted(SLOW))
def test_a_catastrophic_pattern_is_refused_with_a_clear_message(cli: Cli, tmp_path: Path,
                                                                 case: str) -> None:
    field, pattern = SLOW[case]
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.yaml").write_text(rule_file(field, pattern))
    target = tmp_path / "code"
    target.mkdir()
    (target / "hostile.txt").write_text("tok_" + "a" * 5000 + "!\n")
    started = time.monotonic()
    result = cli("scan", target, "--rules", rules)
    assert time.monotonic() - started < 10
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith("keyscan: error: ")
    assert "mine.yaml" in line and "rule 'slow-rule'" in line and f"field '{field}'" in line
    assert "backtracks catastrophically" in line
    assert result.out == ""


def test_a_sound_user_pattern_passes_and_the_verdict_is_cached(cli: Cli, tmp_path: Path,
                                                               own_cache: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ok.yaml").write_text(rule_file("regex", "tok_(?P<value>[a-z0-9]{8,64})"))
    target = tmp_path / "code"
    target.mkdir()
    (target / "a.txt").write_text("x = tok_abcdefgh\n")
    assert cli("scan", target, "--rules", rules).code == 1
    verdicts = list(own_cache.glob("regex-ok-*"))
    assert len(verdicts) == 1 and verdicts[0].read_bytes() == b""  # patterns only, no content
    assert cli("scan", target, "--rules", rules).code == 1
    assert list(own_cache.glob("regex-ok-*")) == verdicts


def test_the_builtin_patterns_pass_the_self_test() -> None:
    patterns = [Pattern(r.rule.id, field, text) for r in load_rules().rules
                for field, texts in (("regex", (r.rule.regex,)),
                                     ("allowlist.values", r.rule.allow_values),
                                     ("examples", r.rule.example_values)) for text in texts]
    started = time.monotonic()
    assert _first_slow(patterns, budget=5.0) is None
    assert time.monotonic() - started < 1.0  # far inside the 1 s budget users get


def test_adversarial_inputs_use_the_patterns_own_characters() -> None:
    inputs = adversarial_inputs("tok_(?P<value>(q|qq)+z)")
    assert b"q" * 48 + b"\0" in inputs
    assert any(i.startswith(b"tok_") for i in inputs)
    assert all(i.endswith(b"\0") for i in inputs)  # a byte that makes the match fail
