"""Fake AWS credentials made at run time.

No key-shaped literal lives in the test sources: `keyscan scan .` on the project must
stay clean, and a literal would also be a leak waiting to be copied somewhere real.
"""

from __future__ import annotations

import random
import re
import string

from keyscan.attribute import account_id

BASE32 = string.ascii_uppercase + "234567"
NEW_FORMAT_5TH = "QRSTUVWXYZ234567"  # keys since ~2019 encode their account from here
SECRET_CHARS = string.ascii_letters + string.digits + "/+"

# Values the shipped rules treat as documentation examples; a fake key must not look like one.
_EXAMPLE_LIKE = re.compile(r"EXAMPLE|XMPL|(?i:xxxx)|(.)\1{3}|ABCDEFGH|BCDEFGHI|CDEFGHIJ|"
                           r"DEFGHIJK|IJKLMNOP|MNOPQRST|QRSTUVWX|234567")
_rng = random.Random()


def fake_key_id(prefix: str = "AKIA", rng: random.Random | None = None) -> str:
    """An access key ID of the current format: prefix + 16 base32 characters.

    The older A3T form has one more character after A3T before the 16.
    """
    r = rng or _rng
    while True:
        head = prefix + r.choice(BASE32) if prefix == "A3T" else prefix
        body = r.choice(NEW_FORMAT_5TH) + "".join(r.choice(BASE32) for _ in range(15))
        key = head + body
        # a real key encodes a 12-digit account; 40 bits could hold 13 digits
        if not _EXAMPLE_LIKE.search(key) and (prefix == "A3T" or account_id(key)):
            return key


def fake_secret(rng: random.Random | None = None) -> str:
    """40 characters of [A-Za-z0-9/+] with upper, lower and digit, like a real secret."""
    r = rng or _rng
    while True:
        value = "".join(r.choice(SECRET_CHARS) for _ in range(40))
        if (any(c.isupper() for c in value) and any(c.islower() for c in value)
                and any(c.isdigit() for c in value) and not _EXAMPLE_LIKE.search(value)):
            return value


def fake_session_token(rng: random.Random | None = None) -> str:
    r = rng or _rng
    return "IQoJb3JpZ2luX2Vj" + "".join(r.choice(SECRET_CHARS) for _ in range(300))
