"""Ctrl-C at safe points: a step that must finish whole (a cache write, one key's IAM
change and its audit line) holds SIGINT off, and the caller stops after it.

A first SIGINT inside `held()` is only remembered; a second one raises
KeyboardInterrupt at once, so a stuck step can still be abandoned.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from keyscan.record import record


@record(frozen=False)
class Hold:
    received: bool = False


@contextlib.contextmanager
def held() -> Iterator[Hold]:
    """SIGINT is remembered in the returned Hold instead of interrupting the block.

    Python delivers signals to the main thread only; elsewhere this changes nothing.
    """
    hold = Hold()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if hold.received:
            raise KeyboardInterrupt
        hold.received = True

    try:  # (not `threading.main_thread()`: a re-scan imports no threading)
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread, where Python delivers signals
        yield hold
        return
    try:
        yield hold
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
