"""What is staged: the index's blobs for changed files, not the working files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from keyscan import gitrepo
from keyscan.model import Location, Skipped
from keyscan.sources import Content, Unit

_SUBMODULE = "160000"
TOO_LARGE = "larger than the size limit"
UNMERGED = ("unmerged: a conflict to resolve, not scanned (`git add` it once resolved, "
            "then scan again)")
NOT_STAGED = "not in the index: nothing staged to scan (`git add` it first)"


def read(root: Path, max_size: int, files: list[str] | None = None) -> Iterator[Unit]:
    """The staged content of the files added or changed against HEAD; with `files` (the
    hook's list from pre-commit, which names every tracked file for `--all-files`), of
    those files in the index, changed or not."""
    if files:
        entries, unmatched = gitrepo.index_entries(Path.cwd(), files)
        for path in unmatched:
            yield Skipped(path, NOT_STAGED)
    else:
        entries = gitrepo.staged_entries(root)
    wanted = []
    for entry in entries:
        if entry.mode == _SUBMODULE:
            yield Skipped(gitrepo.fsdecode(entry.path), "submodule (not followed)")
        elif entry.mode == gitrepo.UNMERGED:  # git commits none until it is resolved
            yield Skipped(gitrepo.fsdecode(entry.path), UNMERGED)
        else:
            wanted.append(entry)
    blobs = gitrepo.read_blobs(root, [e.blob for e in wanted], max_size)
    for entry, (blob, data) in zip(wanted, blobs, strict=False):
        shown = gitrepo.fsdecode(entry.path)
        if data is None:
            yield Skipped(shown, f"blob {blob} is missing from the object store")
        elif isinstance(data, int):
            yield Skipped(shown, f"{TOO_LARGE} ({data} > {max_size} bytes;"
                                 " raise it with --max-file-size)")
        else:
            yield Content(Location(path=shown, blob=blob, source="staged"), data)
