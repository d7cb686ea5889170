"""Sources yield units of content with their origin. Only they (through gitrepo) know git."""

from __future__ import annotations

from collections.abc import Iterator

from keyscan.model import Location, Skipped
from keyscan.record import record


@record
class Content:
    location: Location
    data: bytes


Unit = Content | Skipped
Stream = Iterator[Unit]
