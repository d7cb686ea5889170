"""Pure decoders for the encodings people commit credentials in.

Each returns decoded bytes plus what the matcher needs to map a position in the
decoded text back to the original content. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
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
    base64-encoded credentials files at any alignment: `[default]` or
    `aws_access_key_id` (an AWS config), `ACCESS_KEY_ID=` (a `.env`; its stems cost a
    third of those of `AWS_ACCESS_KEY_ID` in the Hyperscan pass) and `ccessKeyId`
    (JSON's `AccessKeyId`, JavaScript's `accessKeyId`). Not `ACCESS_KEY_ID` alone, which
    would take YAML's `ACCESS_KEY_ID: ` too: its stems end where Hyperscan's literal
    filter fires often on source text (the pass over botocore took 40% longer).
    """
    aligned = sorted(base64.b64encode(w)[: (len(w) * 8) // 6] for w in words)
    labels = (b"[default]", b"aws_access_key_id", b"ACCESS_KEY_ID=", b"ccessKeyId")
    files = tuple(sorted(set().union(*(base64_stems(w) for w in labels))))
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


_WRAPPED_LINE = re.compile(rb"[ \t]*([A-Za-z0-9+/]+={0,2})\r?")
_MAX_BLOCK = 4 * 1024 * 1024
_WRAP_WIDTHS = (64, 76)


def base64_block(data: bytes, start: int, end: int) -> tuple[int, int, bytes] | None:
    """The wrapped block (`base64` writes 76 columns, PEM and `openssl` 64) that the run
    `data[start:end]` is one line of: its start, end and text without line breaks.
    None when the run is not a whole line of one: lines of base64 alone (indented
    alike), all but the last of one of those widths (a list of short values, one a
    line, stays values). Walks line by line, only from where a base64 trigger was found."""
    line_start = data.rfind(b"\n", 0, start) + 1
    indent = data[line_start:start]
    if indent.strip(b" \t") or not _line_ends(data, end):
        return None
    width = full = end - start
    above: list[tuple[int, int]] = []
    at = line_start
    while at > 0 and start - at < _MAX_BLOCK:
        prev = data.rfind(b"\n", 0, at - 1) + 1
        run = _wrapped_line(data, prev, at - 1, indent)
        w = run[1] - run[0] if run else 0
        if run is None or w < width or (above and w != full):
            break
        above.append(run)
        full, at = w, prev
    below: list[tuple[int, int]] = []
    last, at = width, end
    while last == full and at - start < _MAX_BLOCK:
        nxt = data.find(b"\n", at)
        if nxt == -1:
            break
        after = data.find(b"\n", nxt + 1)
        run = _wrapped_line(data, nxt + 1, len(data) if after == -1 else after, indent)
        if run is None or run[1] - run[0] > full:
            break
        below.append(run)
        last, at = run[1] - run[0], run[1]
    lines = [*reversed(above), (start, end), *below]
    if len(lines) < 2 or full not in _WRAP_WIDTHS:
        return None
    return lines[0][0], lines[-1][1], b"".join(data[s:e] for s, e in lines)


def _line_ends(data: bytes, pos: int) -> bool:
    return data[pos : pos + 1] in (b"", b"\n") or data[pos : pos + 2] == b"\r\n"


def _wrapped_line(data: bytes, start: int, end: int, indent: bytes) -> tuple[int, int] | None:
    """The span of the base64 on the line `data[start:end]`, if it holds only that
    after `indent`."""
    m = _WRAPPED_LINE.fullmatch(data, start, end)
    if m is None or m.start(1) - start != len(indent):
        return None
    return m.span(1)


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


# JSON string escapes that can stand for a credential's own characters: `\/` (PHP's
# json_encode and some JS encoders write every `/` so), `\u00XX` for printable ASCII
# (.NET's System.Text.Json writes `+` as `\u002B`), and `\\`, so that `\\/` stays
# a backslash followed by a slash.
_JSON_ESCAPE = re.compile(rb"\\(?:([\\/])|u00([2-7][0-9A-Fa-f]))")
_ASCII = {b"%02x" % c: bytes([c]) for c in range(0x20, 0x80)} | {
    b"%02X" % c: bytes([c]) for c in range(0x20, 0x80)}


class Offsets:
    """For each position in decoded bytes (and the end), its offset in the escaped
    ones, indexed like `percent_decode`'s list but kept as one entry per escape: a
    megabyte line of minified JavaScript holds few escapes."""

    def __init__(self, after: list[int], shift: list[int]) -> None:
        self._after = after  # decoded position just after each escaped character
        self._shift = shift  # escaped bytes dropped up to and including that escape

    def __getitem__(self, pos: int) -> int:
        k = bisect.bisect_right(self._after, pos)
        return pos + self._shift[k - 1] if k else pos


def json_unescape(data: bytes) -> tuple[bytes, Offsets]:
    """Undo the JSON escapes above; also return where each decoded byte came from.
    One regex split, no Python step per byte."""
    pieces = _JSON_ESCAPE.split(data)
    texts, singles, hexes = pieces[0::3], pieces[1::3], pieces[2::3]
    chars = [one or _ASCII[code] for one, code in zip(singles, hexes, strict=True)]
    pairs = zip(texts[:-1], chars, strict=True)
    decoded = b"".join(itertools.chain.from_iterable(pairs)) + texts[-1]
    after = list(itertools.accumulate(map(len, texts[:-1]), lambda at, n: at + n + 1,
                                      initial=0))[1:]
    shift = list(itertools.accumulate(1 if one else 5 for one in singles))
    return decoded, Offsets(after, shift)


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
