"""A value computed in a background thread while the main thread waits on git."""

from __future__ import annotations

from collections.abc import Callable

from keyscan.lazy import LazyModule

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Generic, TypeVar

    T = TypeVar("T")

    class _Generic(Generic[T]):
        pass

    import threading
else:
    threading = LazyModule("threading")  # not imported by a scan that needs no thread
    T = None

    class _Generic:
        def __class_getitem__(cls, _: object) -> type:
            return cls


class Later(_Generic[T]):
    """A value computed by `fn(*args)` in a background thread; `get()` waits for it.
    Worth it while the main thread waits on git (a subprocess releases the GIL)."""

    def __init__(self, fn: Callable[..., T], *args: object) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        thread.start()
        self._thread: threading.Thread | None = thread

    @classmethod
    def done(cls, value: T) -> Later[T]:
        """A value already at hand, as a `Later` (no thread)."""
        later: Later[T] = cls.__new__(cls)
        later._value, later._error, later._thread = value, None, None
        return later

    def _run(self, fn: Callable[..., T], *args: object) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # raised again in the caller's thread by get()
            self._error = exc

    def get(self) -> T:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
