"""keyscan/digest.py gives the digests hashlib and hmac give (fingerprints, baselines
and caches written before depend on them)."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from keyscan.digest import compare_digest, hmac_sha256, mac, sha256_hex


@given(st.binary(max_size=200), st.binary(max_size=500))
def test_hmac_and_sha256_are_the_standard_ones(key: bytes, data: bytes) -> None:
    assert hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).hexdigest()
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert compare_digest(data, data) and (data == key or not compare_digest(data, key))


@given(st.binary(min_size=1, max_size=64), st.binary(max_size=500))
def test_mac_is_keyed_blake2b(key: bytes, data: bytes) -> None:
    assert mac(key, data) == hashlib.blake2b(data, key=key, digest_size=32).digest()
    assert mac(key + b"!" if len(key) < 64 else key[:-1], data) != mac(key, data)
