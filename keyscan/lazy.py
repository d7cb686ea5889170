"""A standard-library module imported where it is first used, not at start-up.

A re-scan read from the repository's files (sources/store.py) starts no git process:
`subprocess` and `threading` (with `signal`, `selectors` and `locale`: ~6 ms of a
0.09 s re-scan) are then never imported. Modules that run git name them this way;
type checkers see the real module.
"""

from __future__ import annotations

import sys
from types import ModuleType

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    import re
    from typing import AnyStr


class LazyModule:
    """Stands for module `name` until an attribute is first asked for."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__"):  # a protocol probe (copy, pickle): not the module's
            raise AttributeError(attr)
        module = self._module
        if module is None:
            __import__(self._name)
            module = self._module = sys.modules[self._name]
        return getattr(module, attr)


class LazyPattern:
    """A regex compiled when first used: a module's patterns cost nothing at start-up
    (a cold `re.compile` is 0.05-0.4 ms) unless the run needs them."""

    __slots__ = ("_compiled", "_flags", "_pattern")

    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        self._pattern, self._flags = pattern, flags
        self._compiled: object = None

    @property
    def pattern(self) -> str | bytes:
        return self._pattern

    def __reduce__(self) -> tuple[type, tuple[str | bytes, int]]:
        return LazyPattern, (self._pattern, self._flags)  # sent to workers as its source

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__"):  # a protocol probe (copy, pickle): not the pattern's
            raise AttributeError(attr)
        if self._compiled is None:
            import re

            self._compiled = re.compile(self._pattern, self._flags)
        return getattr(self._compiled, attr)


def lazy_pattern(pattern: AnyStr, flags: int = 0) -> re.Pattern[AnyStr]:
    """`re.compile(pattern, flags)`, compiled when first used (`LazyPattern`)."""
    return LazyPattern(pattern, flags)  # type: ignore[return-value]
