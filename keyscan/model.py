"""The few value types every stage of the pipeline shares.

sources -> match -> attribute -> ownership -> act -> report. Each stage takes and
returns these plain, frozen values; none of them can print a secret by accident.
"""

from __future__ import annotations

import enum

from keyscan.record import field, record

# A fixed key: fingerprints must be stable across runs and machines (baselines,
# ignore files), and must not be a plain hash a reader could look up.
_FINGERPRINT_KEY = b"keyscan-fingerprint-v1"


SHOWN = 4  # a redacted secret shows at most this many of its first characters


def _keyed_digest(data: bytes) -> str:
    """HMAC-SHA256 of `data` under the fingerprint key (keyscan/digest.py: imported
    once a finding needs it, not by every pre-commit run). The same value found in many
    places (an example key in 400 files) is digested once: the answers are kept in this
    process, never written anywhere."""
    known = _DIGESTS.get(data)
    if known is None:
        from keyscan.digest import hmac_sha256

        known = hmac_sha256(_FINGERPRINT_KEY, data)
        if len(_DIGESTS) >= _DIGESTS_KEPT:
            _DIGESTS.clear()
        _DIGESTS[data] = known
    return known


_DIGESTS: dict[bytes, str] = {}
_DIGESTS_KEPT = 4096


def value_digest(key_id: str, secret: Secret | None, session_token: Secret | None) -> str:
    """A finding's `value_digest`, from its parts."""
    parts = [key_id]
    for value in (secret, session_token):
        if value is not None:
            parts.append(value.digest())
            break
    return _keyed_digest("\0".join(parts).encode())


class Secret:
    """A found credential value whose str/repr never shows it.

    Only the report layer calls `reveal()`, and only on `--show-secrets`; redacted
    output shows `prefix()` and the length. Logging, tracebacks and `record.asdict`
    see a mask.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def prefix(self) -> str:
        """What a redacted report shows: the first characters, at most a quarter."""
        return self._value[: min(SHOWN, len(self._value) // 4)]

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Secret(<{len(self)} chars>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return False
        from keyscan.digest import compare_digest  # as in `_keyed_digest`

        if type(self) is Secret and type(other) is Secret:
            return compare_digest(self._value, other._value)
        return compare_digest(self.digest(), other.digest())

    def __hash__(self) -> int:
        return hash(("Secret", self.digest()))

    def digest(self) -> str:
        """A keyed hash of the value: identifies it without revealing it."""
        return _keyed_digest(self._value.encode())


class SealedSecret(Secret):
    """A secret known only by what a redacted report shows of it and by its digest:
    what the incremental cache keeps of a finding, so a re-scan need not read its
    object again. It cannot be revealed: a scan that must show or use secrets
    (`--show-secrets`, `--verify-live`) reads those objects again."""

    __slots__ = ("_digest", "_length")

    def __init__(self, prefix: str, length: int, digest: str) -> None:
        super().__init__(prefix)
        self._length = length
        self._digest = digest

    def reveal(self) -> str:
        raise ValueError("a sealed secret cannot be revealed: read its object again")

    def prefix(self) -> str:
        return self._value

    def __len__(self) -> int:
        return self._length

    def digest(self) -> str:
        return self._digest


class Role(str, enum.Enum):
    """What part of an AWS credential a rule finds."""

    KEY_ID = "key-id"
    SECRET = "secret"
    SESSION_TOKEN = "session-token"
    GENERIC = "generic"


class Status(str, enum.Enum):
    LEAK = "leak"  # fails the build
    EXAMPLE = "example"  # documentation example or placeholder: listed, never fails
    ALLOWED = "allowed"  # suppressed by an inline keyscan:allow comment


SEVERITIES = ("low", "medium", "high", "critical")


@record
class Rule:
    id: str
    description: str
    severity: str
    role: Role
    regex: str
    keywords: tuple[str, ...] = ()
    allow_values: tuple[str, ...] = ()  # regexes: a matching value is not reported
    allow_paths: tuple[str, ...] = ()  # globs: files never reported by this rule
    example_values: tuple[str, ...] = ()  # regexes: a matching value is an example
    prefixes: tuple[tuple[str, str], ...] = ()  # key-id: (prefix, what it means)
    boundary: str = "A-Za-z0-9"  # characters that may not touch the value
    value_chars: str = ""  # secrets: the value alphabet, used when pairing near an ID
    value_length: int = 0
    near_lines: int = 0  # secrets/tokens: look this many lines around each key ID
    near_prefixes: tuple[str, ...] = ()  # tokens: only near IDs with these prefixes
    placeholder: bool = False  # every match is a placeholder: listed as an example
    source: str = ""  # the file the rule came from


@record
class Match:
    """One value a rule matched in one piece of content (pure matcher output)."""

    rule: Rule
    value: Secret
    line: int  # 1-based
    column: int  # 1-based, in characters of the line
    end_line: int
    status: Status = Status.LEAK
    encoding: str = "plain"  # plain | base64 | percent | utf-16 | gzip | zip ... joined by +
    line_text: str = ""  # the line with the value already masked: safe context


@record
class Location:
    """Where content came from: a file now, a staged blob, or a blob in history."""

    path: str
    blob: str = ""  # git blob id when the content came from git
    source: str = "worktree"  # worktree | staged | history | commit-message | stdin


@record
class Commit:
    sha: str
    author_name: str
    author_email: str
    author_date: str
    commit_date: str
    message: str = ""  # first line only


# The note --verify-live leaves on a pair it could not try (not a failure: no AWS step ran)
LIVENESS_NOT_CHECKED = "liveness not checked"


@record
class Ownership:
    """Whose key a found key ID is: offline classification, then (with --verify) IAM's answer.

    Failures are values here (`error`), never exceptions: one key's failure never
    stops the others.
    """

    classification: str = "unknown"  # ours | foreign | unknown | canary
    account: str = ""  # decoded offline, or from sts:GetAccessKeyInfo
    checked: bool = False  # IAM/STS were asked (--verify)
    confirmed: bool = False  # IAM lists the key under a user of the operator's account
    user: str = ""
    arn: str = ""
    root: bool = False  # a root-user key: critical
    status: str = ""  # Active | Inactive, per iam:ListAccessKeys
    created: str = ""
    last_used: str = ""
    last_service: str = ""
    last_region: str = ""
    key_count: int = 0  # the owner's access keys (IAM allows at most two)
    live: bool | None = None  # --verify-live: the found pair signs requests (None: not known)
    live_arn: str = ""
    action: str = ""  # what deactivation did or would do
    notes: tuple[str, ...] = ()
    error: str = ""


@record
class Finding:
    """A credential found at a location: the unit every reporter consumes.

    `key_id`/`secret`/`session_token` hold the AWS parts when known; a paired
    finding has both an ID and a secret.
    """

    rule_id: str
    description: str
    severity: str
    status: Status
    location: Location
    line: int
    column: int
    kind: str = "key-id"  # pair | key-id | secret | session-token | generic
    key_id: str = ""  # key IDs are identifiers, not secrets: AWS logs them in CloudTrail
    key_type: str = ""  # e.g. "AKIA: long-term key of an IAM user"
    secret: Secret | None = None
    session_token: Secret | None = None
    encoding: str = "plain"  # how the content was encoded: "plain", "base64", "zip+base64"...
    member: str = ""  # the file inside the archive at `location` ("a.jar!b.properties")
    line_text: str = ""
    account: str = ""  # decoded offline from the key ID, "" when it cannot be
    commit: Commit | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    ownership: Ownership | None = None  # keyscan.aws: offline classification, --verify

    @property
    def value_digest(self) -> str:
        """Identifies the credential across files and commits without revealing it."""
        return value_digest(self.key_id, self.secret, self.session_token)

    @property
    def fingerprint(self) -> str:
        """Stable identity for baselines and ignore files: rule, path and value.

        Not the line number, so a finding keeps its fingerprint when lines move.
        """
        material = f"{self.rule_id}\0{self.location.path}\0{self.value_digest}"
        from keyscan.digest import sha256_hex

        return sha256_hex(material.encode("utf-8", "surrogateescape"))[:20]


@record
class Skipped:
    """Something the scan did not read, and why: never skipped silently."""

    path: str
    reason: str
    # a part inside `path` (an archive's member, "inner.jar!app.properties") that was not
    # read, when `path` itself was: not a gate's failure (no limit or fetch would help)
    member: str = ""


@record(frozen=False)
class ScanStats:
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    allowed: int = 0
    # credentials not reported because of where they are (allow_paths, --allow-path, a
    # rule's own allow_paths): counted, so that a settings change cannot hide them unseen
    path_allowed: int = 0
    ignored: int = 0  # fingerprints listed in .keyscanignore
    incremental: bool = False  # a history re-scan: only objects new since the last read
    baselined: int = 0  # known already: listed in the --baseline file


@record
class BaselineEntry:
    """A finding accepted into a baseline file: where and what, never the secret."""

    fingerprint: str
    rule: str
    kind: str
    path: str
    key_id: str = ""
    line: int = 0
    column: int = 0
    commit: str = ""


@record
class BaselineCheck:
    """What a scan with --baseline found out about the baseline file."""

    path: str
    entries: int  # entries in the baseline file
    stale: tuple[BaselineEntry, ...] = ()  # entries no longer found: fixed, or moved
    checked_stale: bool = True  # False on partial scans (--staged, --range)


@record(frozen=False)
class ScanResult:
    target: str
    mode: str  # worktree | staged | history | stdin
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    baseline: BaselineCheck | None = None
    # a gate (the pre-commit hook, a CI range) fails closed: an error, such as content
    # it could not read, makes it exit 2 rather than let the change through unscanned
    gate: bool = False
    # False when the history scanned is only part of it (a shallow or partial clone):
    # a baseline entry not found may be in the part that is not there, so none is stale
    whole_history: bool = True

    @property
    def leaks(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.LEAK]
