"""A rule file's own examples (`tests: match / no_match`), run as the test suite runs the
shipped ones: `keyscan rules --test` checks a team's rules before a scan relies on them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from keyscan.match import Matcher
from keyscan.model import Role, Rule
from keyscan.rules import CompiledRule, RuleSet, compile_rule, rule_tests


def failures(files: Sequence[Path], disabled: Sequence[str] = ()) -> tuple[int, list[str]]:
    """How many examples were run, and one line for each that does not hold: a rule
    missing one of its `match` lines, or finding one of its `no_match` lines."""
    cases = [(path, rule, tests) for path in files for rule, tests in rule_tests(path)
             if rule.id not in disabled]
    key_rules = [compile_rule(r) for _, r, _ in cases if r.role is Role.KEY_ID]
    run, failed = 0, []
    for path, rule, tests in cases:
        matcher = Matcher(alone(rule, key_rules))
        for want, lines in ((True, tests.get("match", [])), (False, tests.get("no_match", []))):
            for number, line in enumerate(lines, 1):
                run += 1
                if (rule.id in rule_ids_found(matcher, line)) != want:
                    which = "misses its tests.match" if want else "finds its tests.no_match"
                    # the line is not shown: an example may hold a real key by mistake
                    failed.append(f"{path}: rule {rule.id} {which} example {number}")
    return run, failed


def rule_ids_found(matcher: Matcher, line: str) -> set[str]:
    """The ids of the rules whose parts `matcher` finds in `line`."""
    return {p.rule.rule.id for c in matcher.find(line.encode()) for p in c.parts}


def alone(rule: Rule, key_rules: list[CompiledRule]) -> RuleSet:
    """Only `rule`, plus the key-ID rules it is looked for around (session tokens)."""
    compiled = [compile_rule(rule)]
    if rule.near_prefixes:
        compiled += key_rules
    return RuleSet(tuple(compiled))
