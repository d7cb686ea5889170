"""Project settings: `.keyscan.yaml` at the repository root, or `[tool.keyscan]` in pyproject.toml.

One loader for both (the same keys, validated the same way). A bad file stops keyscan
with one line naming the file and the key. Settings apply under the command line:
a flag given on the command line wins over a single value in the file, and list
settings (rules, disable_rules, allow_paths, our_accounts) add to each other.

    rules: [ci/keyscan-rules]        # extra rule folders, relative to the config file
    disable_rules: [aws-session-token]
    allow_paths: ["tests/fixtures/*", "docs/*.md"]
    our_accounts: ["123456789012"]   # feeds --our-account (ours / foreign, offline)
    max_file_size: 50M               # a number of bytes, or 10k / 50M / 1G
    format: json                     # text | json | jsonl | sarif
    exit_code: 1                     # exit code when leaks are found
    baseline: .keyscan-baseline.json # report only leaks not in it (relative to this file)
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from keyscan import gitrepo
from keyscan.errors import EXIT_LEAKS, KeyscanError, leak_exit_code_problem
from keyscan.lazy import lazy_pattern
from keyscan.record import record
from keyscan.report.redact import quoted
from keyscan.rules import RuleSet

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

YAML_NAME = ".keyscan.yaml"
PYPROJECT = "pyproject.toml"
FORMATS = ("text", "json", "jsonl", "sarif")
KEYS = ("rules", "disable_rules", "allow_paths", "our_accounts", "max_file_size", "format",
        "exit_code", "baseline")
DEFAULT_FORMAT = "text"
DEFAULT_EXIT_CODE = EXIT_LEAKS
# a whole or decimal number, a unit and an optional B: 1048576, 512k, 1.5M, 50 MB (-5: said
# to be below 1 byte, not a malformed size)
_SIZE_RE = lazy_pattern(r"\s*(-?)(\d{1,20})(?:\.(\d{1,20}))?\s*([kmg]?)b?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# what each entry of a list setting (and of its option) must be: said when one is empty
_ENTRY = {
    "rules": "each rules folder's path, relative to this file ('.' for its own folder)",
    "disable_rules": "each rule's ID (`keyscan rules` lists them)",
    "allow_paths": "each path or glob to allow, relative to the repository root, such as "
                   "tests/fixtures/* ('/' or './' alone names none; '*' allows every path)",
}
EMPTY = "is empty"


@record
class Config:
    source: Path | None = None  # the file the settings came from; None: no file
    rules: tuple[Path, ...] = ()  # resolved against the config file's folder
    disable_rules: tuple[str, ...] = ()
    allow_paths: tuple[str, ...] = ()
    our_accounts: tuple[str, ...] = ()
    max_file_size: int | None = None
    format: str | None = None
    exit_code: int | None = None
    baseline: Path | None = None  # resolved against the config file's folder


def add_options(parser: argparse.ArgumentParser) -> None:
    """The command-line side of the settings a config file can hold."""
    g = parser.add_argument_group("configuration (.keyscan.yaml or [tool.keyscan])")
    g.add_argument("--config", type=Path, metavar="FILE",
                   help="read settings from FILE (.yaml or pyproject.toml) instead of the "
                        "repository root's .keyscan.yaml / pyproject.toml")
    g.add_argument("--no-config", action="store_true", help="ignore any config file")
    g.add_argument("--disable-rule", action="append", default=[], metavar="ID",
                   type=not_blank(_ENTRY["disable_rules"]),
                   help="do not run rule ID (repeatable)")
    g.add_argument("--allow-path", action="append", default=[], metavar="GLOB",
                   type=not_blank(_ENTRY["allow_paths"], _path_problem),
                   help="never report findings in paths matching GLOB (repeatable)")


def project_root(target: Path) -> Path:
    """Where the settings live: the work tree root of `target`'s repository, else the folder."""
    folder = target if target.is_dir() else target.parent
    repo = gitrepo.discover(folder) if folder.exists() else None
    return repo.root if repo is not None else folder


def find(root: Path) -> Path | None:
    """`.keyscan.yaml` wins; otherwise pyproject.toml when it has a [tool.keyscan] table."""
    yaml_file = root / YAML_NAME
    if yaml_file.is_file():
        return yaml_file
    pyproject = root / PYPROJECT
    if pyproject.is_file() and re.search(rb"(?m)^\s*\[\s*tool\.keyscan\s*[\].]",
                                         pyproject.read_bytes()):
        return pyproject
    return None


def changed_since(root: Path, base: str, cfg: Config, also: tuple[str, ...] = ()) -> list[str]:
    """The files of `root`'s work tree deciding what a scan reports that differ from
    commit `base`'s: the settings files, the rule folders they name inside `root`, and
    `also` (.keyscanignore). A pull request that changes them decides what its own scan
    reports; pyproject.toml counts only when its [tool.keyscan] table changed."""
    import os

    folders = [os.path.relpath(p, root) for p in cfg.rules if p.resolve().is_relative_to(
        root.resolve())]
    watched = [YAML_NAME, PYPROJECT, *also, *folders]
    out = gitrepo.run(root, ["diff", "--name-only", "-z", "--no-renames", base, "--", *watched],
                      check=False)
    changed = [gitrepo.fsdecode(p) for p in gitrepo.split_z(out)]
    if PYPROJECT in changed and _table_at(root, base) == _table_in(root / PYPROJECT):
        changed.remove(PYPROJECT)
    return changed


def _table_at(root: Path, commit: str) -> Any:
    import tomllib

    text = gitrepo.run(root, ["show", f"{commit}:{PYPROJECT}"], check=False)
    try:
        return tomllib.loads(text.decode()).get("tool", {}).get("keyscan", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None


def _table_in(path: Path) -> Any:
    try:
        return _read_toml(path) if path.is_file() else None
    except KeyscanError:
        return None


def load(path: Path) -> Config:
    """Read and validate one settings file; KeyscanError names the file and the bad key."""
    table = _read_toml(path) if path.name.endswith(".toml") else _read_yaml(path)
    return parse(table, path)


def _read_yaml(path: Path) -> Any:
    from keyscan import yamlfile

    doc = yamlfile.read(path, "config file")
    return {} if doc is None else doc


def _read_toml(path: Path) -> Any:
    import tomllib

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyscanError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KeyscanError(f"{path}: is not valid TOML ({exc}): fix the file") from None
    return doc.get("tool", {}).get("keyscan", {})


def parse(table: Any, path: Path) -> Config:
    where = f"{path}: [tool.keyscan]" if path.name.endswith(".toml") else f"{path}:"
    if not isinstance(table, dict):
        raise KeyscanError(f"{where} settings must be a mapping of keys ({', '.join(KEYS)})")
    for key in table:
        if key not in KEYS:
            import difflib  # only to name a misspelt setting

            close = difflib.get_close_matches(str(key).replace("-", "_"), KEYS, n=1)
            tip = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(KEYS)})"
            raise KeyscanError(f"{where} unknown key {quoted(str(key))}{tip}")

    def strings(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            raise KeyscanError(f"{where} '{key}' must be a list of strings")
        values = tuple(str(v) for v in value)
        return _filled(key, values, where) if key in _ENTRY else values

    accounts = strings("our_accounts")
    for account in accounts:
        if len(account) != 12 or not account.isdigit():
            raise KeyscanError(f"{where} 'our_accounts' has {quoted(account)}, not an AWS account "
                               "ID: give 12 digits, quoted (\"012345678901\")")
    return Config(
        source=path,
        rules=tuple(path.parent / p for p in strings("rules")),
        disable_rules=strings("disable_rules"),
        allow_paths=strings("allow_paths"),
        our_accounts=accounts,
        max_file_size=_size(table, "max_file_size", where),
        format=_choice(table, "format", FORMATS, where),
        exit_code=_exit_code(table, where),
        baseline=path.parent / _baseline(table, where) if table.get("baseline") else None,
    )


def _filled(key: str, values: tuple[str, ...], where: str) -> tuple[str, ...]:
    """The entries of the list setting `key` as given; an empty or blank one is refused,
    and an allowed path that can match none. In `rules` it was joined to the settings
    file's folder, which was read as a rules folder; in `allow_paths` it matched no
    path, silently; in `disable_rules` it was said to be a rule no rule file has."""
    problem = _path_problem if key == "allow_paths" else _blank_problem
    for value in values:
        why = problem(value)
        if why:
            entry = "an empty entry" if why == EMPTY else f"{quoted(value)}, which {why}"
            raise KeyscanError(f"{where} '{key}' has {entry}: give {_ENTRY[key]}")
    return values


def blank(text: str) -> bool:
    """An empty or whitespace-only value, which names no folder, rule or path: as a
    folder (`Path("")`) it is the current one, which nobody meant."""
    return not text.strip()


def _blank_problem(text: str) -> str:
    """EMPTY for a `blank` value, else ""."""
    return EMPTY if blank(text) else ""


def _path_problem(glob: str) -> str:
    """Why an allowed path can match no path a scan reports ("": it can). EMPTY: blank,
    or only `/` and `./`, which `path_globs` drops, leaving an empty glob. Or it has a
    `.`, `..` or empty part (`.`, `..`, `../shared/*`, `a/../b`, `a//b`): the paths it is
    matched with are relative to the repository root and have none."""
    glob = path_globs(glob)[0]
    if blank(glob):
        return EMPTY
    if any(part in ("", ".", "..") for part in glob.split("/")):
        return ("can match no path: allowed paths are matched with the paths a scan "
                "reports, from the repository root, which never have a '.', '..' or "
                "empty part")
    return ""


def not_blank(give: str, problem: Callable[[str], str] = _blank_problem
              ) -> Callable[[str], str]:
    """An argparse `type` taking the value as typed, but refusing one `problem` finds
    something wrong with (by default an empty one, `--rules ""`) with a usage error
    saying what to `give` instead."""

    def value(text: str) -> str:
        why = problem(text)
        if why:
            raise argparse.ArgumentTypeError(f"{quoted(text)} {why}: give {give}")
        return text

    return value


def _baseline(table: dict[str, Any], where: str) -> str:
    value = table["baseline"]
    if not isinstance(value, str):
        raise KeyscanError(f"{where} 'baseline' must be the path of a baseline file "
                           "(made by `keyscan baseline`)")
    return value


def _size(table: dict[str, Any], key: str, where: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise KeyscanError(f"{where} '{key}' {exc}") from None


def parse_size(value: object) -> int:
    """The bytes in a size, as the settings' `max_file_size` and `--max-file-size` take
    it: a whole number of bytes, or a number of k, M or G (1024-based; any case, an
    optional B). ValueError says what is wrong, after the setting's name. A size under
    1 byte (`0`, `0.0001k`) is refused: 0 was taken as no setting (the 100M default)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        m = _SIZE_RE.match(value) if isinstance(value, str) else None
        if m is None:
            raise ValueError(f"must be a size such as 1048576, 512k or 50M, not {quoted(value)}")
        sign, whole, fraction, unit = m.groups(default="")
        scale = _UNITS[unit.lower()]  # in whole numbers: no float to round or overflow
        size = int(whole) * scale + int(fraction or "0") * scale // 10 ** len(fraction)
        size = -size if sign else size
    if size < 1:
        raise ValueError(f"must be above 0, 1 byte at least, not {quoted(value)}: give a size "
                         "such as 1048576, 512k or 50M (there is no unlimited setting: to "
                         "scan bigger files, give a bigger size such as 4G)")
    return size


def _choice(table: dict[str, Any], key: str, choices: tuple[str, ...], where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if value not in choices:
        raise KeyscanError(f"{where} '{key}' must be one of {', '.join(choices)}, "
                           f"not {quoted(value)}")
    return str(value)


def _exit_code(table: dict[str, Any], where: str) -> int | None:
    value = table.get("exit_code")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise KeyscanError(f"{where} 'exit_code' must be a number from 0 to 255, not "
                           f"{quoted(value)}")
    problem = leak_exit_code_problem(value)
    if problem:
        raise KeyscanError(f"{where} 'exit_code': {problem}")
    return value


def for_root(root: Path, explicit: Path | None = None, disabled: bool = False) -> Config:
    """The settings for a scan: --config FILE, else the file at the project root `root`."""
    if disabled:
        return Config()
    if explicit is not None:
        if not explicit.is_file():
            raise KeyscanError(f"config file {explicit} does not exist: check --config")
        return load(explicit)
    found = find(root)
    return load(found) if found is not None else Config()


def apply(args: argparse.Namespace, cfg: Config) -> None:
    """Fill in what the command line left unset from `cfg`, then keyscan's defaults.

    Single values: the command line wins. Lists: the file's and the command line's add up.
    """
    args.rules = [*cfg.rules, *getattr(args, "rules", [])]
    args.disable_rule = [*cfg.disable_rules, *getattr(args, "disable_rule", [])]
    args.allow_path = [g for glob in [*cfg.allow_paths, *getattr(args, "allow_path", [])]
                       for g in path_globs(glob)]
    if hasattr(args, "our_account"):
        args.our_account = [*cfg.our_accounts, *args.our_account]
    if getattr(args, "max_file_size", None) is None:
        args.max_file_size = cfg.max_file_size
    if getattr(args, "format", None) is None:
        args.format = cfg.format or DEFAULT_FORMAT
    if getattr(args, "exit_code", None) is None:
        args.exit_code = DEFAULT_EXIT_CODE if cfg.exit_code is None else cfg.exit_code
    if hasattr(args, "baseline") and args.baseline is None:  # scans, not `keyscan baseline`
        args.baseline = cfg.baseline


def path_globs(glob: str) -> list[str]:
    """What an allowed path means, as fnmatch sees the paths a scan reports (relative to
    the repository root): `/tests/fixtures/*` and `./tests/...` as from the root, and a
    folder (`tests/fixtures`, `tests/fixtures/`) as everything in it. Taken literally,
    each of these matched nothing, silently."""
    while glob.startswith(("./", "/")):
        glob = glob[2:] if glob.startswith("./") else glob[1:]
    if glob.endswith("/"):
        return [glob + "*"]
    if glob and not any(c in glob for c in "*?["):
        return [glob, glob + "/*"]
    return [glob]


def without_rules(rules: RuleSet, disabled: list[str], cfg: Config) -> RuleSet:
    """`rules` minus the disabled ones; a name no rule has is a mistake worth stopping for."""
    known = {r.rule.id for r in rules.rules}
    for rule_id in disabled:
        if rule_id not in known:
            where = f"{cfg.source}: 'disable_rules'" if rule_id in cfg.disable_rules \
                else "--disable-rule"
            raise KeyscanError(f"{where} names {quoted(rule_id)}, which no rule has "
                               "(`keyscan rules` lists them)")
    return rules.without(disabled) if disabled else rules
