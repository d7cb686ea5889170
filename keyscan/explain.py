"""`keyscan explain FINGERPRINT|KEY_ID [PATH]`: everything known about one leaked credential.

Scans PATH's whole history (and its working tree), gathers every finding of the same
credential — every path and commit, the refs that reach it, first and last seen — adds
the offline account classification, IAM's answer with --verify, and says what to do
next. The report (keyscan/report/explain.py) redacts the secret like every report.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from keyscan.errors import EXIT_AWS_FAILED, KeyscanError
from keyscan.model import Commit, Finding, Ownership, ScanResult, Status

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from keyscan.config import Config
    from keyscan.gitrepo import Repo

_FINGERPRINT = re.compile(r"^[0-9a-f]{20}$")


@dataclass(frozen=True, slots=True)
class Place:
    """One place the credential occurs: a path in a commit, or in the working tree."""

    path: str
    line: int
    source: str  # history | worktree | commit-message | tag-message
    commit: Commit | None = None
    status: Status = Status.LEAK


@dataclass(slots=True)
class Story:
    query: str
    target: str
    findings: list[Finding]  # every finding of the credential (history, then working tree)
    places: list[Place] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    first_seen: str = ""
    last_seen: str = ""
    in_head: bool = False
    in_worktree: bool = False
    ignored: list[str] = field(default_factory=list)  # .keyscanignore entries, with reasons
    errors: list[str] = field(default_factory=list)

    @property
    def main(self) -> Finding:
        """The most complete finding: a pair over an ID alone, a leak over an example."""
        order = {"pair": 0, "key-id": 1, "secret": 2, "session-token": 3, "generic": 4}
        return min(self.findings, key=lambda f: (f.status is not Status.LEAK,
                                                 order.get(f.kind, 9)))

    @property
    def ownership(self) -> Ownership | None:
        owned = [f.ownership for f in self.findings if f.ownership is not None]
        checked = [o for o in owned if o.checked]
        return next(iter(checked or owned), None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", help="everything known about one finding, and what to do")
    p.add_argument("what", metavar="FINGERPRINT|KEY_ID",
                   help="a fingerprint from a report, or an access key ID")
    p.add_argument("path", nargs="?", default=".", help="the repository to search (.)")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text")
    p.add_argument("--rules", action="append", type=Path, default=[], metavar="DIR",
                   help="also load rule files from DIR (repeatable)")
    p.add_argument("--config", type=Path, metavar="FILE", help="settings file to use")
    p.add_argument("--no-config", action="store_true", help="ignore any config file")
    g = p.add_argument_group("AWS (opt-in; see docs/aws.md)")
    g.add_argument("--verify", action="store_true",
                   help="ask IAM/STS, with your credentials, who owns the key and its status")
    g.add_argument("--our-account", action="append", default=[], metavar="ACCOUNT",
                   help="an AWS account ID that is yours (repeatable, or comma-separated)")
    g.add_argument("--profile", help="AWS profile for your own credentials")
    g.add_argument("--region", help="AWS region for the STS/IAM clients")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_explain, disable_rule=[], allow_path=[], max_file_size=None)


def cmd_explain(args: argparse.Namespace) -> int:
    from keyscan import config
    from keyscan.report import explain as report

    target = Path(args.path)
    root = config.project_root(target)
    settings = config.for_root(root, args.config, args.no_config)
    config.apply(args, settings)
    story = gather(args.what, target, args, settings, root)
    if args.format == "json":
        sys.stdout.write(report.render_json(story))
    else:
        sys.stdout.write(report.render(story))
    for error in story.errors:
        print(f"keyscan: error: {error}", file=sys.stderr)
    return EXIT_AWS_FAILED if story.errors else 0


def gather(query: str, target: Path, args: argparse.Namespace, settings: Config, root: Path
           ) -> Story:
    """Scan `target` and collect every finding of the credential `query` names.

    `args` holds the merged settings (config.apply); `root` is where .keyscanignore is.
    """
    from keyscan import gitrepo, ignore

    query = query.strip()
    if not (_FINGERPRINT.match(query.lower()) or re.match(r"^[A-Z0-9]{16,128}$", query)):
        from keyscan.report.redact import quoted  # a secret pasted here: not echoed whole

        raise KeyscanError(f"{quoted(query)} is neither a fingerprint (20 hex characters) "
                           "nor an access key ID: copy one from `keyscan scan` output")
    if not target.exists():
        raise KeyscanError(f"{target} does not exist: give a repository path")
    repo = gitrepo.discover(target)
    found = [f for r in _scans(target, repo, args, settings) for f in r.findings]
    wanted = [f for f in found if f.fingerprint == query.lower() or f.key_id == query]
    if not wanted:
        lister = "scan --history" if repo is not None else "scan"
        raise KeyscanError(f"no finding with fingerprint or key ID {query} in {target}: "
                           f"`keyscan {lister} {target}` lists them")
    key_ids = {f.key_id for f in wanted if f.key_id}
    digests = {f.value_digest for f in wanted}
    group = [f for f in found if f.key_id in key_ids or f.value_digest in digests]
    story = Story(query=query, target=str(target), findings=group)
    _history_facts(story, repo.git_dir if repo is not None else None)
    ignored = ignore.read(root / ignore.FILE_NAME)
    story.ignored = list(dict.fromkeys(  # the history's and the work tree's: once each
        f"{f.fingerprint} ({ignored[f.fingerprint].reason or 'no reason given'})"
        for f in group if f.fingerprint in ignored))
    _ownership(story, args)
    return story


def _scans(target: Path, repo: Repo | None, args: argparse.Namespace, settings: Config
           ) -> list[ScanResult]:
    """The whole history (a repository) and the files as they are now (a work tree)."""
    from keyscan import config, scan
    from keyscan.history import HistoryOptions, scan_history
    from keyscan.rules import load_rules

    rules = config.without_rules(load_rules(args.rules), args.disable_rule, settings)
    options = scan.ScanOptions(
        max_file_size=args.max_file_size or scan.DEFAULT_MAX_FILE_SIZE,
        allow_paths=tuple(args.allow_path))
    results = []
    if repo is not None:
        results.append(scan_history(target, rules, options, HistoryOptions(progress=False)))
    if repo is None or not repo.bare:
        results.append(scan.scan_worktree(target, rules, options))
    return results


def _history_facts(story: Story, git_dir: Path | None) -> None:
    from keyscan import attribute

    shas: set[str] = set()
    rows: list[tuple[str, int, str, str, Status]] = []
    # a copy in HEAD that is allowed (the committed baseline's `keyscan:allow` line) does
    # not keep a leak "in HEAD"
    leaks = any(f.status is Status.LEAK for f in story.findings)
    for f in story.findings:
        if f.location.source == "worktree":
            story.in_worktree = True
            story.places.append(Place(f.location.path, f.line, "worktree", None, f.status))
            continue
        if f.status is Status.LEAK or not leaks:
            story.in_head = story.in_head or bool(f.extra.get("in_head"))
        story.refs = sorted({*story.refs, *_strings(f.extra.get("refs"))})
        occurrences = f.extra.get("occurrences")
        for o in occurrences if isinstance(occurrences, list) else []:
            sha = str(o.get("commit") or "")
            inside = f"!{o['member']}" if o.get("member") else ""
            rows.append((f"{o.get('path', '')}{inside}", int(o.get("line") or 0), sha,
                         f.location.source, f.status))
            if sha:
                shas.add(sha)
    # the findings tell their first commit (or tag, for a tag's message); git the others
    meta = {f.commit.sha: f.commit for f in story.findings if f.commit is not None}
    asked = shas.difference(meta)
    if git_dir is not None and asked:
        from keyscan import gitrepo

        try:
            meta.update(attribute.commits(git_dir, asked))
        finally:
            gitrepo.close(git_dir)
    places = [Place(path, line, source, meta.get(sha), status)
              for path, line, sha, source, status in rows]
    places.sort(key=lambda p: (p.commit.commit_date if p.commit else "~", p.path))
    story.places[:0] = places
    dates = [p.commit.commit_date for p in places if p.commit is not None]
    if dates:
        story.first_seen, story.last_seen = min(dates), max(dates)


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _ownership(story: Story, args: argparse.Namespace) -> None:
    """Offline classification always; IAM's answer with --verify (boto3 only then)."""
    from keyscan.aws.classify import Accounts, classify_all, parse_accounts

    accounts = Accounts(ours=parse_accounts(args.our_account))
    story.findings[:] = classify_all(story.findings, accounts)
    if not args.verify:
        return
    from keyscan.aws import run
    from keyscan.aws.session import AwsOptions

    aws = run.Aws(options=AwsOptions(profile=args.profile, region=args.region),
                  accounts=accounts)
    try:
        story.findings[:] = run.verify(story.findings, aws)
    except KeyscanError as exc:
        aws.errors.append(str(exc))
    story.errors.extend(aws.errors)


def next_steps(story: Story) -> list[str]:
    """What to do about this credential, most urgent first."""
    f = story.main
    own = story.ownership
    if f.status is Status.EXAMPLE:
        return ["A documentation example or placeholder: nothing to do."]
    cleanup = _cleanup(story)
    if not f.key_id:
        return [f"A {f.kind} without its access key ID nearby: find the key it belongs to "
                "(IAM credential report, or whoever committed it), then rotate that key as "
                "below.", *cleanup]
    if own is not None and own.classification == "canary":
        return ["A canary token: any use of it raises an alarm for whoever planted it. Never "
                "use it; if you planted it, leave it; otherwise remove it."]
    if own is not None and own.classification == "foreign" and not own.confirmed:
        return [f"The key belongs to AWS account {own.account}, not yours: do not use it. "
                "Remove it and tell the account's owner (or AWS: aws-security@amazon.com).",
                *cleanup]
    if own is None or not own.checked or own.error:
        why = f" (IAM could not be asked: {own.error})" if own and own.error else ""
        return [f"Confirm whose key it is{why}: `keyscan explain {f.key_id} PATH --verify` "
                "with your own AWS credentials.", *_rotation(f.key_id, "USER", own), *cleanup]
    if not own.confirmed:
        return [f"IAM does not list {f.key_id} in your account: it is someone else's, or "
                "already deleted. Do not use it; remove it and tell its owner if you know "
                "them.", *cleanup]
    return [*_rotation(f.key_id, own.user or "USER", own), *cleanup]


def _rotation(key_id: str, user: str, own: Ownership | None) -> list[str]:
    u = f"--user-name {user} "
    if own is not None and own.root:
        return [f"A root user key: delete it (`aws iam delete-access-key --access-key-id "
                f"{key_id}` signed as root); the root user should have no access keys."]
    steps = []
    if own is not None and own.status == "Inactive":
        steps.append(f"Already inactive in IAM: nothing can sign with {key_id} now.")
    else:
        steps.append(f"Deactivate it now: `aws iam update-access-key {u}--access-key-id "
                     f"{key_id} --status Inactive` (`keyscan deactivate PATH` plans it with "
                     "every other key of yours found in PATH; `--yes` applies that plan).")
    if own is not None and own.key_count >= 2:
        steps.append(f"{user} already has 2 access keys (IAM allows 2): delete the one not in "
                     "use before creating the replacement.")
    steps.append(f"Rotate: `aws iam create-access-key {u.strip()}` — the new secret is shown "
                 "only once, at creation: put it straight into your secrets manager and "
                 "update everything that used the old key.")
    steps.append(f"Delete the old key once nothing breaks: `aws iam delete-access-key "
                 f"{u}--access-key-id {key_id}`.")
    return steps


def _cleanup(story: Story) -> list[str]:
    where = [p.path for p in story.places
             if p.source == "worktree" and p.status is Status.LEAK]
    if not (story.in_head or story.in_worktree):
        return ["It is no longer in the files; history still holds it, so rotation is what "
                "makes it harmless (rewriting history only helps before anyone cloned it)."]
    shown = ", ".join(sorted(set(where))[:3]) or "the files in HEAD"
    return [f"Remove it from {shown}: read credentials from the environment or a secrets "
            "manager instead."]
