"""Keys inside archives and compressed files: a Lambda package, a jar, a tar.gz backup, a
gzipped dump. Found in the member they are in, at its line, in every kind of scan; what
unpacking reads is bounded; damaged archives give what can be read of them."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fakes import fake_key_id, fake_secret
from hypothesis import given, settings
from hypothesis import strategies as st
from repos import commit_all, git

from keyscan import unpack
from keyscan.match import Matcher
from keyscan.model import Finding, Status
from keyscan.rules import load_rules

Cli = Callable[..., Any]
Find = Callable[..., list[Finding]]


def env_file(key: str, secret: str, before: int = 1) -> bytes:
    """A .env with the pair on lines before+1 and before+2."""
    return ("# settings\n" * before + f"AWS_ACCESS_KEY_ID={key}\n"
            f"AWS_SECRET_ACCESS_KEY={secret}\n").encode()


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def tarred(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def pair() -> tuple[str, str]:
    return fake_key_id(), fake_secret()


FORMATS: dict[str, tuple[Callable[[bytes], bytes], str, str]] = {
    # name: (pack the .env, encoding reported, member reported)
    "zip": (lambda d: zipped({"README.txt": b"hello\n" * 50, "app/.env": d}), "zip",
            "app/.env"),
    "stored zip": (lambda d: zipped({"app/.env": d}, zipfile.ZIP_STORED), "zip", "app/.env"),
    "gzip": (gzip.compress, "gzip", ""),
    "tar.gz": (lambda d: tarred({"home/.env": d}), "gzip+tar", "home/.env"),
    "tar": (lambda d: tarred({"home/.env": d}, "w"), "tar", "home/.env"),
    "bzip2": (bz2.compress, "bzip2", ""),
    "xz": (lzma.compress, "xz", ""),
    "jar in a zip": (lambda d: zipped({"lib/app.jar": zipped({"app.properties": d})}),
                     "zip+zip", "lib/app.jar!app.properties"),
    "concatenated gzip": (lambda d: gzip.compress(b"first member\n") + gzip.compress(d),
                          "gzip", ""),
    "concatenated bzip2": (lambda d: bz2.compress(b"first member\n") + bz2.compress(d),
                           "bzip2", ""),
    "concatenated xz": (lambda d: lzma.compress(b"first member\n") + lzma.compress(d),
                        "xz", ""),
}


@pytest.mark.parametrize("form", FORMATS)
def test_a_pair_inside_is_found_at_the_members_line(find: Find, pair: tuple[str, str],
                                                    form: str) -> None:
    pack, encoding, member = FORMATS[form]
    [finding] = find(pack(env_file(*pair, before=3)), path="dist/bundle")
    assert (finding.kind, finding.key_id, finding.status) == ("pair", pair[0], Status.LEAK)
    assert finding.secret is not None and finding.secret.reveal() == pair[1]
    assert (finding.encoding, finding.member) == (encoding, member)
    # the lines of a gzip made of two go on from the first one's
    assert (finding.line, finding.column) == (5 if form.startswith("concatenated") else 4, 19)


def test_base64_text_in_a_member_names_both_encodings(find: Find, pair: tuple[str, str]
                                                      ) -> None:
    import base64

    manifest = b"data:\n  credentials: " + base64.b64encode(
        f"[default]\naws_access_key_id = {pair[0]}\naws_secret_access_key = {pair[1]}\n"
        .encode()) + b"\n"
    [finding] = find(zipped({"k8s/secret.yaml": manifest}))
    assert (finding.encoding, finding.member, finding.kind) == ("zip+base64", "k8s/secret.yaml",
                                                                "pair")


def test_an_allow_comment_inside_a_member_is_honoured(find: Find, pair: tuple[str, str]
                                                      ) -> None:
    data = f"AWS_ACCESS_KEY_ID={pair[0]}  # keyscan:allow\n".encode()
    [finding] = find(zipped({"docs/example.env": data}))
    assert finding.status is Status.ALLOWED


def test_text_starting_like_an_archive_is_matched_as_text(find: Find, pair: tuple[str, str]
                                                          ) -> None:
    # "PK", "BZ" and a gzip-looking start open no archive: the bytes are matched as they are
    for start in (b"PK_ID=1\n", b"BZh91AY&SY\n", b"\x1f\x8b not gzip\n"):
        [finding] = find(start + env_file(*pair))
        assert (finding.encoding, finding.member, finding.line) == ("plain", "", 3)


def test_a_damaged_archive_gives_what_can_be_read(find: Find, pair: tuple[str, str]) -> None:
    # a truncated gzip: the part before the cut is matched
    text = env_file(*pair) + bytes(range(256)) * 4096
    cut = gzip.compress(text)[:-4000]
    [finding] = find(cut)
    assert (finding.key_id, finding.encoding) == (pair[0], "gzip")
    # a zip whose one member is corrupt: the others are still read
    good = zipped({"a.bin": bytes(range(256)) * 64, "b/.env": env_file(*pair)})
    broken = bytearray(good)
    header = broken.index(b"a.bin") + len("a.bin")
    broken[header + 10 : header + 40] = b"\xff" * 30  # inside a.bin's deflated bytes
    [finding] = find(bytes(broken))
    assert finding.member == "b/.env"
    # a zip cut before its central directory: no member can be listed, the stored bytes
    # are matched as they are
    stored = zipped({"c/.env": env_file(*pair)}, zipfile.ZIP_STORED)
    [finding] = find(stored[: stored.index(b"PK\x01\x02")])
    assert (finding.key_id, finding.encoding, finding.member) == (pair[0], "plain", "")


def test_what_unpacking_reads_is_bounded(find: Find, pair: tuple[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpack, "MEMBER_LIMIT", 4096)
    early, late = env_file(*pair), b"x" * 8000 + b"\n" + env_file(*pair)
    assert [f.member for f in find(zipped({"early.env": early}))] == ["early.env"]
    assert find(zipped({"late.env": late})) == []  # beyond the member's first 4 KB
    # the whole archive gives at most TOTAL_LIMIT bytes, members after that are not read
    monkeypatch.setattr(unpack, "TOTAL_LIMIT", 3 * 4096)
    many = {f"{i}.txt": b"y" * 4096 for i in range(3)}
    assert find(zipped({**many, "last.env": early})) == []
    assert [f.member for f in find(zipped({"first.env": early, **many}))] == ["first.env"]


def test_archives_nested_too_deep_are_not_opened(find: Find, pair: tuple[str, str]) -> None:
    data = zipped({"c.env": env_file(*pair)})
    for _ in range(unpack.MAX_DEPTH):
        data = zipped({"inner.zip": data})
    assert [f.member for f in find(data)] == []  # the fourth level is matched raw: deflated
    three = zipped({"a.zip": zipped({"b.zip": zipped({"c.env": env_file(*pair)})})})
    assert [f.member for f in find(three)] == ["a.zip!b.zip!c.env"]


def test_a_compression_bomb_costs_its_limit_not_its_size(find: Find) -> None:
    mb = b"\0" * (1 << 20)
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join([*(deflate.compress(mb) for _ in range(1024)), deflate.flush()])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in "abcd":
            with archive.open(name, "w", force_zip64=True) as member:
                for _ in range(256):
                    member.write(mb)
    assert len(bomb) + len(buf.getvalue()) < 10 << 20  # 2 GB in under 10 MB
    started = time.perf_counter()
    assert find(bomb) == []
    assert find(buf.getvalue()) == []
    assert time.perf_counter() - started < 60  # a generous bound: ~1.5 s here


# -- through the CLI, on real repositories ------------------------------------------------


def test_a_working_tree_scan_reports_the_member_in_every_format(
        cli: Cli, repo: Path, pair: tuple[str, str]) -> None:
    (repo / "function.zip").write_bytes(zipped({"handler.py": b"import os\n",
                                                "config/.env": env_file(*pair)}))
    text = cli("scan", repo)
    assert text.code == 1
    assert "function.zip!config/.env:2:19" in text.out and "encoded  zip" in text.out
    doc = json.loads(cli("scan", repo, "--format", "json").out)
    [finding] = doc["findings"]
    assert (finding["path"], finding["member"], finding["encoding"], finding["line"]) == \
        ("function.zip", "config/.env", "zip", 2)
    schema = json.loads((Path(__file__).parent.parent / "keyscan" / "schema" /
                         "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    sarif = json.loads(cli("scan", repo, "--format", "sarif").out)
    [result] = sarif["runs"][0]["results"]
    assert result["properties"]["member"] == "config/.env"
    assert "config/.env, inside this archive (zip)" in result["message"]["text"]
    assert pair[1] not in text.out + json.dumps(doc) + json.dumps(sarif)


def test_the_hook_stops_a_commit_of_an_archive_holding_a_key(
        cli: Cli, repo: Path, pair: tuple[str, str]) -> None:
    (repo / "backup.tar.gz").write_bytes(tarred({"home/.aws/credentials": (
        f"[default]\naws_access_key_id = {pair[0]}\n"
        f"aws_secret_access_key = {pair[1]}\n").encode()}))
    git(repo, "add", "backup.tar.gz")
    result = cli("scan", "--staged", repo)
    assert result.code == 1
    assert "backup.tar.gz!home/.aws/credentials:2:" in result.out


def test_history_finds_a_deleted_archive_and_keeps_the_member_in_its_cache(
        cli: Cli, repo: Path, pair: tuple[str, str]) -> None:
    (repo / "README").write_text("readme\n")
    commit_all(repo, "start")
    (repo / "lambda.zip").write_bytes(zipped({"src/settings.py": (
        f"KEY = '{pair[0]}'\nSECRET = '{pair[1]}'\n").encode()}))
    commit_all(repo, "add the deployment package")
    added = git(repo, "rev-parse", "HEAD").stdout.strip()
    git(repo, "rm", "-q", "lambda.zip")
    commit_all(repo, "remove the package")

    def scan(*extra: str) -> dict[str, Any]:
        result = cli("scan", "--history", repo, "--format", "json", *extra)
        assert result.code == 1, result.err
        [finding] = json.loads(result.out)["findings"]
        return dict(finding)

    fresh = scan("--no-cache")
    assert (fresh["path"], fresh["member"], fresh["encoding"]) == \
        ("lambda.zip", "src/settings.py", "zip")
    assert fresh["commit"]["sha"] == added and fresh["in_head"] is False
    assert [(o["path"], o["member"], o["line"]) for o in fresh["occurrences"]] == \
        [("lambda.zip", "src/settings.py", 1)]
    first, again = scan(), scan()  # the second from the cache, sealed
    assert first == again == fresh
    (repo / "other.txt").write_text("more\n")
    commit_all(repo, "another")
    assert scan() == fresh
    story = cli("explain", fresh["fingerprint"], repo)
    assert "lambda.zip!src/settings.py:1" in story.out, story.out + story.err


@settings(max_examples=300, deadline=None)
@given(form=st.sampled_from(sorted(FORMATS)), cut=st.integers(0, 4000),
       flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8))
def test_any_damage_to_an_archive_is_matched_not_raised(form: str, cut: int,
                                                        flips: list[tuple[int, int]]) -> None:
    """Truncated or corrupted at random: no exception from any decompressor or archive
    reader reaches the caller, and the key is found when the damage spares the archive."""
    data = bytearray(FORMATS[form][0](env_file(_PAIR[0], _PAIR[1])))
    whole = cut >= len(data)
    for at, byte in flips:
        if at < len(data):
            whole = whole and data[at] == byte
            data[at] = byte
    found = _MATCHER.find(bytes(data[: max(cut, 2)]))
    if whole:
        assert [(c.anchor.value, c.anchor.encoding) for c in found] == \
            [(_PAIR[0], FORMATS[form][1])]


_PAIR = (fake_key_id(), fake_secret())
_MATCHER = Matcher(load_rules())


# -- hostile archives (found by QA) ---------------------------------------------------------


def test_a_corrupt_member_of_any_method_is_passed_over(find: Find, pair: tuple[str, str]
                                                       ) -> None:
    """An LZMA member whose stream is damaged raised LZMAError out of the whole scan."""
    for method in (zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2, zipfile.ZIP_DEFLATED):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("a.txt", b"hello world " * 50, compress_type=method)
            archive.writestr("b.env", env_file(*pair), compress_type=zipfile.ZIP_DEFLATED)
        broken = bytearray(buf.getvalue())
        for i in range(44, 52):  # inside a.txt's compressed bytes
            broken[i] ^= 0xFF
        assert [f.member for f in find(bytes(broken))] == ["b.env"], method


def test_a_member_with_an_empty_name_is_read(find: Find, pair: tuple[str, str]) -> None:
    """zipfile's is_dir() raised IndexError on a member named ""."""
    raw = bytearray(zipped({"x": env_file(*pair)}))
    # rename "x" to "": each header's name length 1 -> 0, the name's byte dropped
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    del raw[central + 46]
    raw[central + 28 : central + 30] = b"\0\0"
    del raw[local + 30]
    raw[local + 26 : local + 28] = b"\0\0"
    end = raw.index(b"PK\x05\x06")  # the directory is a byte shorter, and starts earlier
    size = int.from_bytes(raw[end + 12 : end + 16], "little")
    raw[end + 12 : end + 20] = (size - 1).to_bytes(4, "little") + \
        (central - 1).to_bytes(4, "little")
    assert zipfile.ZipFile(io.BytesIO(bytes(raw))).namelist() == [""]
    [finding] = find(bytes(raw))
    assert (finding.key_id, finding.encoding, finding.member) == (pair[0], "zip", "")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_and_lzma_members_are_inflated_within_the_limit(
        method: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """zipfile inflates these methods without a bound: a 901-byte zip took 2 GB."""
    import tracemalloc

    monkeypatch.setattr(unpack, "MEMBER_LIMIT", 1 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        archive.writestr("zeros", b"\0" * (64 << 20))
    tracemalloc.start()
    try:
        got = [c for _, name, c in unpack.members(buf.getvalue(), unpack.Budget()) if name]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [len(c) for c in got] == [1 << 20]
    assert peak < 16 << 20, peak


def test_every_entry_costs_some_of_the_budget(find: Find, pair: tuple[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip of many empty entries (or many entries naming one nested zip) cost time
    without cost: 74 s for a 2.8 MB file."""
    monkeypatch.setattr(unpack, "TOTAL_LIMIT", 100 * unpack.ENTRY_COST)
    empty = {f"e{i}": b"" for i in range(200)}
    assert find(zipped({**empty, "z.env": env_file(*pair)})) == []
    assert [f.member for f in find(zipped({"a.env": env_file(*pair), **empty}))] == ["a.env"]


def test_what_is_outside_the_members_is_matched_as_it_is(find: Find, pair: tuple[str, str]
                                                         ) -> None:
    """Once an archive was opened, its own bytes were no longer matched: a key in a zip's
    comment, in a member's name, or appended after a zip or a gzip was missed."""
    text = env_file(*pair)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", b"nothing\n")
        archive.comment = text
    cases = {
        "zip comment": buf.getvalue(),
        "after a zip": zipped({"a.txt": b"nothing\n"}) + b"\n" + text,
        "after a gzip": gzip.compress(b"nothing\n") + text,
        "member name": zipped({f"creds/{pair[0]}/x.txt": b"nothing\n"}),
    }
    for case, data in cases.items():
        found = find(data)
        assert pair[0] in {f.key_id for f in found}, case
        assert all(f.member == "" and f.encoding == "plain" for f in found), case
        # at the archive's own line (members are left out of what is matched, their line
        # breaks are not)
        first = data[: data.index(pair[0].encode())].count(b"\n") + 1
        assert min(f.line for f in found if f.key_id == pair[0]) == first, case


def test_a_zip_after_a_program_is_opened(find: Find, pair: tuple[str, str]) -> None:
    """A self-extractor (or any stub before the zip): only the end of a zip says it is one."""
    data = b"#!/bin/sh\nexec unzip \"$0\"\n" + zipped({"conf/.env": env_file(*pair)})
    [finding] = find(data)
    assert (finding.member, finding.encoding, finding.kind) == ("conf/.env", "zip", "pair")


def test_a_range_that_leaks_and_cannot_read_everything_fails_closed(
        cli: Cli, repo: Path, pair: tuple[str, str]) -> None:
    """The leak's exit code came first: 1, or 0 with --exit-code 0 (report-only CI), while
    an object the range added went unscanned."""
    (repo / "README").write_text("readme\n")
    commit_all(repo, "base")
    (repo / "leak.env").write_bytes(env_file(*pair))
    (repo / "big.csv").write_text("x,y\n" * 1000)
    commit_all(repo, "leak and a big file")
    for extra in ([], ["--exit-code", "0"]):
        result = cli("scan", "--range", "HEAD~1..HEAD", repo, "--max-file-size", "1k", *extra)
        assert result.code == 2 and "not cleared" in result.err, extra
        assert pair[0] in result.out
    sarif = json.loads(cli("scan", "--range", "HEAD~1..HEAD", repo, "--max-file-size", "1k",
                           "--format", "sarif").out)
    [invocation] = sarif["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert any(n["level"] == "error" and "not cleared" in n["message"]["text"]
               for n in invocation["toolExecutionNotifications"])
    clean = json.loads(cli("scan", "--range", "HEAD~1..HEAD", repo, "--format", "sarif").out)
    assert clean["runs"][0]["invocations"][0]["executionSuccessful"] is True


# -- what is not read is said, never passed over silently -----------------------------------


def encrypted(members: dict[str, bytes], locked: str) -> bytes:
    """A zip whose member `locked` is marked encrypted (zipfile writes no encryption:
    the flag is what readers go by)."""
    raw = bytearray(zipped(members))
    name = locked.encode()
    for magic, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = 0
        while (at := raw.find(magic, at)) >= 0:
            header = at + (30 if magic == b"PK\x03\x04" else 46)
            if raw[header : header + len(name)] == name:
                raw[at + flags] |= 0x1
            at += 4
    return bytes(raw)


def unread(data: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    """The members findings were made in, and what the matcher says it did not read."""
    found = _MATCHER.find(data)
    return [c.anchor.member for c in found], _MATCHER.unread


def test_an_encrypted_member_is_named_and_the_others_read(pair: tuple[str, str]) -> None:
    data = encrypted({"locked.env": b"x" * 100, "open.env": env_file(*pair)}, "locked.env")
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("locked.env").flag_bits & 0x1
    members, notes = unread(data)
    assert members == ["open.env"]
    assert notes == [("locked.env", "encrypted zip member: cannot be read without its "
                                    "password")]
    assert _MATCHER.find(b"plain text") == [] and _MATCHER.unread == []  # the last call's
    # inside a nested archive, the note names the path down to it
    _, notes = unread(tarred({"dist/bundle.zip": data}))
    assert [m for m, _ in notes] == ["dist/bundle.zip!locked.env"]


def test_what_a_limit_cuts_is_named(pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    monkeypatch.setattr(unpack, "MEMBER_LIMIT", 4096)
    members, notes = unread(zipped({"big.log": b"y" * 8000, "exact.txt": b"z" * 4096}))
    assert members == []
    assert notes == [("big.log", "only its first 4096 bytes read (the limit for one member)")]
    _, notes = unread(gzip.compress(b"y" * 8000))
    assert notes == [("(gzip content)", "only its first 4096 bytes read (the limit for one "
                                        "member)")]
    # the archive's total: the members past it are named, the first with a count
    monkeypatch.setattr(unpack, "TOTAL_LIMIT", 3 * 4096)
    many = {f"{i}.txt": b"y" * 4096 for i in range(3)}
    _, notes = unread(zipped({**many, "a.env": env_file(*pair), "b.env": b"b"}))
    assert notes == [("a.env", "not read, nor the 1 after it: the archive reached its limit "
                               "of 12288 bytes unpacked")]
    _, notes = unread(tarred({**many, "a.env": env_file(*pair)}, "w"))
    assert notes == [("a.env", "not read, nor the members after it: the archive reached "
                               "its limit of 12288 bytes unpacked")]


def test_damage_and_depth_are_named(pair: tuple[str, str]) -> None:
    good = zipped({"a.bin": bytes(range(256)) * 64, "b/.env": env_file(*pair)})
    broken = bytearray(good)
    header = broken.index(b"a.bin") + len("a.bin")
    broken[header + 10 : header + 40] = b"\xff" * 30  # inside a.bin's deflated bytes
    members, notes = unread(bytes(broken))
    assert members == ["b/.env"]
    assert [m for m, _ in notes] == ["a.bin"] and "damaged" in notes[0][1]
    # a second gzip stream damaged in its middle: the first is read, the damage named
    second = bytearray(gzip.compress(bytes(range(256)) * 64))
    second[40:60] = b"\0" * 20
    _, notes = unread(gzip.compress(env_file(*pair)) + bytes(second))
    assert [m for m, _ in notes] == ["(gzip content)"] and "damaged" in notes[0][1]
    # archives nested deeper than MAX_DEPTH: the one not opened is named
    data = zipped({"c.env": env_file(*pair)})
    for name in ("c.zip", "b.zip", "a.zip"):
        data = zipped({name: data})
    members, notes = unread(data)
    assert members == []
    assert notes == [("a.zip!b.zip!c.zip", "archives nested deeper than 3 levels (a "
                                           "compressed tar counts two): its members not "
                                           "unpacked, its bytes matched as they are")]
    # an archive read whole says nothing
    assert unread(zipped({"a.zip": zipped({"b.env": env_file(*pair)})}))[1] == []


def test_a_scan_lists_what_an_archive_did_not_give_and_still_passes(
        cli: Cli, repo: Path, pair: tuple[str, str]) -> None:
    (repo / "vault.zip").write_bytes(encrypted({"prod.env": b"locked\n", "notes.txt": b"hi\n"},
                                               "prod.env"))
    (repo / "README").write_text("readme\n")
    text = cli("scan", repo, "--verbose")
    assert text.code == 0, text.err
    assert "vault.zip!prod.env: encrypted zip member: cannot be read without its password" \
        in text.out
    doc = json.loads(cli("scan", repo, "--format", "json").out)
    assert doc["skipped"] == [{"path": "vault.zip", "member": "prod.env", "reason":
                               "encrypted zip member: cannot be read without its password"}]
    assert doc["summary"]["skipped"] == 1
    schema = json.loads((Path(__file__).parent.parent / "keyscan" / "schema" /
                         "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    # the hook: an encrypted member cannot be read by anyone, so it does not stop a commit
    git(repo, "add", "vault.zip")
    staged = cli("scan", "--staged", repo, "--format", "json")
    assert staged.code == 0, staged.err
    assert [s["member"] for s in json.loads(staged.out)["skipped"]] == ["prod.env"]


@pytest.mark.parametrize("read_packs,workers", [("1", 2), ("0", 1), ("0", 2)])
def test_history_names_what_an_archive_did_not_give_in_every_scan(
        cli: Cli, repo: Path, pair: tuple[str, str], read_packs: str, workers: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Full scans (from the packs, or through git; in worker processes or not), re-scans
    from the cache and a CI range all list it; a range is cleared all the same (no fetch
    or flag would read it)."""
    from keyscan.sources import history as source

    monkeypatch.setenv("KEYSCAN_READ_PACKS", read_packs)
    monkeypatch.setenv("KEYSCAN_WORKERS", str(workers))
    monkeypatch.setattr(source, "PARALLEL_BYTES", 0 if workers > 1 else 1 << 30)
    (repo / "README").write_text("readme\n")
    commit_all(repo, "start")
    data = encrypted({"prod.env": b"locked\n", "open.env": env_file(*pair)}, "prod.env")
    (repo / "vault.zip").write_bytes(data)
    commit_all(repo, "add the vault")
    blob = git(repo, "rev-parse", "HEAD:vault.zip").stdout.strip()
    git(repo, "gc", "-q")
    expected = [{"path": f"blob {blob}", "member": "prod.env",
                 "reason": "encrypted zip member: cannot be read without its password"}]

    def skipped(*args: str) -> list[dict[str, str]]:
        result = cli("scan", *args, repo, "--format", "json")
        assert result.code == 1, result.err  # open.env's pair
        doc = json.loads(result.out)
        assert [f["member"] for f in doc["findings"]] == ["open.env"]
        return [s for s in doc["skipped"] if "member" in s]

    assert skipped("--history", "--no-cache") == expected
    assert skipped("--history") == expected  # fills the cache
    (repo / "other.txt").write_text("more\n")
    commit_all(repo, "another")
    assert skipped("--history") == expected  # from the cache: the vault read again
    ranged = cli("scan", "--range", "HEAD~2..HEAD", repo, "--format", "json")
    assert ranged.code == 1 and "not cleared" not in ranged.err, ranged.err
    assert [s for s in json.loads(ranged.out)["skipped"] if "member" in s] == expected
