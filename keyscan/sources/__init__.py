"""Sources yield units of content with their origin. Only they (through gitrepo) know git."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from keyscan.model import Location, Skipped


@dataclass(frozen=True, slots=True)
class Content:
    location: Location
    data: bytes


Unit = Content | Skipped
Stream = Iterator[Unit]
