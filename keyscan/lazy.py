"""A standard-library module imported where it is first used, not at start-up.

A re-scan read from the repository's files (sources/store.py) starts no git process:
`subprocess` and `threading` (with `signal`, `selectors` and `locale`: ~6 ms of a
0.09 s re-scan) are then never imported. Modules that run git name them this way;
type checkers see the real module.
"""

from __future__ import annotations

import sys
from types import ModuleType


class LazyModule:
    """Stands for module `name` until an attribute is first asked for."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> object:
        module = self._module
        if module is None:
            __import__(self._name)
            module = self._module = sys.modules[self._name]
        return getattr(module, attr)
