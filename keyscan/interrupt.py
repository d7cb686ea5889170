"""Ctrl-C at safe points: a step that must finish whole (a cache write, one key's IAM
change and its audit line) holds SIGINT off, and the caller stops after it.

A first SIGINT inside `held()` is only remembered; a second one raises
KeyboardInterrupt at once, so a stuck step can still be abandoned.
"""

from __future__ import annotations

import contextlib
import signal
import threading
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
    if threading.current_thread() is not threading.main_thread():
        yield hold
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if hold.received:
            raise KeyboardInterrupt
        hold.received = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield hold
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
