"""Pure decoders for the encodings people commit credentials in.

Each returns decoded bytes plus what the matcher needs to map a position in the
decoded text back to the original content. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import re

_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_HEX = frozenset(b"0123456789abcdefABCDEF")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def base64_stems(word: bytes) -> set[bytes]:
    """The base64 characters that `word` always encodes to, at each of the 3 alignments."""
    stems = set()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + word + b"\0\0\0")
        start = (pad * 8 + 5) // 6
        end = ((pad + len(word)) * 8) // 6
        stems.add(encoded[start:end])
    return stems


def base64_triggers(words: list[bytes]) -> tuple[re.Pattern[bytes], tuple[bytes, ...]]:
    """Where base64 text may hide one of `words`: a pattern and some literals.

    The pattern covers the alignment where the encoded text starts with the word (a
    Kubernetes Secret value, `echo -n KEY | base64`): every stem starts with the rare
    capital Q, so `re` scans at GB/s. The literals, long and so fast to find, cover
    base64-encoded credentials files: `[default]` or `aws_access_key_id` at any
    alignment.
    """
    aligned = sorted(base64.b64encode(w)[: (len(w) * 8) // 6] for w in words)
    files = tuple(sorted(base64_stems(b"[default]") | base64_stems(b"aws_access_key_id")))
    return re.compile(b"|".join(re.escape(s) for s in aligned)), files


def base64_run(data: bytes, pos: int) -> tuple[int, int]:
    """The run of base64 characters (plus trailing padding) around `pos`."""
    start = pos
    while start > 0 and data[start - 1] in _B64_CHARS:
        start -= 1
    end = pos
    n = len(data)
    while end < n and data[end] in _B64_CHARS:
        end += 1
    while end < n and end - start < 4 * 1024 * 1024 and data[end] == 0x3D:  # '='
        end += 1
    return start, end


def decode_base64(run: bytes) -> bytes | None:
    body = run.rstrip(b"=")
    if len(body) < 16:
        return None
    body = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
    try:
        return base64.b64decode(body + b"=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def percent_decode(data: bytes) -> tuple[bytes, list[int]]:
    """Decode %XX escapes; also return, for each decoded byte, its offset in `data`."""
    out = bytearray()
    where: list[int] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x25 and i + 2 < n and data[i + 1] in _HEX and data[i + 2] in _HEX:
            out.append(int(data[i + 1 : i + 3], 16))
            where.append(i)
            i += 3
        else:
            out.append(b)
            where.append(i)
            i += 1
    where.append(n)
    return bytes(out), where


def utf16_text(data: bytes) -> bytes | None:
    """UTF-16 text, re-encoded as UTF-8 for matching: with a byte-order mark, or
    without one when the file is plainly mostly-ASCII UTF-16 (Windows exports)."""
    if data[:2] in UTF16_BOMS:
        codec = "utf-16-le" if data[:2] == b"\xff\xfe" else "utf-16-be"
        return data[2:].decode(codec, "replace").encode("utf-8")
    guessed = _bomless_utf16(data)
    if guessed is None:
        return None
    return data[: len(data) - len(data) % 2].decode(guessed, "replace").encode("utf-8")


def _bomless_utf16(data: bytes) -> str | None:
    # Whole-file text only: nearly every high byte NUL and no low byte NUL. A binary
    # file with a few wide strings inside stays raw bytes (the matcher's wide pass).
    sample = data[:4096]
    half = len(sample) // 2
    if half < 8 or b"\0" not in sample:
        return None
    even, odd = sample[0 : 2 * half : 2], sample[1 : 2 * half : 2]
    for codec, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if high.count(0) >= 0.9 * half and low.count(0) == 0:
            return codec
    return None
