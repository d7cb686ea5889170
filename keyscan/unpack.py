"""Pure unpacking of the archives and compressed files credentials travel in.

A Lambda deployment package (`function.zip`), a `.jar` with its `.properties`, a
`backup.tar.gz` of a home folder, a gzipped SQL dump: the key is in git, but its bytes
are deflated, so no pattern sees them. These functions give the matcher the content
inside: each member of a zip or tar, the stream inside gzip, bzip2 or xz (a tar inside
one is opened too), and the archive's own bytes outside its members (names, a zip's
comment, a self-extractor's stub, text appended after the end), which are matched as
they are, at their lines. No I/O but memory; what is given out is bounded:

- a member's first `MEMBER_LIMIT` bytes (the rest is not inflated: a bomb costs that);
- `TOTAL_LIMIT` bytes for everything one archive gives, nested archives included, each
  member counting at least `ENTRY_COST` (a zip of a million empty entries costs time);
- `MAX_DEPTH` levels of archives inside archives (a `.jar` in a `.zip`: two).

Hostile or damaged archives give what can be read of them: a truncated gzip its first
part, a zip its readable members. No error of a decompressor or an archive reader
reaches the caller. What is not read, or not wholly (an encrypted zip member, one cut at
a limit, a damaged one, archives nested too deep), is noted in the budget's `unread`:
never passed over silently.

zipfile, tarfile, bz2 and lzma are imported when an archive is first met: the pre-commit
hook and most of a history never pay for them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

MEMBER_LIMIT = 32 << 20
TOTAL_LIMIT = 256 << 20
ENTRY_COST = 4 << 10  # ~15 us of reading an entry, at the matcher's ~300 MB/s
MAX_DEPTH = 3
_CHUNK = 1 << 16  # compressed bytes fed at a time: damage loses only what follows it
_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")  # a block's magic, or the end of an empty stream
_END_OF_ZIP = b"PK\x05\x06"  # a zip's last record; 22 bytes from the end without a comment
_LOCAL = struct.Struct("<4s22xHH")  # a zip member's local header: magic, .., name, extra
_ZIP_BZIP2, _ZIP_LZMA = 12, 14  # zipfile inflates these without a bound: done here


def kind(data: bytes) -> str | None:
    """The archive or compression format `data` is, by its magic bytes (a zip also by
    its last record: a self-extractor is a program with a zip after it)."""
    head = data[:6]
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"PK\x03\x04") or data.startswith(_END_OF_ZIP, len(data) - 22):
        return "zip"
    if head.startswith(b"BZh") and data[4:10] in _BZIP2_BLOCKS and data[3] in b"123456789":
        return "bzip2"
    if head == b"\xfd7zXZ\0":
        return "xz"
    if data.startswith(b"ustar", 257):
        return "tar"
    return None


class Budget:
    """What one archive may still give out, in bytes, across all its members; and what
    of it was not read."""

    def __init__(self) -> None:
        self.left = TOTAL_LIMIT
        self.depth = 0  # archives open around the content being matched
        self.at: list[str] = []  # the names of the members open around it (the caller's)
        self.unread: list[tuple[str, str]] = []  # (member path, why), in the order met

    def limit(self) -> int:
        return min(MEMBER_LIMIT, self.left)

    def note(self, name: str, why: str) -> None:
        """The member `name` (of the innermost archive open) was not read, or not wholly."""
        self.unread.append(("!".join(m for m in (*self.at, name) if m) or "(content)", why))

    def cut(self, name: str, content: bytes, size: int | None) -> bytes:
        """`content`, the first bytes of the member `name` (`size` bytes in all; None: not
        known), taken from the budget; noted when a limit cut it short."""
        if len(content) >= self.limit() and (size is None or size > len(content)):
            self.note(name, _cut_reason(self.limit()))
        return self.take(content)

    def take(self, content: bytes) -> bytes:
        self.left -= max(len(content), ENTRY_COST)
        return content


def _cut_reason(limit: int) -> str:
    if limit >= MEMBER_LIMIT:
        return f"only its first {_size(MEMBER_LIMIT)} read (the limit for one member)"
    return f"only its first {_size(limit)} read: {_full()}"


def _full() -> str:
    return f"the archive reached its limit of {_size(TOTAL_LIMIT)} unpacked"


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 and not n & 0xFFFFF else f"{n} bytes"


# (format, member name, content); the name None: the archive's bytes outside its members
Member = tuple[str, "str | None", bytes]


def members(data: bytes, budget: Budget) -> Iterator[Member]:
    """Each member of the archive `data` is, then (name None) the bytes of `data` outside
    its members (`_outside`), when there are any.

    A compressed stream is one member named "" (its content may itself be a tar: the
    caller unpacks that as any archive). Nothing when `data` is no archive this module
    reads, or when none of it can be read.
    """
    form = kind(data)
    if form is None or budget.left <= 0:
        return
    inside: list[tuple[int, int]] = []  # spans of `data` the members were read from
    if form == "zip":
        yield from (("zip", name, content) for name, content in _zip(data, budget, inside))
    elif form == "tar":
        yield from (("tar", name, content) for name, content in _tar(data, budget, inside))
    else:
        limit = budget.limit()
        content, used = _inflate(data, form, limit)
        if not content:
            return
        stream = f"({form} content)"  # named so in notes; "" in findings (`members`)
        if len(content) < limit and kind(data[used : used + 512]) == form:
            budget.note(stream, "damaged: read up to the damage, the rest matched as it is")
        yield form, "", budget.cut(stream, content, None)
        inside.append((0, used))
    if inside:
        outside = _outside(data, inside)
        if outside is not None:
            yield form, None, outside


def _outside(data: bytes, spans: list[tuple[int, int]]) -> bytes | None:
    """`data` without `spans`, each left as a NUL and as many line breaks as it held: what
    is outside keeps its lines (not its columns after a span) and is matched at a tenth of
    the cost of a copy of the whole (a jar is mostly its members). None when nothing else
    is left."""
    pieces = []
    at = 0
    for start, end in sorted(spans):
        start, end = max(start, at), min(end, len(data))
        if start >= end:
            continue
        pieces += [data[at:start], b"\0", b"\n" * data.count(b"\n", start, end)]
        at = end
    pieces.append(data[at:])
    out = b"".join(pieces)
    return out if out.strip(b"\0\n") else None


def _bounded(d: Any, data: bytes | memoryview, limit: int, out: bytearray) -> int:
    """Feed `data` to the decompressor `d`, appending at most `limit` bytes in all to
    `out`; how much of `data` was used (all of it unless the stream ended or was cut)."""
    for at in range(0, len(data), _CHUNK):
        chunk = data[at : at + _CHUNK]
        out += d.decompress(chunk, limit - len(out))
        if len(out) >= limit:
            return at + len(chunk)
        if d.eof:
            return at + len(chunk) - len(d.unused_data)
    return len(data)


def _decompressor(form: str) -> Any:
    """A decompressor for a gzip, bzip2 or xz stream (all three have the same calls)."""
    if form == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if form == "bzip2":
        import bz2

        return bz2.BZ2Decompressor()
    import lzma

    return lzma.LZMADecompressor()


def _inflate(data: bytes, form: str, limit: int) -> tuple[bytes, int]:
    """The decompressed stream (streams one after another too: `cat a.gz b.gz`, pbzip2's
    output), cut at `limit` bytes, up to the damage when the data is corrupt or cut short;
    and how many bytes of `data` the streams took."""
    out = bytearray()
    used = 0
    while used < len(data) and len(out) < limit and kind(data[used : used + 512]) == form:
        d = _decompressor(form)
        try:
            step = _bounded(d, memoryview(data)[used:], limit, out)
        except Exception:  # any error of a decompressor fed hostile bytes
            break  # corrupt from here on: what came before is kept, the rest is raw
        used += step
        if not d.eof:
            break
    return bytes(out), used


def _zip(data: bytes, budget: Budget, inside: list[tuple[int, int]]
         ) -> Iterator[tuple[str, bytes]]:
    import io
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception:  # no central directory (cut short), or hostile
        return  # the caller matches the raw bytes
    for at, info in enumerate(infos):
        if budget.left <= 0:
            left = [i for i in infos[at:] if not i.filename.endswith("/")]
            if left:
                more = f", nor the {len(left) - 1} after it" if len(left) > 1 else ""
                budget.note(left[0].filename, f"not read{more}: {_full()}")
            return
        span = _member_span(data, info)
        if span is not None:
            inside.append(span)
        if info.filename.endswith("/"):
            continue  # a folder
        if info.flag_bits & 0x1:
            budget.note(info.filename, "encrypted zip member: cannot be read without its "
                                       "password")
            continue
        try:
            content = _member(archive, info, data, span, budget.limit())
        except Exception:  # a damaged member, an unsupported method
            budget.note(info.filename, "damaged, or compressed in a way keyscan cannot "
                                       "read: not read")
            continue  # the others are read
        yield info.filename, budget.cut(info.filename, content, info.file_size)


def _member_span(data: bytes, info: Any) -> tuple[int, int] | None:
    """Where a zip member's stored (compressed) bytes are in `data`."""
    at = info.header_offset
    try:
        magic, name, extra = _LOCAL.unpack_from(data, at)
    except struct.error:
        return None
    if magic != b"PK\x03\x04":
        return None
    start = at + _LOCAL.size + name + extra
    return start, start + info.compress_size


def _member(archive: Any, info: Any, data: bytes, span: tuple[int, int] | None,
            limit: int) -> bytes:
    """A member's first `limit` bytes. zipfile bounds what it inflates of a deflated
    member; bzip2 and LZMA members are inflated here, with the bound."""
    if info.compress_type == _ZIP_BZIP2 and span is not None:
        return _inflate(data[span[0] : span[1]], "bzip2", limit)[0]
    if info.compress_type == _ZIP_LZMA and span is not None:
        import lzma

        body = memoryview(data)[span[0] : span[1]]
        size = struct.unpack_from("<H", body, 2)[0]  # a version, then the properties' size
        props = lzma._decode_filter_properties(  # type: ignore[attr-defined]
            lzma.FILTER_LZMA1, bytes(body[4 : 4 + size]))  # as zipfile reads them
        out = bytearray()
        _bounded(lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[props]), body[4 + size :],
                 limit, out)
        return bytes(out)
    with archive.open(info) as member:
        content: bytes = member.read(limit)
        return content


def _tar(data: bytes, budget: Budget, inside: list[tuple[int, int]]
         ) -> Iterator[tuple[str, bytes]]:
    import io
    import tarfile

    last = ""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for info in archive:
                last = info.name
                if not info.isfile():
                    continue
                if budget.left <= 0:
                    budget.note(info.name, f"not read, nor the members after it: {_full()}")
                    return
                inside.append((info.offset_data, info.offset_data + info.size))
                member = archive.extractfile(info)
                if member is not None:
                    yield info.name, budget.cut(info.name, member.read(budget.limit()),
                                                info.size)
    except Exception:  # a tar cut short, or hostile: the members before
        budget.note(last or "(tar content)", "damaged tar: what follows this member not "
                                             "read" if last else "damaged tar: not read")
