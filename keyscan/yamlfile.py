"""The YAML files keyscan reads (rule files, `.keyscan.yaml`), all through one loader.

PyYAML's safe loader (libyaml's where installed: ~30x faster), refusing what PyYAML
takes silently: a key given twice in one mapping (two `regex:` in a rule), of which it
keeps the last. Imported when a YAML file is parsed: a rule file read from the user
cache (`rules._read_rule_doc`), as the pre-commit hook's are, pays for no parser.
"""

from __future__ import annotations

from pathlib import Path

from keyscan.errors import KeyscanError

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any

    import yaml

_MERGE = "tag:yaml.org,2002:merge"  # `<<: *base`: its keys may be overridden, by design
_loader: type | None = None


class _DuplicateKey(Exception):
    """A mapping gives `key` again on line `line` (1-based), first given on `first`."""

    def __init__(self, key: object, line: int, first: int) -> None:
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


def read(path: Path, what: str) -> Any:
    """The document in the YAML file `path`; KeyscanError names the file, the line and
    what is wrong. `what` names the file's kind in errors ("rule file")."""
    import yaml

    try:
        return yaml.load(path.read_bytes(), Loader=_yaml_loader())
    except OSError as exc:
        raise KeyscanError(f"cannot read {what} {path}: {exc.strerror}") from None
    except _DuplicateKey as dup:
        from keyscan.report.redact import quoted

        raise KeyscanError(
            f"{path}: line {dup.line}: key {quoted(dup.key)} is given twice in one mapping "
            f"(first on line {dup.first}), and YAML would keep only the last: remove the one "
            "you do not mean"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise KeyscanError(f"{path}:{where} is not valid YAML: fix the {what}") from None


def _yaml_loader() -> type:
    """PyYAML's safe loader with `_construct_mapping`: made once, when first needed."""
    global _loader
    if _loader is None:
        import yaml

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        _loader = type("KeyscanLoader", (base,), {"construct_mapping": _construct_mapping})
    return _loader


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
                       ) -> dict[Any, Any]:
    """PyYAML's own, once no key of the mapping is given twice (PyYAML's raises for a
    node that is not a mapping: `!!map [a]`)."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        _refuse_duplicates(loader, node)
    mapping: dict[Any, Any] = yaml.constructor.SafeConstructor.construct_mapping(
        loader, node, deep=deep)
    return mapping


def _refuse_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """Raise _DuplicateKey for the first key `node` gives twice. Merged keys (`<<`) are
    not counted: a key given beside them overrides theirs, as YAML means it to."""
    first: dict[object, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE:
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        try:
            seen = first.get(key)
        except TypeError:  # a list or mapping as a key: PyYAML's own error says so
            continue
        if seen is not None:
            raise _DuplicateKey(key, line, seen)
        first[key] = line
