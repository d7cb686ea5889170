"""Pure unpacking of the archives and compressed files credentials travel in.

A Lambda deployment package (`function.zip`), a `.jar` with its `.properties`, a
`backup.tar.gz` of a home folder, a gzipped SQL dump: the key is in git, but its bytes
are deflated, so no pattern sees them. These functions give the matcher the content
inside: each member of a zip or tar, the stream inside gzip, bzip2 or xz (a tar inside
one is opened too). No I/O but memory; what is given out is bounded:

- a member's first `MEMBER_LIMIT` bytes (the rest is not read, so a bomb costs that much);
- `TOTAL_LIMIT` bytes for everything one archive gives, nested archives included;
- `MAX_DEPTH` levels of archives inside archives (a `.jar` in a `.zip`: two).

Damaged archives give what can be read of them: a truncated gzip its first part, a zip
its readable members. Encrypted zip members are passed over.

zipfile, tarfile, bz2 and lzma are imported when an archive is first met: the pre-commit
hook and most of a history never pay for them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

MEMBER_LIMIT = 32 << 20
TOTAL_LIMIT = 256 << 20
MAX_DEPTH = 3
_CHUNK = 1 << 16  # compressed bytes fed at a time: damage loses only what follows it
_TAR_MAGIC = slice(257, 262)
_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")  # a block's magic, or the end of an empty stream


def kind(data: bytes) -> str | None:
    """The archive or compression format `data` starts with, by its magic bytes."""
    head = data[:6]
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"BZh") and data[4:10] in _BZIP2_BLOCKS and data[3] in b"123456789":
        return "bzip2"
    if head == b"\xfd7zXZ\0":
        return "xz"
    if data[_TAR_MAGIC] == b"ustar":
        return "tar"
    return None


class Budget:
    """What one archive may still give out, in bytes, across all its members."""

    def __init__(self) -> None:
        self.left = TOTAL_LIMIT
        self.depth = 0  # archives open around the content being matched

    def limit(self) -> int:
        return min(MEMBER_LIMIT, self.left)

    def take(self, content: bytes) -> bytes:
        self.left -= len(content)
        return content


def members(data: bytes, budget: Budget) -> Iterator[tuple[str, str, bytes]]:
    """(format, member name, content) for each member of the archive `data` starts with.

    A compressed stream is one member named "" (its content may itself be a tar: the
    caller unpacks that as any archive). Nothing when `data` is no archive this module
    reads, or when none of it can be read.
    """
    form = kind(data)
    if form is None or budget.left <= 0:
        return
    if form == "zip":
        yield from (("zip", name, content) for name, content in _zip(data, budget))
    elif form == "tar":
        yield from (("tar", name, content) for name, content in _tar(data, budget))
    else:
        content = _inflate(data, form, budget.limit())
        if content:
            yield form, "", budget.take(content)


def _decompressor(form: str) -> tuple[Any, tuple[type[Exception], ...]]:
    """A decompressor for `form` (all three have the same calls) and its errors."""
    damage: tuple[type[Exception], ...] = (zlib.error, OSError, EOFError, ValueError)
    if form == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS), damage
    if form == "bzip2":
        import bz2

        return bz2.BZ2Decompressor(), damage
    import lzma

    return lzma.LZMADecompressor(), (*damage, lzma.LZMAError)


def _inflate(data: bytes, form: str, limit: int) -> bytes:
    """The decompressed stream (streams one after another too), cut at `limit` bytes;
    up to the damage when the data is corrupt or truncated."""
    out = bytearray()
    pending = memoryview(data)
    while pending and len(out) < limit:
        d, damage = _decompressor(form)
        rest = b""
        try:
            for at in range(0, len(pending), _CHUNK):
                out += d.decompress(pending[at : at + _CHUNK], limit - len(out))
                if len(out) >= limit:
                    break
                if d.eof:
                    rest = d.unused_data + bytes(pending[at + _CHUNK :])
                    break
        except damage:
            break  # corrupt from here on: what came before is kept
        # another stream after this one: `cat a.gz b.gz`, pbzip2's and parallel xz's output
        pending = memoryview(rest if kind(rest) == form else b"")
    return bytes(out)  # max_length kept it within the limit


def _zip(data: bytes, budget: Budget) -> Iterator[tuple[str, bytes]]:
    import io
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return  # no central directory (truncated): the caller matches the raw bytes
    for info in infos:
        if info.is_dir() or info.flag_bits & 0x1 or budget.left <= 0:
            continue  # encrypted members cannot be read without their password
        try:
            with archive.open(info) as member:
                content = member.read(budget.limit())
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                RuntimeError, zlib.error):
            continue  # one damaged member (or an unsupported method) is passed over
        yield info.filename, budget.take(content)


def _tar(data: bytes, budget: Budget) -> Iterator[tuple[str, bytes]]:
    import io
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for info in archive:
                if not info.isfile() or budget.left <= 0:
                    continue
                member = archive.extractfile(info)
                if member is not None:
                    yield info.name, budget.take(member.read(budget.limit()))
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return  # a truncated tar: the members before the damage were given
