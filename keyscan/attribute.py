"""Offline attribution: what a key ID says about itself, without any network call."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from keyscan.model import Commit

# Since about 2019 the 5th character of a key ID is Q-Z or 2-7 and the ID encodes
# its account; older AKIAI.../AKIAJ... IDs decode to plausible but wrong numbers.
_NEW_FORMAT = frozenset("QRSTUVWXYZ234567")


def account_id(key_id: str) -> str:
    """The 12-digit AWS account a key ID belongs to, or "" when it cannot be told."""
    if len(key_id) != 20 or key_id[4] not in _NEW_FORMAT:
        return ""
    try:
        raw = base64.b32decode(key_id[4:])
    except ValueError:
        return ""
    account = (int.from_bytes(raw[:6], "big") & 0x7FFFFFFFFF80) >> 7
    # 40 bits can hold 13 digits; account IDs have 12, so a larger value is no real key
    return f"{account:012d}" if account < 10**12 else ""


# -- history: where a blob came from, paid only for blobs that hold findings -----------

_FIELDS = "%H%x1f%an%x1f%ae%x1f%aI%x1f%cI%x1f%s"


@dataclass(frozen=True, slots=True)
class Appearance:
    """A blob appearing at a path in a commit (the commit added or changed it there)."""

    blob: str
    path: str
    commit: Commit
    order: int  # position in history, oldest first


def introductions(git_dir: Path, blobs: Collection[str], tips: Sequence[str]
                  ) -> dict[str, list[Appearance]]:
    """For each blob, every commit that put it at a path, oldest first.

    One `git log --raw` pass over the history, limited by git itself to the commits
    that touch these blobs (--find-object), so the cost does not grow with them.
    """
    wanted = set(blobs)
    found: dict[str, list[Appearance]] = {b: [] for b in wanted}
    if not wanted or not tips:
        return found
    args = ["git", f"--git-dir={git_dir}", "log", "--stdin", "--reverse", "--raw",
            "--no-abbrev", "--no-renames", "-m", "-z", f"--format=%x01{_FIELDS}",
            *(f"--find-object={b}" for b in sorted(wanted))]
    proc = subprocess.run(args, input="".join(f"{t}\n" for t in tips).encode(),
                          capture_output=True, check=False)
    commit: Commit | None = None
    tokens = proc.stdout.split(b"\0")
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip(b"\n")
        i += 1
        if token.startswith(b"\x01"):
            commit = _commit(token[1:])
        elif token.startswith(b":") and i < len(tokens) and commit is not None:
            path = os.fsdecode(tokens[i])
            i += 1
            meta = token.split()
            new = meta[3].decode() if len(meta) > 3 else ""
            if new in wanted and not any(a.commit.sha == commit.sha and a.path == path
                                         for a in found[new]):
                found[new].append(Appearance(new, path, commit, i))
    return found


def _commit(header: bytes) -> Commit:
    fields = header.decode("utf-8", "replace").split("\x1f")
    fields += [""] * (6 - len(fields))
    return Commit(sha=fields[0], author_name=fields[1], author_email=fields[2],
                  author_date=fields[3], commit_date=fields[4], message=fields[5])


def commits(git_dir: Path, shas: Collection[str]) -> dict[str, Commit]:
    """Metadata of given commits (for findings in commit messages)."""
    if not shas:
        return {}
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "log", "--no-walk=unsorted", "--stdin", "-z",
         f"--format={_FIELDS}"],
        input="".join(f"{s}\n" for s in shas).encode(), capture_output=True, check=False,
    )
    out = {}
    for record in proc.stdout.split(b"\0"):
        if record.strip():
            c = _commit(record.strip(b"\n"))
            out[c.sha] = c
    return out


def refs_containing(git_dir: Path, commit: str) -> list[str]:
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "for-each-ref", f"--contains={commit}",
         "--format=%(refname)"],
        capture_output=True, check=False,
    )
    return proc.stdout.decode("utf-8", "replace").split()


def head_blobs(git_dir: Path) -> dict[str, list[str]]:
    """Blob id -> paths in HEAD's tree (what is 'still in HEAD')."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "-z", "--full-tree", "HEAD"],
        capture_output=True, check=False,
    )
    out: dict[str, list[str]] = {}
    for entry in proc.stdout.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == b"blob":
            out.setdefault(parts[2].decode(), []).append(os.fsdecode(path))
    return out
