"""keyscan/digest.py gives the digests hashlib and hmac give (fingerprints, baselines
and caches written before depend on them)."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from keyscan.digest import compare_digest, hmac_sha256, sha256_hex


@given(st.binary(max_size=200), st.binary(max_size=500))
def test_hmac_and_sha256_are_the_standard_ones(key: bytes, data: bytes) -> None:
    assert hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).hexdigest()
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert compare_digest(data, data) and (data == key or not compare_digest(data, key))
