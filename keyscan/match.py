"""Pure matching: bytes + compiled rules -> credentials. No I/O, no git, no AWS.

The hot path per piece of content is one literal-prefixed regex pass for key IDs,
a couple of `bytes.find` calls for secret keywords and one rare-prefix regex for
base64 text. Everything slower (the 40-character secret class, decoders) runs only
on the few lines those passes point at.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence

from keyscan import decode
from keyscan.lazy import lazy_pattern
from keyscan.model import Role, SealedSecret, Secret, Status
from keyscan.prefilter import BASE64, KEY, Prefilter, literal
from keyscan.record import field, record
from keyscan.rules import CompiledRule, RuleSet

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from keyscan import unpack

ALLOW_MARK = b"keyscan:allow"
_NEAREST = 8  # key IDs considered on each side of a secret, per line
_MAX_DEPTH = 2  # base64 inside base64 is real (a base64 credentials file in a k8s Secret)
# unpack.kind() says whether content starting so (or ending as a zip) is an archive
_ARCHIVE_STARTS = (b"\x1f\x8b", b"PK", b"BZ", b"\xfd7")
_WIDE_STEMS = (b"A\0K\0I\0A\0", b"A\0S\0I\0A\0", b"e\0c\0r\0e\0t\0", b"E\0C\0R\0E\0T\0")


@record(frozen=False)
class Hit:
    """One value one rule matched, with its byte span in the top-level content."""

    rule: CompiledRule
    value: str
    start: int
    end: int
    encoding: str = "plain"
    near_only: bool = False  # a secret found only because a key ID was near it


@record
class Part:
    rule: CompiledRule
    value: str  # "" when `sealed`
    line: int
    column: int
    status: Status
    encoding: str
    sealed: SealedSecret | None = None  # the value as the cache keeps it (`to_rows(seal=True)`)
    member: str = ""  # the file inside an archive it was found in ("a.jar!x.properties")


@record(frozen=False)
class Credential:
    """What the matcher reports: one credential, possibly a paired ID + secret (+ token)."""

    key_id: Part | None = None
    secret: Part | None = None
    token: Part | None = None
    other: Part | None = None
    parts: list[Part] = field(default_factory=list)

    @property
    def anchor(self) -> Part:
        first = self.key_id or self.secret or self.token or self.other
        assert first is not None
        return first

    @property
    def status(self) -> Status:
        # One real part makes the whole credential real: a real key ID next to the
        # documentation's example secret is still a leaked key ID, and a `keyscan:allow`
        # covers its own line only (a marked key ID does not allow an unmarked secret
        # paired with it from another line).
        statuses = {p.status for p in self.parts}
        if Status.LEAK in statuses:
            return Status.LEAK
        if Status.ALLOWED in statuses:
            return Status.ALLOWED
        return Status.EXAMPLE


_SLOTS = ("key_id", "secret", "token", "other")
# slot, rule id, value, line, column, status, encoding, archive member; a sealed value
# is [what a redacted report shows, its length, its digest] (`to_rows(seal=True)`)
PartRow = tuple[str, str, "str | list[object]", int, int, str, str, str]


def to_rows(creds: list[Credential], seal: bool = False) -> list[list[PartRow]]:
    """Credentials as plain rows (rule ids, not compiled rules): cheap to send from a
    worker process to its parent. `seal`: as the incremental cache keeps them, the value
    of a secret, a session token or a generic credential only as what a redacted report
    shows of it, its length and its digest; kept whole are key IDs (identifiers, which
    AWS logs in CloudTrail and every report shows) and documentation examples."""
    out = []
    for cred in creds:
        rows: list[PartRow] = []
        for slot in _SLOTS:
            p = getattr(cred, slot)
            if p is None:
                continue
            value: str | list[object] = p.value
            secret = p.sealed if p.sealed is not None else (
                Secret(p.value) if seal and slot != "key_id" and p.status is not Status.EXAMPLE
                else None)
            if secret is not None:
                value = [secret.prefix(), len(secret), secret.digest()]
            rows.append((slot, p.rule.rule.id, value, p.line, p.column, p.status.value,
                         p.encoding, p.member))
        out.append(rows)
    return out


def from_rows(rows: Sequence[Sequence[Sequence[object]]],
              rules: RuleSet | dict[str, CompiledRule]) -> list[Credential]:
    """Credentials from `to_rows`, sealed or not (as the cache gives them back).
    `rules`: or the rules by id (`rules_by_id`), for many calls."""
    by_id = rules if isinstance(rules, dict) else rules_by_id(rules)
    creds = []
    for cred_rows in rows:
        cred = Credential()
        for slot, rule_id, value, line, column, status, encoding, member in cred_rows:
            sealed = SealedSecret(str(value[0]), int(value[1]), str(value[2])) \
                if isinstance(value, list) else None
            part = Part(by_id[str(rule_id)], "" if sealed else str(value),
                        int(line), int(column),  # type: ignore[call-overload]
                        _STATUS[str(status)], str(encoding), sealed, str(member))
            setattr(cred, str(slot), part)
            cred.parts.append(part)
        creds.append(cred)
    return creds


_STATUS = {s.value: s for s in Status}  # a dict lookup: Status(value) costs ~1 us a call


def rules_by_id(rules: RuleSet) -> dict[str, CompiledRule]:
    return {r.rule.id: r for r in rules.rules}


_CAPITALS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_LONG_RUN = 32


def _inside_longer_text(data: bytes, s: int, e: int) -> bool:
    """Whether a key-ID-shaped match in binary content is a piece of longer text rather
    than a value stored next to others: capitals running on through it on both sides
    (names stored without spaces: "...CAUCASIANALBANIANCITATION..."), or a base64 run
    going on for _LONG_RUN characters both ways (an embedded base64 file)."""
    if data[s - 1] in _CAPITALS and data[e] in _CAPITALS:
        return True
    left = data[max(0, s - _LONG_RUN) : s]
    right = data[e : e + _LONG_RUN]
    return (len(left) == len(right) == _LONG_RUN
            and all(c in _BASE64 for c in left) and all(c in _BASE64 for c in right))


# Bytes matched before Hyperscan starts, for a caller that opts in: importing it and
# loading its database costs ~7 ms, what `re` and `bytes.find` take for ~1.5 MB.
ENGINE_AFTER = 1 << 20


class Matcher:
    """Rules compiled once into the few passes the hot path makes."""

    def __init__(self, rules: RuleSet, engine_after: int = 0) -> None:
        """`engine_after`: the prefilter engine starts once this many bytes have been
        matched without it (0: at once). The findings are the same either way."""
        self.rules = rules
        self.key_rules = rules.by_role(Role.KEY_ID)
        self.line_rules = tuple(r for r in rules.rules if r.rule.role is not Role.KEY_ID)
        self.boundaries = {
            id(r): frozenset(_class_bytes(r.rule.boundary)) for r in self.key_rules
        }
        prefixes = sorted({p.encode() for r in self.key_rules for p, _ in r.rule.prefixes})
        self.b64_pattern, self.b64_files = decode.base64_triggers(
            [p for p in prefixes if len(p) >= 4])
        keywords = sorted({k for r in self.line_rules for k in r.keywords})
        self._spec = (self._triggers(prefixes), keywords)
        self._engine_after = engine_after
        self.prefilter = Prefilter(*self._spec, engine=engine_after <= 0)
        self._lines = _LineMemo(self.line_rules)
        self._gated = self._gate()
        # (member, why): what of the archive the last `find` matched was not read, or
        # not wholly (`unpack.Budget.unread`); usually empty
        self.unread: list[tuple[str, str]] = []

    def _gate(self) -> bool:
        # every pass is behind a trigger (no keyword-less rule, key IDs by prefix): then
        # content with no trigger, no NUL byte and no byte-order mark holds nothing
        return (self.prefilter.active and KEY in self.prefilter.names
                and all(r.keywords or r.rule.near_prefixes for r in self.line_rules))

    def _triggers(self, prefixes: list[bytes]) -> dict[str, list[bytes]]:
        triggers: dict[str, list[bytes]] = {
            BASE64: [self.b64_pattern.pattern, *(literal(f) for f in self.b64_files)],
        }
        # a key rule without declared prefixes could match anywhere: never gate it
        if self.key_rules and all(r.rule.prefixes for r in self.key_rules):
            triggers[KEY] = [literal(p) for p in prefixes]
        # rule keywords need no trigger of their own: the same pass locates each of them
        return triggers

    def find(self, data: bytes) -> list[Credential]:
        if self.unread:
            self.unread = []  # the last call's
        return _not_reported(self._find(data, None), data)

    def _find(self, data: bytes, budget: unpack.Budget | None) -> list[Credential]:
        """`budget`: what the archive `data` came out of may still unpack (None: `data`
        is no archive's member)."""
        if (data.startswith(_ARCHIVE_STARTS) or data.startswith(b"ustar", 257)
                or data.startswith(b"PK\x05\x06", len(data) - 22)):
            from keyscan import unpack  # imported when an archive is first met

            top = budget or unpack.Budget()
            found = self._unpacked(data, top)
            if budget is None:
                self.unread = top.unread
            if found is not None:
                return found
        return self._raw(data, budget)

    def _raw(self, data: bytes, budget: unpack.Budget | None) -> list[Credential]:
        """The credentials in `data` as it is (and, UTF-16 text, as decoded)."""
        if self._engine_after > 0:
            self._engine_after -= len(data)
            if self._engine_after <= 0:  # enough content to pay for the engine
                self.prefilter = Prefilter(*self._spec)
                self._gated = self._gate()
        scanned = self.prefilter.scan(data) if self._gated else None
        if (scanned is not None and not scanned[0] and not scanned[1]
                and b"\0" not in data and data[:2] not in decode.UTF16_BOMS):
            return []  # most content of a history: one Hyperscan pass and done
        text = decode.utf16_text(data)
        # The raw bytes are matched too: a byte-order mark or a UTF-16 start says nothing
        # of the rest (ASCII after a stray mark, a log that goes on in ASCII). Their wide
        # strings are the decoded text's: matched there only, once.
        hits = self._hits(data, 0, scanned, wide=text is None)
        found = _assemble(data, hits) if hits else []
        if text is not None:
            found = [_with_encoding(c, "utf-16") for c in self._find(text, budget)] + found
        return found

    def _unpacked(self, data: bytes, budget: unpack.Budget) -> list[Credential] | None:
        """The credentials in the members of the archive `data` is; None when it is none
        (or nothing of it can be read, or archives nest too deep): match its raw bytes."""
        from keyscan import unpack

        if budget.depth >= unpack.MAX_DEPTH:
            if budget.at and unpack.kind(data) is not None:
                budget.note("", f"archives nested deeper than {unpack.MAX_DEPTH} levels (a "
                                "compressed tar counts two): its members not unpacked, its "
                                "bytes matched as they are")
            return None
        budget.depth += 1
        found: list[Credential] | None = None
        for form, name, content in unpack.members(data, budget):
            found = found or []
            if name is None:  # its bytes outside the members: names, comment, stub
                found.extend(self._raw(content, budget))
            else:
                budget.at.append(name)
                found.extend(_with_encoding(c, form, name)
                             for c in _not_reported(self._find(content, budget), content))
                budget.at.pop()
        budget.depth -= 1
        return found

    # -- passes -------------------------------------------------------------

    def _hits(self, data: bytes, depth: int,
              scanned: tuple[frozenset[str], dict[bytes, list[int]]] | None = None,
              wide: bool = True) -> list[Hit]:
        hits: list[Hit] = []
        # one pass: which triggers occur, and where every rule keyword is
        if depth == 0 and scanned is None:
            scanned = self.prefilter.scan(data)
        triggers, located = scanned if scanned is not None else (None, None)
        present: dict[bytes, bool] = {}  # rules sharing keywords scan for them once
        if located is not None:
            present = {k: bool(located.get(k)) for r in self.line_rules for k in r.keywords}
        if triggers is None or KEY in triggers or KEY not in self.prefilter.names:
            for rule in self.key_rules:
                hits.extend(self._key_ids(rule, data))
        key_hits = [h for h in hits if h.rule.rule.role is Role.KEY_ID]
        for rule in self.line_rules:
            if rule.rule.near_prefixes:
                # e.g. session tokens: only looked for around the key IDs they belong to
                hits.extend(_near_rule_hits(rule, data, key_hits))
            elif not rule.keywords:
                hits.extend(_span_hits(rule, data, 0, len(data)))
            elif any(_has(data, k, present) for k in rule.keywords):
                hits.extend(self._keyword_hits(rule, data, present, located))
            if rule.near_pattern is not None and key_hits:
                hits.extend(_near_hits(rule, data, key_hits))
        if depth < _MAX_DEPTH and (triggers is None or BASE64 in triggers):
            hits.extend(self._base64_hits(data, depth))
        if depth == 0 and wide and b"\0" in data:
            hits.extend(self._wide_hits(data))
        return hits

    def _key_ids(self, rule: CompiledRule, data: bytes) -> list[Hit]:
        bad = self.boundaries[id(rule)]
        # Binary formats store values back to back (a SQLite row: "aws_access_key_id"
        # then the key), so there a key ID may touch other letters; in text it may not.
        binary = b"\0" in data[:8192]
        out = []
        for m in rule.pattern.finditer(data):
            s, e = m.span("value")
            before = s > 0 and data[s - 1] in bad
            after = e < len(data) and data[e] in bad
            if binary:
                if before and after and _inside_longer_text(data, s, e):
                    continue
            elif (before and not _after_escape(data, s, bad)) or after:
                continue
            out.append(Hit(rule, m.group("value").decode("ascii", "replace"), s, e))
        return out

    def _keyword_hits(self, rule: CompiledRule, data: bytes, present: dict[bytes, bool],
                      located: dict[bytes, list[int]] | None) -> list[Hit]:
        out: list[Hit] = []
        done: set[int] = set()
        for keyword in rule.keywords:
            if not _has(data, keyword, present):
                continue
            for pos in _positions(data, keyword, located):
                ls, le = _line_bounds(data, pos)
                if ls in done:
                    continue
                done.add(ls)
                # and the line after, when the keyword ends its line (but for the rest of
                # its word, quotes and punctuation): the value of a two-line form (a
                # Kubernetes env list's `- name: AWS_SECRET_ACCESS_KEY` then `value: ...`)
                # or an XML element's (`<name>fs.s3a.secret.key</name>` then `<value>`)
                end = pos + len(keyword)
                if le < len(data) and le - end < 64 and \
                        not _closing_tag(data[end:le].lstrip(_WORD)).strip(_LABEL_END):
                    le = _line_bounds(data, le + 1)[1]
                out.extend(self._lines.hits(rule, data, ls, le))
        return out

    def _base64_hits(self, data: bytes, depth: int) -> list[Hit]:
        out: list[Hit] = []
        seen_end = -1
        for pos in self._base64_positions(data):
            if pos < seen_end:
                continue
            start, end = decode.base64_run(data, pos)
            block = decode.base64_block(data, start, end)
            decoded = decode.decode_base64(block[2]) if block else None
            if block and decoded is not None:  # the key may straddle a line break
                start, end = block[0], block[1]
            else:
                decoded = decode.decode_base64(data[start:end])
            seen_end = end
            if decoded is None:
                continue
            for hit in self._hits(decoded, depth + 1):
                out.append(Hit(hit.rule, hit.value, start, end, "base64", hit.near_only))
        return out

    def _base64_positions(self, data: bytes) -> list[int]:
        positions = [m.start() for m in self.b64_pattern.finditer(data)]
        for stem in self.b64_files:
            pos = data.find(stem)
            while pos != -1:
                positions.append(pos)
                pos = data.find(stem, pos + 1)
        return sorted(positions)

    def _wide_hits(self, data: bytes) -> list[Hit]:
        """UTF-16 text without a byte-order mark (Windows tools, .reg exports)."""
        out: list[Hit] = []
        if not any(stem in data for stem in _WIDE_STEMS):
            return out  # one check on the data before any copy of it
        for offset in (0, 1):
            view = data[offset:]
            if not any(stem in view for stem in _WIDE_STEMS):
                continue
            text = view[: len(view) - len(view) % 2].decode("utf-16-le", "replace")
            utf8 = text.encode("utf-8")
            for hit in self._hits(utf8, _MAX_DEPTH):
                chars = len(utf8[: hit.start].decode("utf-8", "replace"))
                start = offset + 2 * chars
                end = start + 2 * len(hit.value)
                out.append(Hit(hit.rule, hit.value, start, end, "utf-16", hit.near_only))
        return out


def _not_reported(found: list[Credential], data: bytes) -> list[Credential]:
    """`found` in `data`, less the key IDs of keyscan's own report (gzipped or zipped
    too): it names key IDs found elsewhere, not new ones. Secrets one shows whole
    (--show-secrets) are leaks like any other."""
    if found and _own_report(data):
        return [c for c in found if c.secret or c.token or c.other]
    return found


def _own_report(data: bytes) -> bool:
    """Whether `data` is a report keyscan wrote: JSON, JSON Lines (a scan's or an audit's),
    SARIF or the text report, told by how each starts."""
    head = data[:1024]
    if head.startswith(b'{\n  "schema_version": '):
        return b'"tool": {"name": "keyscan"' in head
    if head.startswith((b'{"rule": "', b'{"repo": "')):
        return b'"fingerprint": "' in data[: data.find(b"\n") if b"\n" in data else None]
    if head.startswith(b'{\n  "$schema": "https://json.schemastore.org/sarif-2.1.0.json"'):
        return b'"name": "keyscan"' in head
    return _TEXT_REPORT.match(head) is not None


_TEXT_REPORT = lazy_pattern(
    rb"(?:LEAK|EXAMPLE|ALLOWED) +(?:critical|high|medium|low) +\S.*:\d+:\d+  ")


class _LineMemo:
    """What a rule found on a line, by the line's bytes.

    A history holds the same lines in version after version of a file (botocore's
    models repeat their `SecretAccessKey` documentation in every release), so a
    history scan meets most keyword lines many times. A line's hits depend only on
    its bytes and on whether it starts the content (`^`, `\\b`), except for rules that
    look behind: those are never memoized. Bounded: cleared past `_BYTES`.
    """

    _BYTES = 16 * 1024 * 1024

    def __init__(self, rules: tuple[CompiledRule, ...]) -> None:
        self._safe = {id(r) for r in rules if b"(?<" not in r.pattern.pattern}
        self._memo: dict[tuple[int, bool, bytes], list[tuple[str, int, int, str, bool]]] = {}
        self._size = 0

    def hits(self, rule: CompiledRule, data: bytes, start: int, end: int) -> list[Hit]:
        if id(rule) not in self._safe:
            return _span_hits(rule, data, start, end)
        key = (id(rule), start == 0, data[start:end])
        found = self._memo.get(key)
        if found is None:
            found = [(h.value, h.start - start, h.end - start, h.encoding, h.near_only)
                     for h in _span_hits(rule, data, start, end)]
            self._size += end - start + 100
            if self._size > self._BYTES:
                self._memo.clear()
                self._size = end - start + 100
            self._memo[key] = found
        return [Hit(rule, value, start + s, start + e, encoding, near)
                for value, s, e, encoding, near in found]


def _positions(data: bytes, keyword: bytes, located: dict[bytes, list[int]] | None
               ) -> Iterator[int]:
    if located is not None and keyword in located:
        yield from located[keyword]
        return
    pos = data.find(keyword)
    while pos != -1:
        yield pos
        pos = data.find(keyword, pos + 1)


# what may follow a label that ends its line (`|`, `>-`: a YAML block scalar)
_LABEL_END = b" \t\r\"',:;={(<>/|-+"
_WORD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-."  # its rest


def _closing_tag(rest: bytes) -> bytes:
    """`rest` less the XML closing tag it starts with, if any."""
    return rest[rest.find(b">") + 1 :] if rest.startswith(b"</") else rest


def _has(data: bytes, keyword: bytes, present: dict[bytes, bool]) -> bool:
    found = present.get(keyword)
    if found is None:
        found = present[keyword] = keyword in data
    return found


def _near_rule_hits(rule: CompiledRule, data: bytes, key_hits: list[Hit]) -> list[Hit]:
    """A keyword rule run only in the lines around key IDs with the rule's prefixes."""
    out: list[Hit] = []
    keys = [k for k in key_hits if k.value.startswith(tuple(rule.rule.near_prefixes))]
    for span in _key_windows(data, keys, rule.rule.near_lines):
        out.extend(_span_hits(rule, data, *span))
    return out


def _after_escape(data: bytes, pos: int, bad: frozenset[int]) -> bool:
    """`pos` follows an escaped separator: `key%3DAKIA...` in an encoded URL,
    `...\\nAKIA...` in a JSON or source-code string, or a quote written as `\\u0022`
    (.NET's JSON encoder, a JSON document serialized into a string) or `\\x22` (C, shell)."""
    if pos >= 2 and data[pos - 2] == 0x5C and data[pos - 1] in b"nrt":  # backslash
        return True
    escaped = (data[max(0, pos - 6) : pos - 2] == b"\\u00"
               or data[max(0, pos - 4) : pos - 2] == b"\\x" or (pos >= 3 and data[pos - 3] == 0x25))
    if not escaped:
        return False
    try:
        return int(data[pos - 2 : pos], 16) not in bad
    except ValueError:
        return False


def _class_bytes(spec: str) -> set[int]:
    pattern = re.compile(f"[{spec}]".encode())
    return {b for b in range(256) if pattern.fullmatch(bytes([b]))}


def _line_bounds(data: bytes, pos: int) -> tuple[int, int]:
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    return start, len(data) if end == -1 else end


def _span_hits(rule: CompiledRule, data: bytes, start: int, end: int) -> list[Hit]:
    """A rule's regex over one span, and over its unescaped forms if it has escapes."""
    out: dict[int, Hit] = {}  # by start
    for m in rule.pattern.finditer(data, start, end):
        hit = _value_hit(rule, m, 0, None, "plain")
        if hit is not None:
            out[hit.start] = hit
    values = {h.value for h in out.values()}
    for decoded, where, encoding in _unescaped(data[start:end]):
        for m in rule.pattern.finditer(decoded):
            hit = _value_hit(rule, m, start, where, encoding)
            if hit is not None and hit.value not in values:
                values.add(hit.value)
                # replaces a value of no fixed length (a session token) an escape cut short
                out[hit.start] = hit
    return list(out.values())


_Where = list[int] | decode.Offsets


def _unescaped(span: bytes) -> Iterator[tuple[bytes, _Where, str]]:
    """`span` decoded, with where each byte came from and the encoding to report, for
    each escaping it holds: percent-encoding (URLs), JSON's `\\/` and `\\u00XX`. The
    JSON form is reported as plain: it is the string's value, as any JSON reader gets it."""
    if b"%" in span:
        decoded, where = decode.percent_decode(span)
        if decoded != span:
            yield decoded, where, "percent"
    if b"\\/" in span or b"\\u00" in span:
        unescaped, offsets = decode.json_unescape(span)
        if unescaped != span:
            yield unescaped, offsets, "plain"


def _value_hit(rule: CompiledRule, m: re.Match[bytes], base: int, where: _Where | None,
               encoding: str) -> Hit | None:
    s, e = m.span("value")
    raw = m.group("value")
    if where is not None:
        s, e = where[s], where[e]
    length = rule.rule.value_length
    if rule.rule.role is Role.SECRET and length and len(raw) != length:
        # the 56-character form is the base64 of a 40-character secret (Kubernetes Secrets),
        # with its newline when made by `echo "$SECRET" | base64`
        decoded = decode.decode_base64(raw)
        if decoded is not None and decoded.endswith(b"\n"):
            decoded = decoded[:-1]
        if decoded is None or len(decoded) != rule.rule.value_length:
            return None
        if rule.near_pattern is None or not rule.near_pattern.fullmatch(decoded):
            return None
        raw, encoding = decoded, "base64"
    return Hit(rule, raw.decode("utf-8", "replace"), base + s, base + e, encoding)


def _near_hits(rule: CompiledRule, data: bytes, key_hits: list[Hit]) -> list[Hit]:
    """Secrets within a few lines of a key ID: the only place the bare class runs."""
    assert rule.near_pattern is not None
    out: list[Hit] = []
    for start, end in _key_windows(data, key_hits, rule.rule.near_lines):
        for m in rule.near_pattern.finditer(data, start, end):
            out.append(Hit(rule, m.group().decode("ascii"), m.start(), m.end(), near_only=True))
        for decoded, where, encoding in _unescaped(data[start:end]):
            for m in rule.near_pattern.finditer(decoded):
                s, e = where[m.start()] + start, where[m.end()] + start
                out.append(Hit(rule, m.group().decode("ascii"), s, e, encoding, True))
    return out


def _key_windows(data: bytes, keys: list[Hit], lines: int) -> list[tuple[int, int]]:
    """The distinct windows around key IDs, each line's found once: thousands of keys
    on one huge line stay linear (a window per key was quadratic)."""
    spans: dict[int, tuple[int, int]] = {}
    line_start = seen = 0
    for key in sorted(keys, key=lambda h: h.start):
        cut = data.rfind(b"\n", seen, key.start)  # only the stretch not yet seen
        seen = key.start
        if cut != -1:
            line_start = cut + 1
        if line_start not in spans:
            spans[line_start] = _window(data, key.start, key.end, lines)
    return list(dict.fromkeys(spans.values()))


def _window(data: bytes, start: int, end: int, lines: int) -> tuple[int, int]:
    """The span from `lines` lines above `start` to `lines` lines below `end`."""
    start = data.rfind(b"\n", 0, start) + 1
    for _ in range(lines):
        if start == 0:
            break
        start = data.rfind(b"\n", 0, start - 1) + 1
    for _ in range(lines + 1):
        nxt = data.find(b"\n", end)
        if nxt == -1:
            return start, len(data)
        end = nxt + 1
    return start, end - 1


# -- assembling hits into credentials -------------------------------------------


def _status(rule: CompiledRule, value: str, allow_marked: bool, near_only: bool
            ) -> Status | None:
    """None: allowlisted, not reported at all.

    A value next to its keyword that looks like an example (all one character,
    XXXX...) is listed as one even when the allowlist would drop it; a bare value
    found only near a key ID is dropped, so it cannot pair with a real ID.
    """
    example = rule.rule.placeholder or any(p.search(value) for p in rule.examples)
    if (near_only or not example) and any(p.search(value) for p in rule.allow_values):
        return None
    if allow_marked:
        return Status.ALLOWED
    return Status.EXAMPLE if example else Status.LEAK


def _assemble(data: bytes, hits: list[Hit]) -> list[Credential]:
    newline = b"\n" if b"\n" in data or b"\r" not in data else b"\r"
    unique: dict[tuple[str, str, int], Hit] = {}
    for hit in sorted(hits, key=lambda h: (h.start, h.near_only)):
        unique.setdefault((hit.rule.rule.id, hit.value, hit.start), hit)
    parts: dict[int, Part] = {}
    places = _Places(data, newline)
    for hit in unique.values():  # in order of position
        line, column, allow_marked = places.at(hit.start)
        status = _status(hit.rule, hit.value, allow_marked, hit.near_only)
        if status is None:
            continue
        parts[id(hit)] = Part(hit.rule, hit.value, line, column, status, hit.encoding)
    kept = [h for h in unique.values() if id(h) in parts]
    return _pair(kept, parts)


class _Places:
    """Line, column and allow mark of ascending positions, each found in time proportional
    to the distance from the previous one: thousands of hits on one 50 MB line stay linear
    (counting from the start of the content for each hit was quadratic)."""

    def __init__(self, data: bytes, newline: bytes) -> None:
        self.data, self.newline = data, newline
        self._start()

    def _start(self) -> None:
        # a byte-order mark is no character of line 1 (ASCII after one is matched raw)
        begin = 2 if self.data[:2] in decode.UTF16_BOMS else 0
        self.pos, self.line = 0, 1
        self.line_start, self.allow_marked = begin, self._marked(0)
        self.col_pos, self.col = begin, 1  # the column (in characters) at byte col_pos

    def _marked(self, start: int) -> bool:
        end = self.data.find(self.newline, start)
        return self.data.find(ALLOW_MARK, start, len(self.data) if end == -1 else end) != -1

    def at(self, pos: int) -> tuple[int, int, bool]:
        data = self.data
        if pos < self.pos:
            self._start()
        self.line += data.count(self.newline, self.pos, pos)
        cut = data.rfind(self.newline, self.pos, pos)  # only the stretch not yet seen
        if cut != -1:  # a new line: its mark is looked for once
            self.line_start = cut + len(self.newline)
            self.allow_marked = self._marked(self.line_start)
            self.col_pos, self.col = self.line_start, 1
        self.pos = pos
        # count characters incrementally only where a split cannot cut a UTF-8 sequence
        chars = len(data[self.col_pos : pos].decode("utf-8", "replace"))
        if pos == self.col_pos or data[pos - 1] < 0x80 or data[pos] < 0x80:
            self.col, self.col_pos = self.col + chars, pos
            return self.line, self.col, self.allow_marked
        column = len(data[self.line_start : pos].decode("utf-8", "replace")) + 1
        return self.line, column, self.allow_marked


def _pair(hits: list[Hit], parts: dict[int, Part]) -> list[Credential]:
    ids = [h for h in hits if h.rule.rule.role is Role.KEY_ID]
    secrets = [h for h in hits if h.rule.rule.role is Role.SECRET]
    tokens = [h for h in hits if h.rule.rule.role is Role.SESSION_TOKEN]
    others = [h for h in hits if h.rule.rule.role is Role.GENERIC]
    secrets = _drop_same_value_near(secrets)

    creds: dict[int, Credential] = {}
    for key in ids:
        creds[id(key)] = Credential(key_id=parts[id(key)], parts=[parts[id(key)]])
    # candidates: on each line within reach, the few IDs nearest the secret (every pair
    # of thousands of secrets and IDs was quadratic: a minute for a 1 MB file)
    by_line: dict[int, list[Hit]] = {}
    for key in ids:  # in position order
        by_line.setdefault(parts[id(key)].line, []).append(key)
    starts = {line: [k.start for k in keys] for line, keys in by_line.items()}
    options = []
    for s in secrets:
        line = parts[id(s)].line
        for other in range(line - s.rule.rule.near_lines, line + s.rule.rule.near_lines + 1):
            keys = by_line.get(other)
            if not keys:
                continue
            at = bisect.bisect_left(starts[other], s.start)
            for key in keys[max(0, at - _NEAREST) : at + _NEAREST]:
                # a secret its keyword labels wins over a bare value that is only near
                # (a CLOUDFLARE_API_TOKEN between AWS_ACCESS_KEY_ID and its secret)
                options.append((s.near_only, abs(line - other), key.start > s.start,
                                abs(key.start - s.start), id(s), id(key)))
    used_s: set[int] = set()
    used_k: set[int] = set()
    for *_, sid, kid in sorted(options):
        if sid in used_s or kid in used_k:
            continue
        used_s.add(sid)
        used_k.add(kid)
        creds[kid].secret = parts[sid]
        creds[kid].parts.append(parts[sid])
    out = list(creds.values())
    for s in secrets:
        if id(s) not in used_s and not s.near_only:
            out.append(Credential(secret=parts[id(s)], parts=[parts[id(s)]]))
    homes = _Homes([creds[id(k)] for k in ids])
    for t in tokens:
        home = homes.find(t, parts[id(t)].line)
        if home is not None:
            home.token = parts[id(t)]
            home.parts.append(parts[id(t)])
        else:
            out.append(Credential(token=parts[id(t)], parts=[parts[id(t)]]))
    out.extend(Credential(other=parts[id(o)], parts=[parts[id(o)]]) for o in others)
    return out


def _drop_same_value_near(secrets: list[Hit]) -> list[Hit]:
    """Keep a near-only hit only when no keyword hit found the same value at that spot."""
    keyed = {(h.value, h.start) for h in secrets if not h.near_only}
    values = {h.value for h in secrets if not h.near_only}
    return [h for h in secrets if not h.near_only or (h.value not in values and
                                                      (h.value, h.start) not in keyed)]


class _Homes:
    """The credential a session token belongs to: the nearest line's first key ID without
    a token (and with one of the token rule's prefixes), within the rule's reach."""

    def __init__(self, creds: list[Credential]) -> None:
        self.by_line: dict[int, list[Credential]] = {}
        for cred in creds:  # in position order
            if cred.key_id is not None:
                self.by_line.setdefault(cred.key_id.line, []).append(cred)
        self.first_free = dict.fromkeys(self.by_line, 0)  # credentials before it have tokens

    def find(self, token: Hit, line: int) -> Credential | None:
        prefixes = tuple(token.rule.rule.near_prefixes)
        for dist in range(token.rule.rule.near_lines + 1):
            for other in dict.fromkeys((line - dist, line + dist)):
                home = self._free(other, prefixes)
                if home is not None:
                    return home
        return None

    def _free(self, line: int, prefixes: tuple[str, ...]) -> Credential | None:
        creds = self.by_line.get(line)
        if not creds:
            return None
        at = self.first_free[line]
        while at < len(creds) and creds[at].token is not None:
            at += 1
        self.first_free[line] = at
        for cred in creds[at : at + _NEAREST]:
            key = cred.key_id
            if cred.token is None and key is not None and (
                    not prefixes or key.value.startswith(prefixes)):
                return cred
        return None


def _with_encoding(cred: Credential, encoding: str, member: str = "") -> Credential:
    """`cred` as found in content that was `encoding` (and was the archive member named
    `member`, "" for a compressed stream's only one)."""
    def relabel(p: Part | None) -> Part | None:
        if p is None:
            return None
        enc = encoding if p.encoding == "plain" else f"{encoding}+{p.encoding}"
        inner = "!".join(m for m in (member, p.member) if m)
        return Part(p.rule, p.value, p.line, p.column, p.status, enc, member=inner)

    parts = [relabel(p) for p in cred.parts]
    return Credential(relabel(cred.key_id), relabel(cred.secret), relabel(cred.token),
                      relabel(cred.other), [p for p in parts if p is not None])
