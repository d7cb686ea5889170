"""The one-pass prefilter only skips work: findings are the same with and without it."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
from fakes import fake_key_id, fake_secret, fake_session_token
from hypothesis import given, settings
from hypothesis import strategies as st

from keyscan.match import Matcher
from keyscan.rules import RuleSet, load_rules


def _both(rules: RuleSet, monkeypatch: pytest.MonkeyPatch) -> tuple[Matcher, Matcher]:
    fast = Matcher(rules)
    monkeypatch.setenv("KEYSCAN_NO_HYPERSCAN", "1")
    plain = Matcher(rules)
    monkeypatch.delenv("KEYSCAN_NO_HYPERSCAN")
    assert not plain.prefilter.active
    return fast, plain


def _summary(matcher: Matcher, data: bytes) -> list[tuple[object, ...]]:
    return sorted((c.anchor.rule.rule.id, c.anchor.value, c.anchor.line, c.anchor.column,
                   c.secret.value if c.secret else "", c.status.value)
                  for c in matcher.find(data))


def _pieces(rng: random.Random) -> list[str]:
    key, secret = fake_key_id(rng=rng), fake_secret(rng=rng)
    asia = fake_key_id("ASIA", rng=rng)
    creds = f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    return [
        f"aws_access_key_id = {key}\n", f"aws_secret_access_key = {secret}\n",
        f'"AccessKeyId": "{asia}", "SessionToken": "{fake_session_token(rng)}"\n',
        f"value: {base64.b64encode(key.encode()).decode()}\n",
        f"blob: {base64.b64encode(creds.encode()).decode()}\n",
        "def secret_sauce(): return 42\n", "SECRET_ACCESS_KEY = os.environ['X']\n",
        "AKIAIOSFODNN7EXAMPLE\n", "plain text line\n", "aws_secret_access_key = <yours>\n",
    ]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), picks=st.lists(st.integers(0, 9), max_size=12))
def test_same_findings_with_and_without_the_prefilter(
        rules: RuleSet, seed: int, picks: list[int]) -> None:
    pytest.importorskip("hyperscan")
    with pytest.MonkeyPatch.context() as mp:
        fast, plain = _both(rules, mp)
    if not fast.prefilter.active:
        pytest.skip("Hyperscan is not available on this platform")
    pieces = _pieces(random.Random(seed))
    data = "".join(pieces[i] for i in picks).encode()
    assert _summary(fast, data) == _summary(plain, data)


def test_content_without_any_trigger_is_done_in_one_pass_unless_a_rule_has_no_keyword(
        rules: RuleSet, tmp_path: Path) -> None:
    """Content with no trigger skips every other pass; a user rule without keywords
    could match anywhere, so with one loaded every piece of content is matched in full."""
    pytest.importorskip("hyperscan")
    plain = b"def handler(event):\n    return {'statusCode': 200}\n" * 50
    gated = Matcher(rules)
    if not gated.prefilter.active:
        pytest.skip("Hyperscan is not available on this platform")
    assert gated._gated and gated.find(plain) == []
    (tmp_path / "anywhere.yaml").write_text(
        "rules:\n  - id: build-number\n    description: d\n    severity: low\n"
        "    role: generic\n    regex: 'statusCode.: (?P<value>2[0-9]{2})'\n")
    with_rule = Matcher(load_rules([tmp_path]))
    assert not with_rule._gated
    found = with_rule.find(plain)
    assert {c.anchor.rule.rule.id for c in found} == {"build-number"}
    assert len(found) == 50


def test_the_engine_starts_only_once_enough_content_was_matched(rules: RuleSet) -> None:
    """A hook or a re-scan matches a few kilobytes: there `re` is cheaper than starting
    Hyperscan, which starts once the content matched passes `engine_after` bytes; the
    findings are the same before and after."""
    pytest.importorskip("hyperscan")
    eager = Matcher(rules)
    if not eager.prefilter.active:
        pytest.skip("Hyperscan is not available on this platform")
    lazy = Matcher(rules, engine_after=4000)
    pieces = _pieces(random.Random(7))
    small = "".join(pieces[:5]).encode()
    assert len(small) < 4000
    assert _summary(lazy, small) == _summary(eager, small) != []
    assert not lazy.prefilter.active
    big = "".join(pieces * 10).encode()
    assert _summary(lazy, big) == _summary(eager, big)
    assert lazy.prefilter.active and lazy._gated == eager._gated


def test_a_hook_scan_of_a_few_files_does_not_start_hyperscan(tmp_path: Path) -> None:
    """Nor, when it finds nothing (most commits), hashing: fingerprints are made only for
    findings, and then with CPython's own SHA-256 (keyscan/digest.py), not hashlib's
    OpenSSL."""
    import subprocess
    import sys

    from repos import git

    git(tmp_path, "init", "-q")

    def staged_scan() -> tuple[str, str]:
        code = ("import sys; from keyscan.cli import main; code = main(['scan', '--staged', "
                f"{str(tmp_path)!r}, '--format', 'json']); "
                "print(sorted(m for m in ('hyperscan', 'hashlib', 'keyscan.digest') "
                "if m in sys.modules), code, "
                "file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        return proc.stderr.strip().splitlines()[-1], proc.stdout

    (tmp_path / "app.py").write_text("VERSION = 1\n")
    git(tmp_path, "add", "app.py")
    assert staged_scan()[0] == "[] 0"
    (tmp_path / "app.py").write_text(f"KEY = '{fake_key_id()}'\n")
    git(tmp_path, "add", "app.py")
    imported, report = staged_scan()
    assert imported == "['keyscan.digest'] 1"
    assert '"key_id"' in report
