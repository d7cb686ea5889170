"""SARIF 2.1.0 for GitHub code scanning: leaks are results, the rules are the driver's."""

from __future__ import annotations

import json
from urllib.parse import quote

from keyscan import __version__
from keyscan.model import Finding, ScanResult, Status
from keyscan.report.redact import show

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
_SCORE = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}


def render(result: ScanResult, reveal: bool = False) -> str:
    leaks = [f for f in result.findings if f.status in (Status.LEAK, Status.ALLOWED)]
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
            "results": [_result(f, rule_ids.index(f.rule_id), reveal) for f in leaks],
            "columnKind": "unicodeCodePoints",
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


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


def _result(f: Finding, index: int, reveal: bool) -> dict[str, Any]:
    what = f.description
    if f.key_id:
        what += f" {f.key_id}"
    if f.secret is not None:
        what += f" (secret {show(f.secret, reveal)})"
    out: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": _LEVEL.get(f.severity, "error"),
        "message": {"text": what},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": quote(f.location.path.encode("utf-8", "surrogateescape"))},
            "region": {"startLine": f.line, "startColumn": f.column},
        }}],
        "partialFingerprints": {"keyscan/v1": f.fingerprint},
        "properties": {"security-severity": _SCORE.get(f.severity, "8.0"), "kind": f.kind},
    }
    if f.status is Status.ALLOWED:
        out["suppressions"] = [{"kind": "inSource", "justification": "keyscan:allow"}]
    return out
