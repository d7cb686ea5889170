"""Properties over large input spaces: matching anywhere in any text, redaction of any value."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable

from fakes import BASE32
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyscan.match import Matcher
from keyscan.model import Finding, Location, ScanResult, Secret, Status
from keyscan.report import json as json_report
from keyscan.report import sarif as sarif_report
from keyscan.report import text as text_report
from keyscan.report.redact import SHOWN, show

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

key_ids = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["AKIA", "ASIA", "ABIA", "ACCA", "A3TQ", "A3T7"]),
    st.text(alphabet=BASE32, min_size=16, max_size=16),
)
# Text around a key: anything printable, tabs and newlines (line endings are tested
# elsewhere), with non-ASCII characters so columns must count characters, not bytes.
filler = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\x85")
    | st.sampled_from("\n\t "),
    max_size=300,
)
separators = st.sampled_from([*" \t\n,;:=\"'`()[]{}<>|!?#&*@", "%2F", "%3D", "\\n", " = "])


def position(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line_start = before.rfind("\n") + 1
    return before.count("\n") + 1, index - line_start + 1


@FAST
@given(key=key_ids, before=filler, after=filler, left=separators, right=separators)
@example(key="AKIA" + "Q" * 16, before="", after="", left=" ", right=" ")
def test_a_key_anywhere_in_text_is_found_once_at_its_place(
        find: Callable[[str | bytes], list[Finding]], key: str, before: str, after: str,
        left: str, right: str) -> None:
    text = before + left + key + right + after
    found = [f for f in find(text) if f.key_id == key]
    assert len(found) == 1, [(f.kind, f.line, f.column) for f in find(text)]
    start = len(before) + len(left)
    assert (found[0].line, found[0].column) == position(text, start)


@FAST
@given(keys=st.lists(key_ids, min_size=2, max_size=6, unique=True), gaps=st.lists(
    st.sampled_from([" ", "\n", ", ", "\n\n\n", '", "']), min_size=6, max_size=6))
def test_many_keys_in_one_text_are_each_found(
        find: Callable[[str | bytes], list[Finding]], keys: list[str], gaps: list[str]) -> None:
    text = "".join(gap + key for gap, key in zip(gaps, keys, strict=False))
    assert sorted(f.key_id for f in find(text)) == sorted(keys)


@FAST
@given(data=st.binary(max_size=2000))
def test_any_bytes_are_matched_without_error(matcher: Matcher, data: bytes) -> None:
    matcher.find(data)


@FAST
@given(data=st.binary(max_size=500), key=key_ids)
def test_a_key_in_any_binary_is_found(find: Callable[[str | bytes], list[Finding]],
                                      data: bytes, key: str) -> None:
    half = len(data) // 2
    blob = data[:half] + b"\0" + key.encode() + b"\0" + data[half:]
    assert key in {f.key_id for f in find(blob)}


secrets = st.text(alphabet=string.ascii_letters + string.digits + "/+", min_size=40,
                  max_size=40)
tokens = st.text(alphabet=string.ascii_letters + string.digits + "/+=", min_size=100,
                 max_size=400)


@FAST
@given(secret=secrets.filter(lambda s: any(c.isupper() for c in s) and any(
    c.islower() for c in s) and any(c.isdigit() for c in s)), escape_plus=st.booleans())
def test_a_secret_in_json_is_found_whatever_its_encoder_escapes(
        find: Callable[[str | bytes], list[Finding]], secret: str, escape_plus: bool) -> None:
    text = json.dumps({"SecretAccessKey": secret}).replace("/", "\\/")
    if escape_plus:
        text = text.replace("+", "\\u002B")
    assert [f.secret.reveal() for f in find(text) if f.secret] == [secret]


@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=200))
def test_redaction_never_shows_more_than_4_characters(value: str) -> None:
    out = show(Secret(value), reveal=False)
    assert out is not None
    shown, _, rest = out.partition("…")
    assert len(shown) <= SHOWN and value.startswith(shown)
    assert len(shown) <= len(value) // 4  # a short value shows even less
    assert rest == f"({len(value)} chars, redacted)"
    assert show(Secret(value), reveal=True) == value


_HEX_DIGEST = re.compile(r"\b[0-9a-f]{20,64}\b")


def every_report(secret: str, token: str, status: Status) -> list[str]:
    finding = Finding(
        rule_id="aws-access-key-id", description="AWS access key ID", severity="critical",
        status=status, location=Location(path="a b/c.ini"), line=3, column=7, kind="pair",
        key_id="", secret=Secret(secret), session_token=Secret(token))
    result = ScanResult(target=".", mode="worktree", findings=[finding])
    return [json_report.render(result), json_report.render_lines(result),
            sarif_report.render(result), text_report.render(result, verbose=True),
            text_report.summary(result), repr(finding), str(finding)]


@FAST
@given(secret=secrets, token=tokens, status=st.sampled_from(list(Status)))
@example(secret="tq26UH1Ln8ZV/jSAZ5BdlkfgTtUDNGg0kOTu7JFd", token="0" * 100,  # keyscan:allow
         status=Status.LEAK)  # its fingerprint happens to hold "00000"
def test_no_report_shows_a_5_character_piece_of_a_secret(secret: str, token: str,
                                                         status: Status) -> None:
    pieces = {v[i : i + 5] for v in (secret, token) for i in range(len(v) - 4)}
    # fingerprints are hex digests of the value: by chance they can hold 5 characters of
    # it (a token of zeros, a fingerprint with "00000" in it), which reveals nothing
    real = [_HEX_DIGEST.sub("#", out) for out in every_report(secret, token, status)]
    # the same report for stand-in values: what it prints whatever the secret is
    stand_in = every_report("~" * len(secret), "~" * len(token), status)
    for out, baseline in zip(real, stand_in, strict=True):
        assert not {p for p in pieces if p in out and p not in baseline}


@settings(max_examples=500, deadline=None)
@given(when=st.integers(-(2**34), 2**35), minutes=st.integers(-14 * 60, 14 * 60))
def test_commit_dates_are_read_as_datetime_reads_them(when: int, minutes: int) -> None:
    """attribute.timestamp reads git's ISO dates by arithmetic (no datetime import on a
    re-scan): the same instant as datetime, in every time zone and year."""
    from datetime import datetime, timedelta, timezone

    from keyscan.attribute import timestamp

    iso = datetime.fromtimestamp(when, timezone(timedelta(minutes=minutes))).isoformat()
    assert timestamp(iso) == datetime.fromisoformat(iso).timestamp()


# -- commit metadata: keyscan's one parser against git's own formatting ------------------

_ident_text = st.text(alphabet=st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="<>\n\x85\u2028\u2029"),
    min_size=1, max_size=30).map(str.strip).filter(bool)
_message = st.lists(st.text(alphabet=st.characters(  # \x1f: the test's field separator
    blacklist_categories=("Cs",), blacklist_characters="\x00\x85\x1f"),
                            max_size=40), min_size=1, max_size=5).map("\n".join)
_zones = st.sampled_from(["+0000", "-0000", "+0100", "-0700", "+0530", "+1345", "-1200",
                          "+1400", "-0930"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_ident_text, email=_ident_text,  # git refuses times before 1970 in any zone
       when=st.integers(50_400, 4_102_444_800),
       zone=_zones, message=_message, latin1=st.booleans())
def test_commit_metadata_is_read_as_git_log_shows_it(
        tmp_path_factory: object, name: str, email: str, when: int, zone: str,
        message: str, latin1: bool) -> None:
    """Every commit a history report names (author, email, dates, subject) is read by
    `recent.parse_commit`, fresh scans and re-scans alike (through gitpython, or from
    the files): what it reads must be what `git log` shows, for any name, time zone,
    subject (git's %s: the first paragraph, its lines joined) and encoding header."""
    import subprocess

    from keyscan.attribute import masked_subject
    from keyscan.sources.recent import parse_commit

    repo = tmp_path_factory.mktemp("meta")  # type: ignore[attr-defined]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    encoding = "ISO-8859-1" if latin1 else ""
    codec = "latin-1" if latin1 else "utf-8"
    if latin1:
        name, email, message = (text.encode("latin-1", "replace").decode("latin-1")
                                for text in (name, email, message))
    header = (f"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
              f"author {name} <{email}> {when} {zone}\n"
              f"committer Tester <t@example.com> {when + 60} {zone}\n"
              + (f"encoding {encoding}\n" if encoding else "") + "\n")
    data = (header + message).encode(codec)
    sha = subprocess.run(["git", "-C", str(repo), "hash-object", "-t", "commit", "-w",
                          "--literally", "--stdin"], input=data, capture_output=True,
                         check=True).stdout.decode().strip()
    shown = subprocess.run(["git", "-C", str(repo), "log", "-1", "-z", sha,
                            "--format=%an%x1f%ae%x1f%aI%x1f%cI%x1f%s"],
                           capture_output=True, check=True).stdout
    fields = shown.rstrip(b"\0").decode("utf-8", "replace").split("\x1f")
    git_says = (*fields[:4], masked_subject(fields[4]))

    meta = parse_commit(sha, data).meta

    assert (meta.author_name, meta.author_email, meta.author_date, meta.commit_date,
            meta.message) == git_says
