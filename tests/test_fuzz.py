"""Fuzzing decoding and matching: any bytes, and bytes built to hurt (base64 runs, %XX
escapes, UTF-16 byte-order marks, NULs, key prefixes and keywords, huge lines).

No crash, and no hang: every call must finish within a budget proportional to its
input (a fixed allowance plus a time per byte), so a quadratic path shows up as a
failure rather than as a CI job that never ends. Bounded examples keep it fast in CI.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from fakes import fake_key_id, fake_secret
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyscan import decode
from keyscan.match import Matcher

T = TypeVar("T")
FIXED_SECONDS = 0.25
SECONDS_PER_BYTE = 4e-6  # 250 KB/s: far below real speed, far above any quadratic path

FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def timed(call: Callable[[], T], size: int) -> T:
    started = time.perf_counter()
    out = call()
    elapsed = time.perf_counter() - started
    budget = FIXED_SECONDS + SECONDS_PER_BYTE * size
    assert elapsed < budget, f"{elapsed:.2f} s for {size} bytes (budget {budget:.2f} s)"
    return out


# -- building blocks an attacker (or an unlucky file) would use ---------------------------

_pieces = st.one_of(
    st.binary(max_size=64),
    st.text(alphabet=B64.decode(), min_size=1, max_size=120).map(str.encode),  # base64 runs
    st.sampled_from([b"=", b"==", b"%", b"%4", b"%41", b"%2F", b"%3D", b"%zz", b"%%"]),
    st.sampled_from([b"\\/", b"\\\\", b"\\u002B", b"\\u00", b"\\u00zz", b"\\"]),
    st.sampled_from([b"\xff\xfe", b"\xfe\xff", b"\0", b"\0\0", b"\r", b"\n", b"\r\n"]),
    st.sampled_from([b"AKIA", b"ASIA", b"A3T", b"aws_secret_access_key", b"SecretAccessKey",
                     b"QUtJQ", b"keyscan:allow", b"A\0K\0I\0A\0", b"[default]"]),
    st.builds(lambda: fake_key_id().encode()),
    st.builds(lambda: fake_secret().encode()),
    st.binary(min_size=2, max_size=2).map(lambda b: b.hex().encode()),
)
structured = st.lists(_pieces, max_size=60).map(b"".join)
# a huge line: one piece repeated (built here, not drawn byte by byte by hypothesis)
huge = st.tuples(_pieces.filter(bool), st.integers(1_000, 40_000)).map(
    lambda pc: (pc[0] * (pc[1] // len(pc[0]) + 1))[: 400_000])


def _check_credentials(matcher: Matcher, data: bytes) -> None:
    creds = timed(lambda: matcher.find(data), len(data))
    lines = max(data.count(b"\n"), data.count(b"\r")) + 1
    for cred in creds:
        for part in cred.parts:
            assert part.line >= 1 and part.column >= 1
            assert part.line <= lines + 1 or part.encoding != "plain"


@FUZZ
@given(data=st.binary(max_size=4096))
def test_matching_arbitrary_bytes(matcher: Matcher, data: bytes) -> None:
    _check_credentials(matcher, data)


@FUZZ
@given(data=structured)
def test_matching_structured_adversarial_bytes(matcher: Matcher, data: bytes) -> None:
    _check_credentials(matcher, data)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=huge)
def test_matching_huge_lines(matcher: Matcher, data: bytes) -> None:
    _check_credentials(matcher, data)


@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), structured))
def test_decoders(data: bytes) -> None:
    n = len(data)
    decoded, where = timed(lambda: decode.percent_decode(data), n)
    assert len(where) == len(decoded) + 1 and where[-1] == n
    assert all(a < b for a, b in itertools.pairwise(where))
    for pos in range(0, n, max(1, n // 8)):
        start, end = timed(functools.partial(decode.base64_run, data, pos), n)
        assert 0 <= start <= pos <= end <= n
        out = timed(functools.partial(decode.decode_base64, data[start:end]), n)
        assert out is None or isinstance(out, bytes)
    unescaped, offsets = timed(lambda: decode.json_unescape(data), n)
    where = [offsets[i] for i in range(len(unescaped) + 1)]
    assert where[0] == 0 and where[-1] == n
    assert all(a < b for a, b in itertools.pairwise(where))
    text = timed(lambda: decode.utf16_text(data), n)
    if text is not None:
        text.decode("utf-8")  # always valid UTF-8 for the matcher


# -- the worst cases found so far, pinned -----------------------------------------------------

def _many(piece: Callable[[], str], sep: str, count: int) -> bytes:
    return sep.join(piece() for _ in range(count)).encode()


WORST = {
    "key IDs on one line": lambda: _many(fake_key_id, " ", 20_000),
    "keyword secrets on one line": lambda: _many(
        lambda: f"aws_secret_access_key={fake_secret()}", " ", 8_000),
    "pairs, one per line": lambda: _many(
        lambda: f"aws_secret_access_key={fake_secret()} {fake_key_id()}", "\n", 8_000),
    "pairs on one line": lambda: _many(
        lambda: f"aws_secret_access_key={fake_secret()} {fake_key_id()}", " ", 8_000),
    "temporary keys and tokens": lambda: _many(
        lambda: f"ASIA{fake_key_id()[4:]} aws_session_token=IQoJb3JpZ2luX2Vj{'Ab1' * 40}",
        " ", 4_000),
    "5 MB of base64": lambda: (B64 * 80_000)[:5_000_000],
    "5 MB of %41": lambda: b"%41" * 1_700_000,
    "5 MB of escaped slashes after a keyword": lambda: b"SecretAccessKey=" + b"\\/" * 2_500_000,
    "escaped secrets on one line": lambda: _many(
        lambda: f'"SecretAccessKey":"{fake_secret()}"'.replace("/", "\\/"), ",", 8_000),
    "5 MB of wide AKIA": lambda: b"A\0K\0I\0A\0" * 650_000,
    "50 MB of one line": lambda: b"x" * 50_000_000,
}


@pytest.mark.parametrize("case", sorted(WORST))
def test_worst_cases_stay_linear(matcher: Matcher, case: str) -> None:
    data = WORST[case]()
    _check_credentials(matcher, data)
