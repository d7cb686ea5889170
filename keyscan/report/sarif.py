"""SARIF 2.1.0 for GitHub code scanning: leaks are results, the rules are the driver's.

A result from a commit's or annotated tag's message is in no file. GitHub code scanning
rejects a whole upload when one result's first location has no physical location with
an artifact URI that reads as a path (`locationFromSarifResult`), so such a result
keeps one, relative to the `GITOBJECTS` base (the repository's objects, declared in
`originalUriBaseIds`, not its tree), beside a logical location naming the commit or
tag. Every history result carries its commit (a tag's message: the tag) in its
properties, as the JSON report's `commit`.

A history finding still in HEAD gives one result for each place it is in HEAD's tree
(`head_places`), at that line: code scanning shows results on the files of the commit
scanned, where the line it was first committed at may be another. A finding only in
history is placed where it was first committed.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from keyscan import __version__
from keyscan.model import Finding, ScanResult, Status
from keyscan.report.json import commit_dict
from keyscan.report.redact import printable, show

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
_SCORE = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}
_MESSAGES = {"commit-message": "commit", "tag-message": "tag"}  # source -> git object
_OBJECTS = "GITOBJECTS"


def render(result: ScanResult, reveal: bool = False) -> str:
    leaks = [f for f in result.findings if f.status in (Status.LEAK, Status.ALLOWED)]
    placed = [(f, place) for f in leaks for place in _places(f)]
    rule_ids = sorted({f.rule_id for f in leaks})
    rules_by_id = {f.rule_id: f for f in leaks}
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keyscan",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": "https://github.com/keyscan/keyscan",
                "rules": [_rule(rid, rules_by_id[rid]) for rid in rule_ids],
            }},
            "results": [_result(f, rule_ids.index(f.rule_id), reveal, key, place)
                        for (f, place), key in zip(
                            placed, _partial_fingerprints([f for f, _ in placed]),
                            strict=True)],
            "invocations": [_invocation(result)],
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": {_OBJECTS: {"description": {"text": (
                "the scanned repository's commits and annotated tags: a result there is "
                "in the message of the commit or tag named, not in a file")}}},
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


def _places(f: Finding) -> list[dict[str, Any] | None]:
    """Where `f`'s results go: each of its places in HEAD's tree, or (None) where it was
    found."""
    places = f.extra.get("head_places")
    return list(places) if isinstance(places, list) and places else [None]


def _partial_fingerprints(leaks: list[Finding]) -> list[str]:
    """Each result's own `partialFingerprints` value. A fingerprint names a credential in
    a file, so the same key twice in one file (two lines, two members of an archive, one
    line allowed inline and one not) shares it; code scanning merges results with equal
    fingerprints into one alert, where an allowed (suppressed) line could then close a
    leak's alert. The first keeps the fingerprint, the n-th gets `:n` (as CodeQL numbers
    equal line hashes): stable across runs and line moves, unique in the run."""
    seen: dict[str, int] = {}
    keys = []
    for f in leaks:
        n = seen[f.fingerprint] = seen.get(f.fingerprint, 0) + 1
        keys.append(f.fingerprint if n == 1 else f"{f.fingerprint}:{n}")
    return keys


def _invocation(result: ScanResult) -> dict[str, Any]:
    """Whether the scan read all it should have: a CI range that could not read what it
    added (or a hook a staged file) says so here, so an upload does not read as a clean
    run; its errors and notes as notifications."""
    said = [("error", e) for e in result.errors] + [("note", n) for n in result.notes]
    return {"executionSuccessful": not result.errors,
            "toolExecutionNotifications": [
                {"level": level, "message": {"text": printable(text)}} for level, text in said]}


def _rule(rule_id: str, sample: Finding) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": "".join(w.capitalize() for w in rule_id.split("-")),
        "shortDescription": {"text": sample.description.split(" with ")[0]},
        "fullDescription": {"text": f"keyscan rule {rule_id}: AWS credentials in source"},
        "help": {"text": "Remove the credential and rotate it: deactivate the key in IAM and "
                         "create a new one. History and remotes may already hold it."},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["security", "secret", "aws"], "security-severity": "8.0"},
    }


def _result(f: Finding, index: int, reveal: bool, fingerprint: str,
            place: dict[str, Any] | None = None) -> dict[str, Any]:
    path, line, column = f.location.path, f.line, f.column
    member = f.member
    if place is not None:  # in HEAD's tree now: there, not where it first came in
        path, line, column = str(place["path"]), int(place["line"]), int(place["column"])
        member = str(place.get("member") or "")
    what = f.description
    if f.key_id:
        what += f" {f.key_id}"
    if f.secret is not None:
        what += f" (secret {show(f.secret, reveal)})"
    # a message's finding whose key is in HEAD's files too: placed in those files
    kind = _MESSAGES.get(f.location.source) if place is None else None
    if kind is not None:
        what += f" in the message of {kind} {f.location.blob[:12]}"
    if member:  # the region's line is the member's
        what += f" in {printable(member)}, inside this archive ({f.encoding.split('+')[0]})"
    properties: dict[str, Any] = {"security-severity": _SCORE.get(f.severity, "8.0"),
                                  "kind": f.kind, "source": f.location.source}
    if f.commit is not None:
        properties["commit"] = commit_dict(f.commit)
    if member:
        properties["member"] = printable(member)
    out: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": _LEVEL.get(f.severity, "error"),
        "message": {"text": what},
        "locations": [_location(f, kind) if kind is not None else {"physicalLocation": {
            "artifactLocation": {"uri": quote(path.encode("utf-8", "surrogateescape"))},
            "region": {"startLine": line, "startColumn": column},
        }}],
        "partialFingerprints": {"keyscan/v1": fingerprint},
        "properties": properties,
    }
    if f.status is Status.ALLOWED:
        out["suppressions"] = [{"kind": "inSource", "justification": "keyscan:allow"}]
    return out


def _location(f: Finding, kind: str) -> dict[str, Any]:
    """Where a result in the message of a commit or tag (`kind`) is: that message, line
    and column, named as an object of the repository, never as a file of its tree."""
    sha = f.location.blob
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": f"{kind}/{sha}", "uriBaseId": _OBJECTS},
            "region": {"startLine": f.line, "startColumn": f.column},
        },
        "logicalLocations": [{"kind": kind, "name": sha, "fullyQualifiedName": f"{kind}/{sha}"}],
        "message": {"text": f"the message of {kind} {sha}"},
    }
