"""Offline attribution: what a key ID says about itself, without any network call."""

from __future__ import annotations

import base64

# Since about 2019 the 5th character of a key ID is Q-Z or 2-7 and the ID encodes
# its account; older AKIAI.../AKIAJ... IDs decode to plausible but wrong numbers.
_NEW_FORMAT = frozenset("QRSTUVWXYZ234567")


def account_id(key_id: str) -> str:
    """The 12-digit AWS account a key ID belongs to, or "" when it cannot be told."""
    if len(key_id) != 20 or key_id[4] not in _NEW_FORMAT:
        return ""
    try:
        raw = base64.b32decode(key_id[4:])
    except ValueError:
        return ""
    value = int.from_bytes(raw[:6], "big")
    return f"{(value & 0x7FFFFFFFFF80) >> 7:012d}"
