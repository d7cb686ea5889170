"""Rules as data: load rules/*.yaml, validate them, compile them for the matcher.

A rule file is YAML with a top-level `rules:` list. Each rule:

    id           unique name, [a-z0-9-]
    description  one line for reports
    severity     low | medium | high | critical
    role         key-id | secret | session-token | generic
    regex        Python regex with a named group `value`
    keywords     literal strings; the rule runs only on content holding one
    boundary     key-id: characters that may not touch the value (default A-Za-z0-9)
    prefixes     key-id: {prefix: what a key with it is}
    near_lines   secret/session-token: also look this many lines around key IDs
    near_prefixes session-token: only around IDs with these prefixes
    value_chars, value_length   secret: the value alphabet and length near an ID
    placeholder  true: every match is a documentation placeholder (never fails)
    examples     regexes: a value matching one is a documentation example
    allowlist    {values: [regex], paths: [glob]}: never reported
    tests        {match: [line], no_match: [line]}: checked by the test suite
"""

from __future__ import annotations

import binascii
import contextlib
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from keyscan import __version__
from keyscan.errors import KeyscanError
from keyscan.lazy import lazy_pattern
from keyscan.model import SEVERITIES, Role, Rule
from keyscan.record import record, replace

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

RULES_VERSION = 1
# bumped when loading checks more: a rule file cached by an older keyscan is read (and
# checked) again, not trusted as checked. 4: a key given twice in one mapping is refused;
# 5: an empty or blank `allowlist.paths` entry is refused
_CHECKS = 5
_ID_RE = lazy_pattern(r"[a-z0-9][a-z0-9-]*\Z")  # \Z: `$` allows a final newline
_KNOWN_FIELDS = {
    "id", "description", "severity", "role", "regex", "keywords", "boundary", "prefixes",
    "near_lines", "near_prefixes", "value_chars", "value_length", "placeholder", "examples",
    "allowlist", "tests",
}


@record
class CompiledRule:
    rule: Rule
    pattern: re.Pattern[bytes]
    keywords: tuple[bytes, ...]
    # compiled when first searched: needed only once a candidate value turns up, which
    # most runs (a commit with no key, a re-scan) never meet
    allow_values: tuple[re.Pattern[str], ...]
    examples: tuple[re.Pattern[str], ...]
    near_pattern: re.Pattern[bytes] | None  # secret value alone, used only near key IDs


@record
class RuleSet:
    rules: tuple[CompiledRule, ...]

    @property
    def digest(self) -> str:
        """Changes whenever any rule changes: keys caches of scan results. Computed when
        asked (history scans), not by the pre-commit hook."""
        return _digest([r.rule for r in self.rules])

    def by_role(self, role: Role) -> tuple[CompiledRule, ...]:
        return tuple(r for r in self.rules if r.rule.role is role)

    def without(self, disabled: Iterable[str]) -> RuleSet:
        drop = set(disabled)
        return RuleSet(tuple(r for r in self.rules if r.rule.id not in drop))


def builtin_rules_dir() -> Path:
    """rules/ ships inside the wheel as keyscan/rules; a source checkout has it at the top."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "rules", here.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise KeyscanError("keyscan's built-in rules folder is missing: reinstall keyscan")


def rule_files(folders: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    seen: set[Path] = set()
    for folder in folders:
        if folder.is_file():
            found = [folder]
        elif folder.is_dir():
            found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml"))
            if not found:  # a typo'd folder or misnamed files: no rule would run, silently
                raise KeyscanError(f"rules folder {folder} holds no rule file (*.yaml, *.yml): "
                                   "check --rules and the settings' `rules:`")
        else:
            raise KeyscanError(f"rules folder {folder} does not exist: check --rules and "
                               "the settings' `rules:` (.keyscan.yaml, [tool.keyscan])")
        for file in found:  # one folder named twice (the settings and --rules): read once
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


def load_rules(extra: Sequence[Path] = (), builtin: bool = True) -> RuleSet:
    folders = ([builtin_rules_dir()] if builtin else []) + list(extra)
    rules: list[Rule] = []
    raw_tests: dict[str, dict[str, list[str]]] = {}
    for path in rule_files(folders):
        for rule, tests in parse_rule_file(path):
            rules.append(rule)
            raw_tests[rule.id] = tests
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.id in seen:
            first = seen[rule.id]
            where = "" if first == rule.source else f", first in {first}"
            raise KeyscanError(f"{rule.source}: rule id '{rule.id}' is defined twice{where}: "
                               "give each rule its own id (`disable_rules` turns a built-in "
                               "rule off)")
        seen[rule.id] = rule.source
    if extra:
        _refuse_slow_patterns([r for r in rules if not _is_builtin(r)])
    return RuleSet(tuple(compile_rule(r) for r in rules))


def _is_builtin(rule: Rule) -> bool:
    return Path(rule.source).parent == builtin_rules_dir()


def _refuse_slow_patterns(rules: Sequence[Rule]) -> None:
    """Users' patterns must finish on adversarial input in time (see regexcheck.py)."""
    from keyscan.regexcheck import Pattern, refuse_slow

    refuse_slow([Pattern(f"{r.source}: rule '{r.id}'", field, text) for r in rules
                 for field, texts in (("regex", (r.regex,)), ("allowlist.values", r.allow_values),
                                      ("examples", r.example_values)) for text in texts])


def rule_tests(path: Path) -> list[tuple[Rule, dict[str, list[str]]]]:
    """The true/false examples each rule in a file carries (for the test suite)."""
    return parse_rule_file(path)


def parse_rule_file(path: Path) -> list[tuple[Rule, dict[str, list[str]]]]:
    doc, save = _read_rule_doc(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise KeyscanError(f"{path}: expected a mapping with a 'rules:' list")
    unknown = sorted(str(k) for k in doc if k not in ("version", "rules"))
    if unknown:  # a misspelt key, or YAML anchors kept aside: never taken silently
        raise KeyscanError(f"{path}: unknown top-level key {unknown[0]!r} "
                           "(a rule file holds `version: 1` and `rules:`)")
    if doc.get("version", RULES_VERSION) != RULES_VERSION or isinstance(doc.get("version"), bool):
        raise KeyscanError(f"{path}: 'version' must be {RULES_VERSION}: this keyscan reads rule "
                           "files of version 1 (a newer one needs a newer keyscan)")
    # a copy from the cache was checked whole when it was written: its allowlist and
    # example patterns are compiled only when needed (`lazy_pattern`)
    parsed = [_parse_rule(path, i, entry, checked=save is None)
              for i, entry in enumerate(doc["rules"])]
    if save is not None:
        save()  # cached only once every rule in it is valid
    return parsed


def _read_rule_doc(path: Path) -> tuple[Any, Callable[[], None] | None]:
    """The parsed YAML, from a JSON copy in the user cache when the file is unchanged:
    importing and running a YAML parser is a third of a pre-commit hook's time. With a
    function that writes that copy when the YAML was parsed (None: it came from it)."""
    import json

    from keyscan.cache import user_cache_folder, write_derived

    try:
        st = path.stat()
    except OSError as exc:
        raise KeyscanError(f"cannot read rule file {path}: {exc.strerror}") from None
    # named by a checksum, and holding the whole key it was made for: no hashlib (and
    # its OpenSSL start, ~4 ms) on the hook's path, and no mix-up on a checksum clash.
    # Another keyscan's copy vouches for its checks, not this one's: read the file again
    key = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{_CHECKS}\0{__version__}"
    cached = user_cache_folder() / f"rules-{binascii.crc32(key.encode()):08x}.json"
    try:
        entry = json.loads(cached.read_bytes())
        if isinstance(entry, dict) and entry.get("key") == key and "doc" in entry:
            return entry["doc"], None
    except (OSError, ValueError):
        pass
    from keyscan import yamlfile  # only a changed rule file pays for the parser

    doc = yamlfile.read(path, "rule file")

    def save() -> None:
        # a value JSON cannot hold (a YAML date) is not cached
        with contextlib.suppress(TypeError, ValueError):
            write_derived(cached, json.dumps({"key": key, "doc": doc}).encode())

    return doc, save


def _fail(path: Path, where: str, message: str) -> KeyscanError:
    return KeyscanError(f"{path}: {where}: {message}")


def _strings(path: Path, where: str, value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, where, f"field '{name}' must be a list of strings")
    return tuple(value)


def _parse_rule(path: Path, index: int, entry: Any, checked: bool = False
                ) -> tuple[Rule, dict[str, list[str]]]:
    where = f"rule #{index + 1}"
    if not isinstance(entry, dict):
        raise _fail(path, where, "each rule must be a mapping")
    rid = entry.get("id")
    if not isinstance(rid, str) or not (checked or _ID_RE.match(rid)):
        raise _fail(path, where, "field 'id' is required: lowercase letters, digits and '-'")
    where = f"rule '{rid}'"
    unknown = sorted(set(entry) - _KNOWN_FIELDS)
    if unknown:
        raise _fail(path, where, f"unknown field '{unknown[0]}'")
    for name in ("description", "regex"):
        if not isinstance(entry.get(name), str) or not entry[name]:
            raise _fail(path, where, f"field '{name}' is required and must be a string")
    severity = entry.get("severity", "high")
    if severity not in SEVERITIES:
        raise _fail(path, where, f"field 'severity' must be one of {', '.join(SEVERITIES)}")
    try:
        role = Role(entry.get("role", "generic"))
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise _fail(path, where, f"field 'role' must be one of {roles}") from None
    _check_regex(path, where, "regex", entry["regex"], need_value=True, checked=checked)
    allow = entry.get("allowlist") or {}
    if not isinstance(allow, dict) or set(allow) - {"values", "paths"}:
        raise _fail(path, where, "field 'allowlist' must be a mapping with 'values' and 'paths'")
    allow_values = _strings(path, where, allow.get("values"), "allowlist.values")
    allow_paths = _strings(path, where, allow.get("paths"), "allowlist.paths")
    if not checked:
        _check_paths(path, where, allow_paths)
    examples = _strings(path, where, entry.get("examples"), "examples")
    for name, patterns in (("allowlist.values", allow_values), ("examples", examples)):
        for pattern in patterns if not checked else ():
            _check_regex(path, where, name, pattern, need_value=False)
    prefixes = entry.get("prefixes") or {}
    if not isinstance(prefixes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in prefixes.items()
    ):
        raise _fail(path, where, "field 'prefixes' must map prefix to description")
    ints = {}
    for name in ("near_lines", "value_length"):
        value = entry.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
            raise _fail(path, where, f"field '{name}' must be a whole number 0-1000")
        ints[name] = value
    for name in ("boundary", "value_chars"):
        if name in entry and not checked:
            _check_class(path, where, name, entry[name])
    placeholder = entry.get("placeholder", False)
    if not isinstance(placeholder, bool):
        raise _fail(path, where, "field 'placeholder' must be true or false")
    tests = entry.get("tests") or {}
    if not isinstance(tests, dict) or set(tests) - {"match", "no_match"}:
        raise _fail(path, where, "field 'tests' must be a mapping with 'match' and 'no_match'")
    parsed_tests = {
        "match": list(_strings(path, where, tests.get("match"), "tests.match")),
        "no_match": list(_strings(path, where, tests.get("no_match"), "tests.no_match")),
    }
    rule = Rule(
        id=rid,
        description=entry["description"],
        severity=severity,
        role=role,
        regex=entry["regex"],
        keywords=_strings(path, where, entry.get("keywords"), "keywords"),
        allow_values=allow_values,
        allow_paths=allow_paths,
        example_values=examples,
        prefixes=tuple(sorted(prefixes.items(), key=lambda kv: -len(kv[0]))),
        boundary=entry.get("boundary", "A-Za-z0-9"),
        value_chars=entry.get("value_chars", ""),
        value_length=ints["value_length"],
        near_lines=ints["near_lines"],
        near_prefixes=_strings(path, where, entry.get("near_prefixes"), "near_prefixes"),
        placeholder=placeholder,
        source=str(path),
    )
    return rule, parsed_tests


def _check_regex(path: Path, where: str, name: str, pattern: str, need_value: bool,
                 checked: bool = False) -> None:
    """Compile `pattern` and refuse what could backtrack forever; a copy from the cache
    (`checked`) was checked whole when it was written: nothing to do."""
    if checked:
        return
    try:
        # the main regex is matched as bytes: checked as such, `re` keeps the compiled
        # pattern for `compile_rule` instead of compiling it twice
        compiled = re.compile(pattern.encode() if name == "regex" else pattern)
    except re.error as exc:
        raise _fail(path, where, f"field '{name}' is not a valid regex: {exc}") from None
    if need_value and "value" not in compiled.groupindex:
        raise _fail(path, where, f"field '{name}' needs a named group (?P<value>...)")
    if need_value and (problem := _value_group_problem(pattern)):
        raise _fail(path, where, f"field '{name}' {problem}")
    if _nested_quantifier(pattern):
        raise _fail(
            path, where,
            f"field '{name}' nests repeats like (a+)+ that can take forever on some input: "
            "rewrite it without a repeated group inside a repeat",
        )


def _check_paths(path: Path, where: str, globs: tuple[str, ...]) -> None:
    """An empty or blank `allowlist.paths` entry is refused: it was taken without a
    word, and matched no path whatever its author meant by it."""
    if any(not glob.strip() for glob in globs):
        raise _fail(path, where, "field 'allowlist.paths' has an empty entry: give each "
                                 "path or glob the rule never reports in, relative to the "
                                 "repository root, such as tests/fixtures/*")


def _check_class(path: Path, where: str, name: str, spec: Any) -> None:
    """`boundary` and `value_chars` are the inside of a [...] character class."""
    ok = isinstance(spec, str) and spec != ""
    if ok:
        try:
            re.compile(f"[{spec}]".encode())
        except re.error:
            ok = False
    if not ok:
        raise _fail(path, where, f"field '{name}' must be the inside of a regex character "
                                 "class, such as 'A-Za-z0-9/+'")


def _value_group_problem(pattern: str) -> str | None:
    """Why the `value` group could hold no value in a match, or None: it sits in one
    alternative, an optional part or a conditional (no value at all), or it can match
    the empty string (an empty "secret" on every line)."""
    import importlib

    try:  # the parser `re` itself uses (Python 3.11+; sre_parse before)
        sre = importlib.import_module("re._parser")
        c = importlib.import_module("re._constants")
    except ModuleNotFoundError:
        sre = importlib.import_module("sre_parse")
        c = importlib.import_module("sre_constants")
    tree = sre.parse(pattern)
    gid = tree.state.groupdict["value"]

    def walk(items: Any, optional: bool) -> tuple[bool, int] | None:
        for op, av in items:
            found: tuple[bool, int] | None = None
            if op is c.SUBPATTERN:
                if av[0] == gid:
                    return optional, av[3].getwidth()[0]
                found = walk(av[3], optional)
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                found = walk(av[2], optional or av[0] == 0)
            elif op is c.BRANCH:
                for alternative in av[1]:
                    found = found or walk(alternative, True)
            elif op is c.GROUPREF_EXISTS:
                found = walk(av[1], True) or (walk(av[2], True) if av[2] else None)
            elif op in (c.ASSERT, c.ASSERT_NOT):
                found = walk(av[1], optional or op is c.ASSERT_NOT)
            elif op is getattr(c, "ATOMIC_GROUP", None):
                found = walk(av, optional)
            if found is not None:
                return found
        return None

    found = walk(tree, False)
    if found is None or found[0]:
        return "puts the group (?P<value>...) in an alternative or an optional part: " \
               "a match could hold no value; move the choice inside the group"
    if found[1] == 0:
        return "lets the group (?P<value>...) match nothing: an empty value would be " \
               "reported on every line; require at least one character"
    return None


_NESTED = lazy_pattern(r"\((?:\?:)?[^()]*[+*][^()]*\)[+*{]")


def _nested_quantifier(pattern: str) -> bool:
    """A load-time guard against catastrophic backtracking, e.g. (a+)+ or (\\w*)*."""
    return bool(_NESTED.search(pattern))


def compile_rule(rule: Rule) -> CompiledRule:
    near = None
    if rule.role is Role.SECRET and rule.value_chars and rule.value_length:
        c, n = rule.value_chars, rule.value_length
        near = lazy_pattern(f"(?<![{c}])[{c}]{{{n}}}(?![{c}=])".encode())
    keywords = tuple(k.encode() for k in rule.keywords)
    return CompiledRule(
        rule=rule,
        pattern=lazy_pattern(rule.regex.encode()),  # compiled when first matched
        keywords=keywords,
        allow_values=tuple(lazy_pattern(p) for p in rule.allow_values),
        examples=tuple(lazy_pattern(p) for p in rule.example_values),
        near_pattern=near,
    )


def _digest(rules: Iterable[Rule]) -> str:
    """What the rules find, and the keyscan that finds with them (a new release may
    find more with the same rules): not where the rule files are installed."""
    from keyscan.digest import sha256

    h = sha256(__version__.encode())
    for rule in rules:
        h.update(repr(replace(rule, source="")).encode())
    digest: str = h.hexdigest()
    return digest
