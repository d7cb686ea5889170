"""AWS sub-commands and scan options, kept apart so `keyscan --version` imports no boto3.

Exit code 3: an AWS step you asked for failed (a check, a deactivation, a
reactivation); the scan result is still reported. See docs/aws.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyscan.errors import EXIT_AWS_FAILED, EXIT_INTERRUPTED, KeyscanError
from keyscan.model import Finding, ScanResult, Status

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import TextIO

    from keyscan.aws.deactivate import Outcome, Step
    from keyscan.aws.run import Acting, Aws



def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def _add_accounts(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    g = p.add_argument_group("AWS (opt-in; see docs/aws.md)")
    g.add_argument("--our-account", action="append", default=[], metavar="ACCOUNT",
                   help="an AWS account ID that is yours (repeatable, or comma-separated): "
                        "classifies every key as ours / foreign / unknown, offline")
    g.add_argument("--canary-account", action="append", default=[], metavar="ACCOUNT",
                   help="also treat keys of this account as canary tokens (repeatable)")
    return g


def _add_connection(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--profile", help="AWS profile for your own credentials (default: the "
                                     "standard boto3 chain)")
    g.add_argument("--region", help="AWS region for the STS/IAM clients")
    g.add_argument("--aws-max-attempts", type=_positive, default=4, metavar="N",
                   help="attempts per AWS call, retries with backoff included (default 4)")
    g.add_argument("--aws-retry-mode", choices=("standard", "adaptive"), default="standard",
                   help="botocore retry mode (default standard)")
    g.add_argument("--aws-workers", type=_positive, default=8, metavar="N",
                   help="keys checked concurrently (default 8)")


def _add_acting(g: argparse._ArgumentGroup, verb: str) -> None:
    g.add_argument("--yes", action="store_true", help=f"really {verb} (otherwise: plan only)")
    g.add_argument("--dry-run", action="store_true", help="only print the plan, change nothing")
    g.add_argument("--audit-log", type=Path, metavar="FILE",
                   help="append every change to FILE (JSON lines, mode 0600; default "
                        "~/.local/state/keyscan/audit.jsonl)")


def add_scan_options(parser: argparse.ArgumentParser) -> None:
    """Options `keyscan scan` gains for ownership checks and deactivation."""
    g = _add_accounts(parser)
    g.add_argument("--verify", action="store_true",
                   help="ask IAM/STS, with your credentials, who owns each key ID")
    g.add_argument("--verify-live", action="store_true",
                   help="sign sts:GetCallerIdentity with each found ID+secret pair to see if "
                        "it works (uses the leaked key; never for canaries; see docs/aws.md)")
    g.add_argument("--deactivate", action="store_true",
                   help="after the scan, deactivate leaked keys confirmed in your account "
                        "(implies --verify; acts only with --yes)")
    g.add_argument("--quarantine", action="store_true",
                   help="with --deactivate: also attach a deny-all inline policy to the owner")
    _add_acting(g, "deactivate")
    _add_connection(g)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the AWS sub-commands (deactivate, reactivate, demo)."""
    d = sub.add_parser("deactivate", help="deactivate leaked AWS keys confirmed in your account")
    d.add_argument("path", nargs="?", default=".", help="scan PATH afresh (default .)")
    d.add_argument("--report", type=Path, metavar="FILE",
                   help="take the key IDs from a saved `keyscan scan --format json` report")
    d.add_argument("--history", action="store_true",
                   help="scan PATH's whole git history, not only its files (a key removed "
                        "from the files is still leaked)")
    from keyscan import config

    config.add_options(d)  # the project's settings apply as they do to `keyscan scan`
    g = _add_accounts(d)
    g.add_argument("--quarantine", action="store_true",
                   help="also attach a deny-all inline policy to each owning user")
    _add_acting(g, "deactivate")
    _add_connection(g)
    d.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    d.set_defaults(func=cmd_deactivate, rules=[], max_file_size=None, follow_symlinks=False,
                   staged=False, range=None, since_commit=None, unreachable=False,
                   reflog=False, check_missing=None, no_cache=False, progress=False)

    r = sub.add_parser("reactivate", help="undo a deactivation (and quarantine) by keyscan")
    r.add_argument("key_ids", nargs="*", metavar="KEY_ID", help="access key IDs to reactivate")
    r.add_argument("--from-audit-log", type=Path, metavar="FILE",
                   help="undo everything this audit log shows keyscan left switched off")
    g = r.add_argument_group("AWS")
    g.add_argument("--canary-account", action="append", default=[], metavar="ACCOUNT",
                   help="also treat keys of this account as canary tokens: never sent to AWS")
    _add_acting(g, "reactivate")
    _add_connection(g)
    r.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_reactivate, our_account=[])

    m = sub.add_parser("demo", help="walk through verify/deactivate/reactivate against a "
                                    "local emulated IAM (no AWS account needed)")
    m.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    m.set_defaults(func=cmd_demo)


def _aws(args: argparse.Namespace) -> Aws:
    from keyscan.aws.classify import Accounts, parse_accounts
    from keyscan.aws.run import Aws
    from keyscan.aws.session import AwsOptions

    options = AwsOptions(profile=args.profile, region=args.region,
                         retry_mode=args.aws_retry_mode, max_attempts=args.aws_max_attempts,
                         workers=args.aws_workers)
    accounts = Accounts(ours=parse_accounts(args.our_account),
                        canaries=parse_accounts(args.canary_account))
    return Aws(options=options, accounts=accounts)


def _acting(args: argparse.Namespace) -> Acting:
    from keyscan.aws.run import Acting

    return Acting(yes=args.yes, dry_run=args.dry_run,
                  quarantine=getattr(args, "quarantine", False), audit_log=args.audit_log,
                  inside=_scanned_tree(args))


def _scanned_tree(args: argparse.Namespace) -> Path | None:
    """The work tree of the repository `scan PATH` or `deactivate PATH` scanned (None:
    `reactivate`, or `deactivate --report`, which scan nothing)."""
    from keyscan.cli import scanned_tree

    scanned = hasattr(args, "path") and getattr(args, "report", None) is None
    return scanned_tree(args) if scanned else None


def after_scan(result: ScanResult, args: argparse.Namespace) -> int | None:
    """Run ownership checks / deactivation on a scan result; an exit code if one failed."""
    from keyscan.aws.classify import Accounts, classify_all, parse_accounts

    accounts = Accounts(ours=parse_accounts(args.our_account),
                        canaries=parse_accounts(args.canary_account))
    result.findings[:] = classify_all(result.findings, accounts)
    _note_canaries(result)
    if args.quarantine and not args.deactivate:

        raise KeyscanError("--quarantine only works with --deactivate")
    if not (args.verify or args.verify_live or args.deactivate):
        return None
    return _scan_aws(result, args)


def _note_canaries(result: ScanResult) -> None:
    seen = set()
    for f in result.findings:
        own = f.ownership
        if own is not None and own.classification == "canary" and f.key_id not in seen \
                and f.status is Status.LEAK:
            seen.add(f.key_id)
            result.notes.append(f"{f.key_id}: {own.notes[0]}")


def _scan_aws(result: ScanResult, args: argparse.Namespace) -> int | None:
    from keyscan.aws import run

    aws = _aws(args)
    failed = False
    try:
        if args.verify or args.deactivate:
            result.findings[:] = run.verify(result.findings, aws)
        if args.verify_live:
            result.findings[:] = run.verify_live(result.findings, aws)
        if args.deactivate:
            outcomes = _deactivate(result.findings, aws, _acting(args), sys.stderr)
            result.findings[:] = run.with_outcomes(result.findings, outcomes)
            failed = any(o.failed for o in outcomes)
            if _interrupted(outcomes):
                return EXIT_INTERRUPTED
    except KeyscanError as exc:
        aws.errors.append(str(exc))
    result.errors.extend(aws.errors)
    return EXIT_AWS_FAILED if failed or aws.errors else None


def _interrupted(outcomes: list[Outcome]) -> bool:
    """Ctrl-C stopped the run: say so; the audit log holds every change made."""
    from keyscan.aws.deactivate import INTERRUPTED

    left = sum(o.result == INTERRUPTED for o in outcomes)
    if left:
        print(f"keyscan: interrupted: {left} key(s) not attempted; every change made is in "
              "the audit log", file=sys.stderr)
    return bool(left)


def _deactivate(findings: list[Finding], aws: Aws, acting: Acting, out: TextIO) -> list[Outcome]:
    from keyscan.aws import deactivate, run

    steps = run.plan_deactivation(findings, aws, acting)
    _print(deactivate.render_plan(steps), out)
    outcomes = run.apply_deactivation(steps, aws, acting)
    _print_outcomes(steps, outcomes, acting, out)
    return outcomes


def _print_outcomes(steps: list[Step], outcomes: list[Outcome], acting: Acting,
                    out: TextIO) -> None:
    from keyscan.aws import deactivate
    from keyscan.aws.audit import default_path

    if not any(s.act for s in steps):
        return
    if acting.dry_run:
        _print("Dry run: nothing changed.\n", out)
    elif not acting.yes:
        _print("Nothing changed: rerun with --yes to act on this plan.\n", out)
        return
    _print(deactivate.render_outcomes(outcomes), out)
    if acting.yes and not acting.dry_run:
        _print(f"Audit log: {acting.audit_log or default_path()}\n", out)


def _print(text: str, out: TextIO) -> None:
    out.write(text)
    out.flush()


def _findings_for(args: argparse.Namespace) -> list[Finding]:
    """The report's findings, or a scan of PATH as `keyscan scan` makes it: with the
    project's settings (our_accounts, allow_paths, rules) and .keyscanignore applied, so
    this command never acts on a key `keyscan scan --deactivate` would leave alone."""
    from keyscan.aws.run import findings_from_report
    from keyscan.cli import run_scan

    if args.report is not None:
        if args.history:
            raise KeyscanError("--report takes the key IDs from a report and --history "
                               "scans PATH: drop one of them")
        return findings_from_report(args.report)
    return run_scan(args).findings


def cmd_deactivate(args: argparse.Namespace) -> int:
    """Plan (and with --yes apply) deactivation of the leaked keys of a report or a scan."""
    from keyscan.aws import run
    from keyscan.aws.classify import classify_all

    found = _findings_for(args)  # first: the settings' our_accounts join --our-account
    aws = _aws(args)
    findings = classify_all(found, aws.accounts)
    try:
        findings = run.verify(findings, aws)
    except KeyscanError as exc:  # credentials: nothing can be checked, so nothing is done
        print(f"keyscan: error: {exc}", file=sys.stderr)
        return EXIT_AWS_FAILED
    for error in aws.errors:
        print(f"keyscan: error: {error}", file=sys.stderr)
    outcomes = _deactivate(findings, aws, _acting(args), sys.stdout)
    if _interrupted(outcomes):
        return EXIT_INTERRUPTED
    failed = any(o.failed for o in outcomes) or bool(aws.errors)
    return EXIT_AWS_FAILED if failed else 0


def cmd_reactivate(args: argparse.Namespace) -> int:
    """Undo keyscan's deactivation and quarantine for named keys or a whole audit log."""
    from keyscan.aws import deactivate, reactivate
    from keyscan.aws.audit import AuditLog, default_path

    if not args.key_ids and args.from_audit_log is None:
        raise KeyscanError("name the keys to reactivate (KEY_ID ...) or give "
                           "--from-audit-log FILE")
    aws = _aws(args)
    try:
        checker = aws.connect()
    except KeyscanError as exc:
        print(f"keyscan: error: {exc}", file=sys.stderr)
        return EXIT_AWS_FAILED
    steps = reactivate.steps_for_keys(args.key_ids, checker) if args.key_ids else []
    if args.from_audit_log is not None:
        steps += reactivate.steps_from_log(args.from_audit_log, checker.operator)
    print(deactivate.render_plan(steps, "reactivate", "lift quarantine"), end="")
    acting = _acting(args)
    log = AuditLog(acting.audit_log or default_path(), acting.inside)
    dry = acting.dry_run or not acting.yes
    outcomes = reactivate.apply(steps, checker.clients.iam, checker.operator, log, dry)
    _print_outcomes(steps, outcomes, acting, sys.stdout)
    if _interrupted(outcomes):
        return EXIT_INTERRUPTED
    return EXIT_AWS_FAILED if any(o.failed for o in outcomes) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from keyscan.aws import demo

    code: int = demo.run(sys.stdout)
    return code


def add_audit_options(parser: argparse.ArgumentParser) -> None:
    """The AWS options of `keyscan audit` (checks run once per key, in keyscan/aws/fleet:
    sts:GetAccessKeyInfo, iam:GetAccessKeyLastUsed, ListAccessKeys, GetUser)."""
    g = _add_accounts(parser)
    g.add_argument("--verify", action="store_true",
                   help="ask IAM/STS, with your credentials, who owns each distinct key ID "
                        "(once per key across all repositories)")
    g.add_argument("--aws-rate", type=_positive, default=5, metavar="N",
                   help="at most N keys checked per second, all workers together (each is "
                        "~4 API calls; default 5)")
    _add_connection(g)
