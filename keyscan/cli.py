"""Command line: parse arguments, call scan.py, hand the result to a reporter, exit.

Exit codes: 0 nothing found, 1 leaks found (--exit-code), 2 usage or runtime error.
Only the standard library is imported at start-up; every command imports what it needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from keyscan import __version__
from keyscan.errors import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_LEAKS,
    KeyscanError,
    ScanInterrupted,
    leak_exit_code_problem,
)

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from keyscan.model import ScanResult


def _size(text: str) -> int:
    """--max-file-size, read as the settings' `max_file_size` is (`config.parse_size`)."""
    from keyscan.config import parse_size  # (a scan reads its settings with it anyway)

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"the size {exc}") from None


def _rules_folder(text: str) -> Path:
    """--rules DIR. An empty one is refused, as the settings' `rules:` entries are:
    `Path("")` is the current folder, which was read as a rules folder."""
    from keyscan.config import not_blank  # (a scan reads its settings with it anyway)

    return Path(not_blank("a rules folder's path ('.' for the current folder)")(text))


def _leak_exit_code(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    problem = leak_exit_code_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


_AWS_COMMANDS = ("deactivate", "reactivate", "demo")  # registered by keyscan.aws.cli
COMMANDS = ("scan", "audit", "baseline", "explain", "rules", *_AWS_COMMANDS)


class _Parser(argparse.ArgumentParser):
    """argparse, with the help width found here: argparse's own lookup imports shutil
    (and with it bz2 and lzma) each time a parser is built, ~5 ms of every run."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        return self.formatter_class(prog=self.prog, width=_columns() - 2)  # type: ignore[call-arg]


def _columns() -> int:
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    stdout = sys.__stdout__
    try:
        return os.get_terminal_size(stdout.fileno()).columns or 80 if stdout else 80
    except (AttributeError, ValueError, OSError):
        return 80


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with `command` only what running that sub-command
    needs (the pre-commit hook then imports and builds none of the others)."""
    parser: argparse.ArgumentParser = _Parser(
        prog="keyscan",
        description="Find AWS access keys leaked in files and git repositories.",
    )
    parser.add_argument("--version", action="version", version=f"keyscan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def wanted(*names: str) -> bool:
        return command is None or command in names

    if wanted("scan"):
        from keyscan import baseline
        from keyscan.aws import cli as aws_cli

        scan = sub.add_parser("scan",
                              help="scan a folder, a repository, staged changes or history")
        _add_target(scan)
        _add_common(scan)
        baseline.add_scan_option(scan)
        scan.set_defaults(func=cmd_scan)
        aws_cli.add_scan_options(scan)
    if wanted(*_AWS_COMMANDS):
        from keyscan.aws import cli as aws_cli

        aws_cli.register(sub)
    if wanted("audit"):
        _add_audit(sub)
    if wanted("baseline"):
        base = sub.add_parser("baseline", help="write the current leaks to a baseline file, "
                                               "so later scans report only new ones")
        _add_target(base)
        base.add_argument("--output", "-o", type=Path, metavar="FILE", required=True,
                          help="the baseline file to write (mode 0600; no secrets in it)")
        base.add_argument("--debug", action="store_true", help="show tracebacks on errors")
        _add_rules_and_limits(base)
        base.set_defaults(func=cmd_baseline)
    if wanted("explain"):
        from keyscan import explain

        explain.register(sub)
    if wanted("rules"):
        from keyscan import config

        rules = sub.add_parser(
            "rules", help="list the rules in force: the shipped ones, plus the rule folders "
                          "the settings name, less the rules they disable")
        rules.add_argument("path", nargs="?", default=".",
                           help="the repository or folder whose settings apply (.)")
        rules.add_argument("--rules", action="append", type=_rules_folder, default=[],
                           metavar="DIR", help="also load the rules in DIR (repeatable)")
        config.add_options(rules)
        rules.add_argument("--test", action="store_true",
                           help="run every rule's own examples (tests: match / no_match): "
                                "exit 1 when one does not hold")
        rules.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        rules.set_defaults(func=cmd_rules)
    return parser


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".",
                   help="file, folder or repository (.); - for standard input (a log, "
                        "a pasted config)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--staged", action="store_true",
                      help="scan what is staged for the next commit (the pre-commit hook)")
    mode.add_argument("--history", action="store_true",
                      help="scan every blob and commit message in the whole git history")
    p.add_argument("--files", nargs="*", metavar="FILE", default=None,
                   help="with --staged: the staged content of these files (or folders), "
                        "changed or not, named from the current folder; the pre-commit hook "
                        "passes them (all tracked files for `pre-commit run --all-files`); "
                        "after `--files --`, every name is a file, even `-rf`")
    hist = p.add_argument_group(
        "history", "--since-commit, --range, --unreachable, --reflog and --check-missing "
                   "imply --history, and cannot go with --staged")
    hist.add_argument("--since-commit", metavar="REV", default="",
                      help="only what the commits after REV up to HEAD added (the same as "
                           "--range REV..HEAD)")
    hist.add_argument("--range", metavar="A..B", default="",
                      help="only what the commits in A..B added (reachable from B, not from "
                           "A); A alone means A..HEAD; A...B, as in git log, the commits on "
                           "either side since they forked")
    hist.add_argument("--unreachable", action="store_true",
                      help="also report objects no ref reaches (deleted branches, rewrites; "
                           "whole history only)")
    hist.add_argument("--reflog", action="store_true",
                      help="also scan commits in the reflog (whole history only)")
    hist.add_argument("--check-missing", action=argparse.BooleanOptionalAction, default=None,
                      help="walk all refs to report objects missing from the store "
                           "(whole history only; default: on partial clones and repositories "
                           "under 10k blobs and commits)")
    hist.add_argument("--no-cache", action="store_true",
                      help="ignore and do not update the incremental cache in .git/keyscan")
    hist.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="progress on stderr (default: on a terminal, outside CI)")


def _whole_history_options(args: argparse.Namespace) -> list[str]:
    """The options given that only a scan of the whole history uses."""
    given = [flag for name, flag in (("unreachable", "--unreachable"), ("reflog", "--reflog"))
             if getattr(args, name)]
    if args.check_missing is not None:
        given.append("--check-missing" if args.check_missing else "--no-check-missing")
    return given


STDIN = "-"


def _target_problem(args: argparse.Namespace) -> str:
    """What contradicts itself among the options that choose what to scan ("": nothing).
    History options without --history imply it (as --range always has); with --staged,
    or the whole history's options with a range, one of them would be ignored."""
    ranges = [flag for name, flag in (("range", "--range"), ("since_commit", "--since-commit"))
              if getattr(args, name)]
    whole = _whole_history_options(args)
    if args.path == STDIN and (args.staged or args.history or ranges or whole):
        first = "--staged" if args.staged else "--history" if args.history else \
            (ranges + whole)[0]
        return (f"- scans standard input and {first} scans a repository: give the "
                "repository's path instead of -")
    if getattr(args, "files", None) is not None and not args.staged:
        return ("--files names files whose staged content to scan: use it with --staged "
                "(or give one PATH to scan the files as they are)")
    if args.staged and (ranges or whole):
        return (f"--staged scans the index and {(ranges + whole)[0]} is for history scans: "
                "drop one of them")
    if len(ranges) == 2:
        return ("--range and --since-commit both choose the commits: drop one "
                "(--since-commit REV is --range REV..HEAD)")
    if ranges and whole:
        return (f"{whole[0]} is for a scan of the whole history and {ranges[0]} scans only "
                "some commits: drop one of them")
    return ""


def _add_common(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    out.add_argument("--format", "-f", choices=("text", "json", "jsonl", "sarif"),
                     default=None, help="report format (default text)")
    out.add_argument("--output", "-o", type=Path, metavar="FILE",
                     help="write the report to FILE (created private, mode 0600)")
    out.add_argument("--show-secrets", action="store_true",
                     help="print secrets in full (redacted by default)")
    out.add_argument("--verbose", "-v", action="store_true",
                     help="also list examples, allowed findings and skipped files")
    out.add_argument("--no-color", action="store_true", help="never use colour")
    out.add_argument("--exit-code", type=_leak_exit_code, default=None, metavar="N",
                     help="exit code when leaks are found (default 1)")
    out.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    _add_rules_and_limits(p)


def _add_rules_and_size(group: argparse._ActionsContainer, what: str) -> None:
    group.add_argument("--rules", action="append", type=_rules_folder, default=[], metavar="DIR",
                       help="also load rule files from DIR (repeatable)")
    group.add_argument("--max-file-size", type=_size, default=None, metavar="SIZE",
                       help=f"skip (and report) {what} larger than SIZE: bytes, or 512k / "
                            "50M / 1G, above 0 (default 100M)")


def _add_audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`keyscan audit`: defined here so building the parser imports none of the fleet code."""
    from keyscan.aws import cli as aws_cli


    p = sub.add_parser("audit", help="audit the full history of many repositories on Dask",
                       description="Scan the whole history of every repository listed, "
                                   "each as one Dask task.")
    p.add_argument("--repos", required=True, metavar="FILE",
                   help="one repository per line: a local path or a clone URL ('-' reads "
                        "stdin; '#' starts a comment)")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="findings as JSON Lines, each with its repository (mode 0600; "
                        "default stdout)")
    p.add_argument("--status", type=Path, metavar="FILE",
                   help="per-repository status as JSON (default WORKDIR/status.json)")
    p.add_argument("--sarif-dir", type=Path, metavar="DIR", help="also a SARIF file per "
                                                                 "repository in DIR")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="mirrors of cloned URLs and the --resume state (default "
                        "~/.cache/keyscan/fleet; on a cluster, a path on each worker)")
    run = p.add_argument_group("where and how it runs")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="use this running Dask scheduler (default: a local cluster)")
    run.add_argument("--connect-timeout", type=float, default=15.0, metavar="SECONDS",
                     help="how long to keep trying to reach --scheduler (15)")
    run.add_argument("--workers", type=int, default=0, metavar="N",
                     help="processes of the local cluster (default: one per CPU)")
    run.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                     help="give up on a repository after this long, clone included (3600)")
    run.add_argument("--retries", type=int, default=2, metavar="N",
                     help="run a task again up to N times when it fails outside the scan "
                          "(default 2; a worker that dies is retried by the scheduler)")
    run.add_argument("--resume", action="store_true",
                     help="skip repositories an earlier audit finished with the same rules")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress on stderr (default: on a terminal)")
    scan = p.add_argument_group("what is scanned")
    _add_rules_and_size(scan, "blobs")
    scan.add_argument("--unreachable", action="store_true",
                      help="also report objects no ref reaches")
    scan.add_argument("--exit-code", type=_leak_exit_code, default=EXIT_LEAKS, metavar="N",
                      help="exit code when leaks are found (default 1)")
    scan.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    aws_cli.add_audit_options(p)
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from keyscan import fleet  # Dask itself is imported only once the audit runs

    return fleet.cmd_audit(args)


def _add_rules_and_limits(p: argparse.ArgumentParser) -> None:
    from keyscan import config

    cfg = p.add_argument_group("rules and limits")
    _add_rules_and_size(cfg, "files")
    cfg.add_argument("--follow-symlinks", action="store_true",
                     help="follow symbolic links (not followed by default)")
    config.add_options(p)


def cmd_scan(args: argparse.Namespace) -> int:
    result = run_scan(args)
    if args.baseline is not None:
        from keyscan import baseline

        baseline.apply(result, args.baseline, complete=_complete(args))
    from keyscan.aws import cli as aws_cli

    action_code = aws_cli.after_scan(result, args)
    emit(result, args)
    if action_code:
        return action_code
    # content left unscanned stops the commit or fails the CI step, leaks or not, even
    # under `--exit-code 0`: gates fail closed
    if result.gate and result.errors:
        return EXIT_ERROR
    if result.leaks:
        code: int = args.exit_code
        return code
    return EXIT_CLEAN


def cmd_baseline(args: argparse.Namespace) -> int:
    from keyscan import baseline
    from keyscan.report import write_private

    result = run_scan(args)
    if result.gate and result.errors:  # a baseline of what could not be read would hide it
        said(result)
        print(f"keyscan: no baseline written to {args.output}: the scan could not read all "
              "it should have (above)", file=sys.stderr)
        return EXIT_ERROR
    write_private(args.output, baseline.render(result), scanned_tree(args))
    print(f"keyscan: baseline of {len(result.leaks)} leak(s) written to {args.output}",
          file=sys.stderr)
    said(result)
    return EXIT_CLEAN


def run_scan(args: argparse.Namespace) -> ScanResult:
    """The scan `args` ask for, with the project's settings and .keyscanignore applied."""
    from keyscan import config, ignore, scan
    from keyscan.rules import load_rules

    by_pre_commit = _pre_commit_range(args)
    target = Path("." if args.path == STDIN else args.path)
    if getattr(args, "output", None) is not None:  # refused now, not after a long scan
        from keyscan.report import REPORT_INSTEAD, refuse_linked_folder

        refuse_linked_folder("report", args.output, scanned_tree(args), REPORT_INSTEAD)
    root = config.project_root(target)  # standard input: the current folder's settings
    settings = config.for_root(root, args.config, args.no_config)
    config.apply(args, settings)
    rules = config.without_rules(load_rules(args.rules), args.disable_rule, settings)
    options = scan.ScanOptions(
        max_file_size=args.max_file_size or scan.DEFAULT_MAX_FILE_SIZE,
        follow_symlinks=args.follow_symlinks, allow_paths=tuple(args.allow_path),
    )
    if args.path == STDIN:
        result = scan.scan_stdin(sys.stdin.buffer if sys.stdin else None, rules, options)
    elif args.staged:
        result = scan.scan_staged(target, rules, options, getattr(args, "files", None))
    elif args.history or args.range or args.since_commit or _whole_history_options(args):
        from keyscan.history import HistoryOptions, scan_history

        hopts = HistoryOptions(
            since_commit=args.since_commit, range=args.range, unreachable=args.unreachable,
            reflog=args.reflog, use_cache=not args.no_cache, progress=args.progress,
            check_missing=args.check_missing,
            whole_secrets=getattr(args, "show_secrets", False)
            or getattr(args, "verify_live", False),
        )
        result = scan_history(target, rules, options, hopts)
        from keyscan.sources.history import range_ends

        base = args.since_commit or (range_ends(args.range)[0] if args.range else "")
        if base and not args.no_config:
            _note_settings_changed(result, config.changed_since(
                root, base, settings, (ignore.FILE_NAME,)))
    else:
        result = scan.scan_worktree(target, rules, options)
    ignore.apply(result, ignore.read(root / ignore.FILE_NAME))
    if by_pre_commit:
        result.notes.append(f"pre-commit named the commits {args.range} (--from-ref, "
                            "--to-ref): scanned what they added, not the index")
    return result


def scanned_tree(args: argparse.Namespace) -> Path | None:
    """The work tree of the repository `args` scan (None: standard input, a file or
    folder in no repository): a file keyscan writes is never created through a link
    inside it (`report.refuse_linked_folder`)."""
    from keyscan import gitrepo

    return None if args.path == STDIN else gitrepo.work_tree(Path(args.path))


def _pre_commit_range(args: argparse.Namespace) -> bool:
    """`pre-commit run --from-ref A --to-ref B` stages nothing and names the commits to
    check in PRE_COMMIT_FROM_REF / PRE_COMMIT_TO_REF: the hook's `--staged` (which
    would scan an empty index and pass) scans A..B then, as `--range A..B` would."""
    start = os.environ.get("PRE_COMMIT_FROM_REF", "")
    end = os.environ.get("PRE_COMMIT_TO_REF", "")
    if not (getattr(args, "staged", False) and start and end):
        return False
    args.staged = False
    args.range = f"{start}..{end}"
    return True


def _note_settings_changed(result: ScanResult, changed: list[str]) -> None:
    if changed:
        result.notes.append(
            f"this change edits {', '.join(changed)}, which decide what keyscan reports "
            "(allowed paths, disabled rules, ignored findings, the exit code): review that "
            "edit, or run the CI step with --config FILE kept outside the repository")


def _complete(args: argparse.Namespace) -> bool:
    """Whether the scan saw everything (and so can tell a baseline entry is gone): not
    staged changes, a range, nor a part of a repository's work tree."""
    from keyscan import config

    if args.staged or args.since_commit or args.range or args.path == STDIN:
        return False
    target = Path(args.path)
    return bool(args.history) or target.resolve() == config.project_root(target).resolve()


def emit(result: object, args: argparse.Namespace) -> None:
    """Report to stdout (or --output), the one-line summary to stderr."""
    from keyscan.model import ScanResult
    from keyscan.report import text as text_report
    from keyscan.report import write_private

    assert isinstance(result, ScanResult)
    reveal = args.show_secrets
    if args.format == "json":
        from keyscan.report import json as json_report

        body = json_report.render(result, reveal)
    elif args.format == "jsonl":
        from keyscan.report import json as json_report

        body = json_report.render_lines(result, reveal)
    elif args.format == "sarif":
        from keyscan.report import sarif

        body = sarif.render(result, reveal)
    else:
        colour = args.output is None and sys.stdout.isatty() and not args.no_color \
            and "NO_COLOR" not in os.environ
        body = text_report.render(result, reveal, args.verbose, colour)
    if args.output is not None:
        write_private(args.output, body, scanned_tree(args))
    elif body:
        sys.stdout.write(body)
        sys.stdout.flush()
    said(result)


def said(result: ScanResult) -> None:
    """The scan's errors, notes and one-line summary, on stderr."""
    from keyscan.report import text as text_report
    from keyscan.report.redact import printable

    # errors and notes may quote the repository (a ref name, git's own message)
    for error in result.errors:
        print(f"keyscan: error: {printable(error)}", file=sys.stderr)
    for note in result.notes:
        print(f"keyscan: note: {printable(note)}", file=sys.stderr)
    print(text_report.summary(result), file=sys.stderr)


def cmd_rules(args: argparse.Namespace) -> int:
    from keyscan import config
    from keyscan.rules import load_rules

    target = Path(args.path)
    settings = config.for_root(config.project_root(target), args.config, args.no_config)
    config.apply(args, settings)
    for compiled in config.without_rules(load_rules(args.rules), args.disable_rule,
                                         settings).rules:
        r = compiled.rule
        print(f"{r.id:32s} {r.severity:9s} {r.role.value:14s} {r.description}")
    if not args.test:
        return EXIT_CLEAN
    from keyscan import ruletests
    from keyscan.report.redact import printable
    from keyscan.rules import builtin_rules_dir, rule_files

    run, failed = ruletests.failures(rule_files([builtin_rules_dir(), *args.rules]),
                                     args.disable_rule)
    for line in failed:
        print(f"keyscan: {printable(line)}", file=sys.stderr)
    print(f"keyscan: {run - len(failed)} of {run} rule examples hold", file=sys.stderr)
    return EXIT_LEAKS if failed else EXIT_CLEAN


def entry() -> None:
    """The `keyscan` console script: `main()`, then exit without tearing the
    interpreter down. Python's finalization frees every module and object one by one,
    ~15 ms (a tenth of a history re-scan) for memory the system takes back at once.
    Exit handlers still run and output is flushed first; every pool and process keyscan
    starts is closed before `main()` returns."""
    import atexit
    import contextlib

    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


def _traceback_if(debug: bool) -> bool:
    """With --debug, the traceback of the error being handled (its exit code stays 2)."""
    if debug:
        import traceback

        traceback.print_exc()
    return debug


def _literal_files(args_list: list[str]) -> tuple[list[str], list[str] | None]:
    """`--files -- NAME…` (the pre-commit hook's entry): every NAME after the `--` is a
    file, as it is, even one named like an option. argparse would read `--help`, a
    staged file's name, as asking for help (exit 0: the commit passed unscanned) and
    `-rf` as an unknown option. None: no such list (the arguments are argparse's)."""
    try:
        at = args_list.index("--files")
    except ValueError:
        return args_list, None
    if args_list[at + 1 : at + 2] != ["--"]:
        return args_list, None
    return args_list[: at + 1], args_list[at + 2 :]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:  # answered before building the parser: no imports
        print(f"keyscan {__version__}")
        return EXIT_CLEAN
    from keyscan import gitrepo

    gitrepo.forget()
    command = args_list[0] if args_list and args_list[0] in COMMANDS else None
    parser = build_parser(command)
    args_list, literal_files = _literal_files(args_list)
    args = parser.parse_args(args_list)
    if literal_files is not None:
        args.files = [*(args.files or []), *literal_files]
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    if hasattr(args, "staged") and (problem := _target_problem(args)):
        parser.error(problem)
    try:
        code: int = args.func(args)
        return code
    except KeyscanError as exc:
        _traceback_if(args.debug)
        from keyscan.report.redact import printable  # it may quote a repository's file

        print(f"keyscan: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except ScanInterrupted as stop:  # Ctrl-C in a scan: report what was read
        emit(stop.partial, args)
        print("keyscan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("keyscan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_CLEAN
    except Exception as exc:  # no traceback (it could hold scanned content) unless --debug
        if isinstance(exc, FileNotFoundError) and exc.filename == "git":
            # a repository is found from its files before any git runs: git is missing
            print(f"keyscan: error: {gitrepo.NO_GIT}", file=sys.stderr)
            return EXIT_ERROR
        if _traceback_if(args.debug):
            return EXIT_ERROR
        print(f"keyscan: internal error: {type(exc).__name__}; rerun with --debug for details",
              file=sys.stderr)
        return EXIT_ERROR
