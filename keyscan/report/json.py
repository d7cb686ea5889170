"""JSON and JSON Lines reports: stable, documented fields (see README "JSON report")."""

from __future__ import annotations

import json

from keyscan import __version__
from keyscan.model import LIVENESS_NOT_CHECKED, Commit, Finding, ScanResult, Skipped, Status
from keyscan.report.redact import printable, show

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1


def finding_dict(f: Finding, reveal: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": f.rule_id,
        "kind": f.kind,
        "status": f.status.value,
        "severity": f.severity,
        "description": f.description,
        "path": printable(f.location.path),
        "line": f.line,
        "column": f.column,
        "source": f.location.source,
        "key_id": f.key_id or None,
        "key_type": f.key_type or None,
        "account": f.account or None,
        "secret": show(f.secret, reveal),
        "session_token": show(f.session_token, reveal),
        "encoding": f.encoding,
        "member": printable(f.member) if f.member else None,
        "fingerprint": f.fingerprint,
        "blob": f.location.blob or None,
        "commit": None,
    }
    if f.commit is not None:
        out["commit"] = commit_dict(f.commit)
    out.update(_history_fields(f.extra))
    out.update(ownership_fields(f))
    return out


def _history_fields(extra: dict[str, Any]) -> dict[str, Any]:
    """A history finding's fields, with what a repository names (paths, members, refs)
    escaped as `path` is: a non-UTF-8 path gave a lone surrogate that strict JSON readers
    reject."""
    if not extra:
        return extra
    out = dict(extra)
    if isinstance(out.get("refs"), list):
        out["refs"] = [printable(r) for r in out["refs"]]
    for places in ("occurrences", "head_places"):
        if isinstance(out.get(places), list):
            out[places] = [
                {k: printable(v) if k in ("path", "member") and isinstance(v, str) else v
                 for k, v in o.items()} for o in out[places]]
    return out


def commit_dict(c: Commit) -> dict[str, str]:
    """A finding's commit (a tag's message: the tag) as the JSON schema's `commit`."""
    return {"sha": c.sha, "author_name": c.author_name, "author_email": c.author_email,
            "author_date": c.author_date, "commit_date": c.commit_date, "message": c.message}


def summary_dict(result: ScanResult) -> dict[str, Any]:
    count = {s: 0 for s in Status}
    for f in result.findings:
        count[f.status] += 1
    return {
        "files": result.stats.files,
        "bytes": result.stats.bytes,
        "seconds": round(result.stats.seconds, 3),
        "leaks": count[Status.LEAK],
        "examples": count[Status.EXAMPLE],
        "allowed": count[Status.ALLOWED],
        "skipped": len(result.skipped),
        "errors": len(result.errors),
        "ignored": result.stats.ignored,
        "allowed_by_path": result.stats.path_allowed,
        "incremental": result.stats.incremental,
        "baselined": result.stats.baselined,
    }


def baseline_dict(result: ScanResult) -> dict[str, Any] | None:
    """With --baseline: how many leaks it knew, and its entries this scan no longer finds."""
    from keyscan.baseline import entry_dict

    check = result.baseline
    if check is None:
        return None
    return {"file": printable(check.path), "entries": check.entries,
            "stale_checked": check.checked_stale,
            "stale": [entry_dict(e) for e in check.stale]}


def render(result: ScanResult, reveal: bool = False) -> str:
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "keyscan", "version": __version__},
        "target": printable(result.target),
        "mode": result.mode,
        "summary": summary_dict(result),
        "findings": [finding_dict(f, reveal) for f in result.findings],
        "skipped": [skipped_dict(s) for s in result.skipped],
        "errors": list(result.errors),
        "notes": list(result.notes),
        "baseline": baseline_dict(result),
    }
    return dump(doc)


def skipped_dict(s: Skipped) -> dict[str, str]:
    """What the scan did not read; `member`: a file inside the archive at `path`, which
    was read."""
    out = {"path": printable(s.path), "reason": s.reason}
    if s.member:
        out["member"] = printable(s.member)
    return out


def dump(doc: dict[str, Any]) -> str:
    """`doc` as JSON: a line for each key, and for each entry of a list (a finding, a
    skipped file), each compact. Still one finding per line to read or diff, and made by
    json's C encoder: `indent=2` takes the pure-Python one, ~5x slower (a history's
    report lists hundreds of occurrences)."""
    lines = []
    for key, value in doc.items():
        name = json.dumps(key)
        if isinstance(value, list) and value:
            items = ",\n    ".join(json.dumps(item) for item in value)
            lines.append(f"  {name}: [\n    {items}\n  ]")
        else:
            lines.append(f"  {name}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def render_lines(result: ScanResult, reveal: bool = False) -> str:
    return "".join(json.dumps(finding_dict(f, reveal)) + "\n" for f in result.findings)


# --- AWS ownership (keyscan.aws): the offline classification of every key ID always;
# "ownership" holds IAM's answer, null unless --verify/--verify-live asked AWS.
def ownership_fields(f: Finding) -> dict[str, Any]:
    from keyscan.aws.canaries import canary_service
    from keyscan.record import asdict

    own = f.ownership
    if own is not None:
        classification: str | None = own.classification
    elif f.key_id:
        classification = "canary" if canary_service(f.account) else "unknown"
    else:
        classification = None
    # a check made (IAM answered, the pair was tried), one that failed for this key, or a
    # pair --verify-live could not try (its note says why)
    checked = own is not None and (own.checked or own.live is not None or bool(own.error)
                                   or any(n.startswith(LIVENESS_NOT_CHECKED)
                                          for n in own.notes))
    return {"classification": classification,
            "ownership": asdict(own) if checked and own is not None else None}
