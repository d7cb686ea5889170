"""The terminal report: findings on stdout, one short block each; colour only on a TTY."""

from __future__ import annotations

from keyscan.attribute import account_note
from keyscan.model import Finding, ScanResult, Status
from keyscan.report.json import summary_dict
from keyscan.report.redact import printable, show

_COLOURS = {"critical": "\033[1;31m", "high": "\033[31m", "medium": "\033[33m",
            "low": "\033[36m"}
_RESET = "\033[0m"

ADVICE = (
    "What to do:\n"
    "  1. Remove the key from the file (read it from the environment or a secrets manager).\n"
    "  2. Rotate the key: deactivate it and create a new one. History, forks and remotes may\n"
    "     already hold it, so removing the line is not enough.\n"
    "  3. If it is an intended example, mark the line with a `keyscan:allow` comment.\n"
)
# after a history scan: most leaks are no longer in any file, and every clone holds them
HISTORY_ADVICE = (
    "What to do:\n"
    "  1. Rotate each key: deactivate it and create a new one (`keyscan deactivate PATH\n"
    "     --history` plans it for the keys of your account). A committed key stays in every\n"
    "     clone and fork of the history: deleting the line, or rewriting history, is not\n"
    "     enough.\n"
    "  2. Remove the keys still in HEAD from their files (read them from the environment or\n"
    "     a secrets manager).\n"
    "  3. `keyscan explain FINGERPRINT PATH` tells one key's whole story and what to do.\n"
    "  4. If it is an intended example, mark the line with a `keyscan:allow` comment.\n"
)


def render(result: ScanResult, reveal: bool = False, verbose: bool = False,
           colour: bool = False) -> str:
    shown = [f for f in result.findings if verbose or f.status is Status.LEAK]
    blocks = [_block(f, reveal, colour) for f in shown]
    out = "\n".join(blocks)
    if verbose and result.skipped:
        out += "\nSkipped:\n" + "".join(
            f"  {printable(s.path)}{'!' + printable(s.member) if s.member else ''}: "
            f"{printable(s.reason)}\n" for s in result.skipped)
    if result.baseline is not None and result.baseline.stale:
        out += "\n" + stale_block(result)
    if result.leaks:
        out += "\n" + (HISTORY_ADVICE if result.mode == "history" else ADVICE)
    return out


def stale_block(result: ScanResult) -> str:
    """Baseline entries no longer found: the leak was fixed, or its file moved."""
    assert result.baseline is not None
    stale = result.baseline.stale
    lines = [f"STALE   {len(stale)} baseline entr{'y' if len(stale) == 1 else 'ies'} no longer "
             f"found in {printable(result.baseline.path)} (fixed or moved; rewrite the "
             "baseline with `keyscan baseline`):"]
    for e in stale:
        key = f"  {e.key_id}" if e.key_id else ""
        lines.append(f"        {e.fingerprint}  {e.rule}  {printable(e.path)}:{e.line}{key}")
    return "\n".join(lines) + "\n"


def _block(f: Finding, reveal: bool, colour: bool) -> str:
    # in an archive: its path, then the member's (the line is the member's)
    inside = f"!{printable(f.member)}" if f.member else ""
    where = f"{printable(f.location.path)}{inside}:{f.line}:{f.column}"
    label = f.status.value.upper()
    sev = f"{f.severity:9s}"  # padded before colouring: the columns line up either way
    if colour and f.status is Status.LEAK:
        sev = f"{_COLOURS.get(f.severity, '')}{f.severity}{_RESET}{sev[len(f.severity):]}"
    lines = [f"{label:8s}{sev} {where}  {f.description}"]
    if f.key_id:
        account = account_note(f.key_id, f.account)
        lines.append(f"        key ID   {f.key_id}  ({f.key_type}; {account})")
        lines.extend(ownership_lines(f))
    if f.secret is not None:
        lines.append(f"        secret   {show(f.secret, reveal)}")
    if f.session_token is not None:
        lines.append(f"        token    {show(f.session_token, reveal)}")
    if f.encoding != "plain":
        lines.append(f"        encoded  {f.encoding}")
    if f.commit is not None:
        c = f.commit  # of a tag's message: the tag, by its tagger
        what = "tag     " if f.location.source == "tag-message" else "commit  "
        lines.append(f"        {what} {c.sha[:12]} by {printable(c.author_name)} "
                     f"<{printable(c.author_email)}> on {printable(c.author_date)}")
    if "in_head" in f.extra:
        lines.append(_history_line(f))
    lines.append(f"        rule     {f.rule_id}  fingerprint {f.fingerprint}")
    return "\n".join(lines) + "\n"


def _history_line(f: Finding) -> str:
    head = "still in HEAD" if f.extra.get("in_head") else "not in HEAD"
    count = f.extra.get("count", 1)
    refs = f.extra.get("refs")
    refs = refs if isinstance(refs, list) else []
    shown_refs = ", ".join(printable(str(r).removeprefix("refs/")) for r in refs[:5])
    if len(refs) > 5:
        shown_refs += f" and {len(refs) - 5} more"
    return (f"        history  {head}; seen {count}x; on {shown_refs or 'no ref'}")


def summary(result: ScanResult) -> str:
    s = summary_dict(result)
    plural = "" if s["files"] == 1 else "s"
    unit = f"object{plural}" if result.mode == "history" else f"file{plural}"
    if s["incremental"]:
        unit = f"new object{plural} read (the others from the cache)"
    read = "standard input" if result.mode == "stdin" else f"{s['files']} {unit}"
    parts = [f"{s['leaks']} leak{'s' if s['leaks'] != 1 else ''}",
             read, f"{s['bytes'] / 1e6:.1f} MB", f"{s['seconds']:.2f} s"]
    tail = []
    if s["examples"]:
        tail.append(f"{s['examples']} example{'s' if s['examples'] != 1 else ''}"
                    " (listed with --verbose)")
    if s["allowed"]:
        tail.append(f"{s['allowed']} allowed by keyscan:allow")
    if s["allowed_by_path"]:
        tail.append(f"{s['allowed_by_path']} in allowed paths (allow_paths, --allow-path)")
    if s["ignored"]:
        tail.append(f"{s['ignored']} suppressed by .keyscanignore")
    if result.baseline is not None:
        tail.append(f"{s['baselined']} known in the baseline")
        if result.baseline.stale:
            tail.append(f"{len(result.baseline.stale)} stale baseline entries")
    if s["skipped"]:
        tail.append(f"{s['skipped']} skipped (listed with --verbose)")
    if s["errors"]:
        tail.append(f"{s['errors']} error{'s' if s['errors'] != 1 else ''}")
    line = "keyscan: " + ", ".join(parts)
    if tail:
        line += "; " + ", ".join(tail)
    return line


# --- AWS ownership (keyscan.aws): classification, IAM's answer, liveness, action taken.
def ownership_lines(f: Finding) -> list[str]:
    own = f.ownership
    if own is None:
        return []
    pad = "        "
    lines = []
    if own.classification != "unknown" or own.checked:
        confirmed = " (confirmed by IAM)" if own.confirmed else ""
        lines.append(f"{pad}class    {own.classification}{confirmed}")
    if own.user:
        root = " (root user)" if own.root else ""
        lines.append(f"{pad}owner    {own.arn or own.user}{root}; {own.status or 'status ?'};"
                     f" {own.key_count} key(s); created {own.created or '?'}")
        used = " ".join(filter(None, (own.last_used, own.last_service, own.last_region)))
        lines.append(f"{pad}used     {used or 'never, per IAM'}")
    if own.live is not None:
        lines.append(f"{pad}live     {'yes, as ' + own.live_arn if own.live else 'no'}")
    if own.action:
        lines.append(f"{pad}action   {own.action}")
    lines.extend(f"{pad}note     {n}" for n in own.notes if not n.startswith("account unknown"))
    if own.error:
        lines.append(f"{pad}error    {own.error}")
    return lines
