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


class _OnFirstUse:
    """Stands for an object made when one of its attributes is first asked for."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: object = None

    def _make(self) -> object:
        raise NotImplementedError

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__"):  # a protocol probe (copy, pickle): not the object's
            raise AttributeError(attr)
        if self._made is None:
            self._made = self._make()
        return getattr(self._made, attr)


class LazyModule(_OnFirstUse):
    """Stands for module `name` until an attribute is first asked for."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    def _make(self) -> ModuleType:
        __import__(self._name)
        return sys.modules[self._name]


class LazyPattern(_OnFirstUse):
    """A regex compiled when first used: a module's patterns cost nothing at start-up
    (a cold `re.compile` is 0.05-0.4 ms) unless the run needs them."""

    __slots__ = ("_flags", "_pattern")

    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        super().__init__()
        self._pattern, self._flags = pattern, flags

    @property
    def pattern(self) -> str | bytes:
        return self._pattern

    def __reduce__(self) -> tuple[type, tuple[str | bytes, int]]:
        return LazyPattern, (self._pattern, self._flags)  # sent to workers as its source

    def __eq__(self, other: object) -> bool:  # as compiled patterns compare
        return isinstance(other, LazyPattern) and \
            (other._pattern, other._flags) == (self._pattern, self._flags)

    def __hash__(self) -> int:
        return hash((self._pattern, self._flags))

    def _make(self) -> object:
        import re

        return re.compile(self._pattern, self._flags)


def lazy_pattern(pattern: AnyStr, flags: int = 0) -> re.Pattern[AnyStr]:
    """`re.compile(pattern, flags)`, compiled when first used (`LazyPattern`)."""
    return LazyPattern(pattern, flags)  # type: ignore[return-value]
