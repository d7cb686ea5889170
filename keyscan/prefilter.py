"""Which triggers a piece of content holds, found in one pass.

Most content holds no credential. The matcher asks this module which of its
triggers (key-ID prefixes, rule keywords, base64 stems) occur at all, and runs
only the passes those triggers call for. With Hyperscan (a SIMD multi-pattern
engine, wheels for x86-64 Linux) that is one pass over the bytes for every
trigger at once, ~5x faster than a `re`/`bytes.find` pass per trigger; without
it, `present()` returns None and the matcher checks each trigger itself. Both
paths give the same findings: the prefilter only skips work, never decides.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keyscan.cache import user_cache_folder, write_private

KEY = "key"
BASE64 = "b64"


def keyword_trigger(keyword: bytes) -> str:
    return "kw:" + keyword.decode("latin-1")


class Prefilter:
    def __init__(self, triggers: Mapping[str, Sequence[bytes]],
                 locate: Sequence[bytes] = ()) -> None:
        """`triggers`: name -> regexes (bytes); a trigger is present if any matches.

        `locate`: literals whose every position `locate()` reports, in one more pass,
        instead of a `bytes.find` loop per literal (~1 GB/s on frequent letters)."""
        self._names: list[str] = []
        self._db: Any = None
        self._literals = list(locate)
        self._locate_db: Any = None
        if os.environ.get("KEYSCAN_NO_HYPERSCAN"):
            return
        try:
            import hyperscan
        except ImportError:
            return
        expressions, ids = [], []
        for name, patterns in triggers.items():
            for pattern in patterns:
                expressions.append(pattern)
                ids.append(len(self._names))
            self._names.append(name)
        if not expressions:
            return
        db = _load_or_compile(hyperscan, expressions, ids, hyperscan.HS_FLAG_SINGLEMATCH)
        if db is None:
            return  # a trigger Hyperscan cannot take: fall back to per-trigger checks
        self._db = db
        self._scratch = hyperscan.Scratch(db)
        if self._literals:
            self._locate_db = _load_or_compile(
                hyperscan, [literal(x) for x in self._literals],
                list(range(len(self._literals))), 0)
            if self._locate_db is not None:
                self._locate_scratch = hyperscan.Scratch(self._locate_db)

    @property
    def active(self) -> bool:
        return self._db is not None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def present(self, data: bytes) -> frozenset[str] | None:
        """Trigger names found in `data`; None when there is no one-pass engine."""
        if self._db is None:
            return None
        found: set[int] = set()
        on_match: Callable[..., None] = lambda i, _s, _e, _f, _c: found.add(i)  # noqa: E731
        self._db.scan(data, match_event_handler=on_match, scratch=self._scratch)
        return frozenset(self._names[i] for i in found)


    def locate(self, data: bytes) -> dict[bytes, list[int]] | None:
        """Start offsets of every `locate` literal in `data`; None without the engine."""
        if self._locate_db is None:
            return None
        found: dict[bytes, list[int]] = {x: [] for x in self._literals}
        literals = self._literals

        def on_match(i: int, _s: int, end: int, _f: int, _c: object) -> None:
            found[literals[i]].append(end - len(literals[i]))

        self._locate_db.scan(data, match_event_handler=on_match, scratch=self._locate_scratch)
        return found


def _load_or_compile(hs: Any, expressions: list[bytes], ids: list[int], flag: int) -> Any:
    """Compiling costs ~50 ms, too much for a pre-commit hook: keep the compiled
    database in the user's cache folder (patterns only, nothing scanned)."""
    flags = [flag] * len(expressions)
    key = hashlib.sha256(repr((expressions, ids, flags, _engine_version(hs))).encode())
    path = user_cache_folder() / f"prefilter-{key.hexdigest()[:24]}.hsdb"
    try:
        return hs.loadb(path.read_bytes(), mode=hs.HS_MODE_BLOCK)
    except Exception:  # absent, unreadable or from another build: compile again
        pass
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    try:
        db.compile(expressions=expressions, ids=ids, flags=flags)
    except hs.error:
        return None
    write_private(path, hs.dumpb(db))
    return db


def _engine_version(hs: Any) -> str:
    return str(getattr(hs, "__version__", "")) + str(getattr(hs, "HS_VERSION", ""))


def literal(text: bytes) -> bytes:
    """`text` as a pattern both engines read literally (hex escapes: no NUL, no syntax)."""
    return b"".join(b"\\x%02x" % c for c in text)
