"""The `keyscan explain` report: one credential's whole story, secret redacted."""

from __future__ import annotations

import json

from keyscan.attribute import account_note
from keyscan.explain import Place, Story, next_steps
from keyscan.model import Status
from keyscan.record import asdict
from keyscan.report.redact import printable, show

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any


_REFS = 10  # refs listed in text; thousands of tags would fill the screen

def render(story: Story) -> str:
    f = story.main
    own = story.ownership
    title = f.key_id or f"{f.kind} ({f.rule_id})"
    lines = [f"{title}  {f.description}",
             f"  status      {f.status.value}, severity {f.severity}"
             f"{' (not reported: ignored in .keyscanignore)' if story.ignored else ''}"]
    if f.key_id:
        account = account_note(f.key_id, f.account)
        lines.append(f"  key         {f.key_type or f.key_id}; {account}")
    secret = next((g.secret for g in story.findings if g.secret is not None), None)
    if secret is not None:
        lines.append(f"  secret      {show(secret, False)}")
    prints = sorted({(g.fingerprint, g.rule_id, g.location.path) for g in story.findings})
    lines.append("  fingerprint " + "\n              ".join(
        f"{fp}  {rule}  {printable(path)}" for fp, rule, path in prints))
    lines.extend(f"  ignored     {printable(entry)} in .keyscanignore" for entry in story.ignored)
    lines.append(f"  in HEAD     {'yes' if story.in_head else 'no'}; in the working tree: "
                 f"{'yes' if story.in_worktree else 'no'}")
    if story.first_seen:
        lines.append(f"  first seen  {printable(story.first_seen)}")
        lines.append(f"  last seen   {printable(story.last_seen)}")
    if story.refs:
        shown = ", ".join(printable(r.removeprefix("refs/")) for r in story.refs[:_REFS])
        more = f" and {len(story.refs) - _REFS} more (all in --format json)" \
            if len(story.refs) > _REFS else ""
        lines.append(f"  refs        {shown}{more}")
    if own is not None:
        lines.append(f"  class       {own.classification}"
                     f"{' (confirmed by IAM)' if own.confirmed else ''}")
        if own.user:
            lines.append(f"  owner       {own.arn or own.user}{' (root)' if own.root else ''}; "
                         f"{own.status or 'status ?'}; {own.key_count} key(s); created "
                         f"{own.created or '?'}")
            used = " ".join(filter(None, (own.last_used, own.last_service, own.last_region)))
            lines.append(f"  last used   {used or 'never, per IAM'}")
        elif not own.checked:
            lines.append("  owner       not checked (add --verify to ask IAM)")
        if own.error:
            lines.append(f"  error       {own.error}")
    lines.append(f"  seen in     {len(story.places)} place(s):")
    lines.extend(f"    {_place(p)}" for p in story.places)
    lines.append("Next steps:")
    # the steps name the files to clean, as they are named in the repository
    lines.extend(f"  {n}. {printable(step)}" for n, step in enumerate(next_steps(story), 1))
    return "\n".join(lines) + "\n"


def _place(p: Place) -> str:
    where = f"{printable(p.path)}:{p.line}" if p.line else printable(p.path)
    if p.status is not Status.LEAK:
        where += f"  ({p.status.value})"
    if p.commit is None:
        return f"{'(working tree)' if p.source == 'worktree' else '(no commit)':40s} {where}"
    c = p.commit
    return f"{c.sha[:12]} {printable(c.commit_date)[:10]} {printable(c.author_name)[:16]:16s} " \
        f"{where}"


def render_json(story: Story) -> str:
    f = story.main
    own = story.ownership
    secret = next((g.secret for g in story.findings if g.secret is not None), None)
    doc: dict[str, Any] = {
        "query": story.query,
        "key_id": f.key_id or None,
        "key_type": f.key_type or None,
        "account": f.account or None,
        "kind": f.kind,
        "status": f.status.value,
        "severity": f.severity,
        "secret": show(secret, False),
        "fingerprints": sorted({g.fingerprint for g in story.findings}),
        "in_head": story.in_head,
        "in_worktree": story.in_worktree,
        "first_seen": story.first_seen or None,
        "last_seen": story.last_seen or None,
        "refs": story.refs,
        "places": [{"path": printable(p.path), "line": p.line, "source": p.source,
                    "status": p.status.value,
                    "commit": asdict(p.commit) if p.commit else None} for p in story.places],
        "ignored": story.ignored,
        "classification": own.classification if own else None,
        "ownership": asdict(own) if own is not None and own.checked else None,
        "next_steps": next_steps(story),
    }
    return json.dumps(doc, indent=2) + "\n"
