"""A time-boxed self-test of users' regexes, so a rule file cannot make a scan hang.

Python's `re` backtracks, and a pattern like `(a|aa)+b` or `((a+))+$` takes forever on a
few dozen characters; no thread or signal can stop `re` once it runs. So before a scan
uses a user's patterns, a forked child runs each one over adversarial input built from
the pattern's own characters (long runs of one character or word, then a byte that
fails the match) and the parent kills it after a time budget. A pattern that does not
finish in time is refused with the rule and field named. Verdicts for patterns that
pass are cached (patterns only, nothing scanned), so a pre-commit hook pays once.
The static check in rules.py catches the plain nested repeats before any of this.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

from keyscan.errors import KeyscanError

BUDGET_SECONDS = 1.0  # a sound pattern needs a few ms for all of its inputs
_VERSION = "1"
_BASE_UNITS = " aA0_-./=+:\t\"'"
_SHORT, _LONG = 48, 5000  # exponential blow-ups show at 48; 5000 keeps sound ones fast


@dataclass(frozen=True, slots=True)
class Pattern:
    where: str  # "FILE: rule 'ID'", for the message
    field: str  # regex | allowlist.values | examples
    text: str


def adversarial_inputs(pattern: str) -> list[bytes]:
    """Runs of each character and word the pattern mentions, ending in a failing byte."""
    units = list(dict.fromkeys(_BASE_UNITS + "".join(
        c for c in pattern if c.isprintable() and c not in "()[]{}?*+|^$\\")))
    words = list(dict.fromkeys(re.findall(r"[A-Za-z0-9_]{2,12}", pattern)))[:8]
    out = []
    for unit in units:
        out.append((unit * _SHORT + "\0").encode())
        out.append((unit * _LONG + "\0").encode())
        for word in words:
            out.append((word + unit * _SHORT + "\0").encode())
    out.extend((word * _SHORT + "\0").encode() for word in words)
    return out


def refuse_slow(patterns: Sequence[Pattern], budget: float = BUDGET_SECONDS) -> None:
    """KeyscanError naming the first pattern that does not finish its inputs in time."""
    if not patterns or not hasattr(os, "fork"):
        return
    from keyscan.cache import user_cache_folder, write_private

    key = hashlib.sha256("\0".join([_VERSION, *(p.text for p in patterns)]).encode())
    verdict = user_cache_folder() / f"regex-ok-{key.hexdigest()[:24]}"
    if verdict.exists():
        return
    slow = _first_slow(patterns, budget)
    if slow is None:
        write_private(verdict, b"")
        return
    raise KeyscanError(
        f"{slow.where}: field '{slow.field}' did not finish within {budget:g} s on "
        "adversarial input (a long run of one character): it backtracks catastrophically "
        "and could hang a scan; rewrite it without nested or overlapping repeats such as "
        "(a|aa)+ or ((a+))+")


def _first_slow(patterns: Sequence[Pattern], budget: float) -> Pattern | None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: try every pattern, saying which one it is on
        os.close(read_end)
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for index, pattern in enumerate(patterns):
                os.write(write_end, b"%d\n" % index)
                compiled = re.compile(pattern.text.encode())
                for data in adversarial_inputs(pattern.text):
                    compiled.search(data)
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + budget
    reaped = False
    try:
        while not reaped:
            reaped = os.waitpid(pid, os.WNOHANG)[0] != 0
            if not reaped and time.monotonic() > deadline:
                break
            time.sleep(0.002)
        if reaped:
            return None
        started = os.read(read_end, 1 << 20).split()
        return patterns[int(started[-1])] if started else patterns[0]
    finally:
        os.close(read_end)
        if not reaped:  # too slow, or Ctrl-C while waiting: never leave it spinning
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
