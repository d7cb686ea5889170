"""Real git repositories and the real `keyscan` command, driven as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
KEYSCAN_BIN = Path(sys.executable).parent / "keyscan"

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.com",
}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for git in repositories the tests create: no inherited GIT_* state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_IDENTITY)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env.update(extra)
    return env


def git(repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false",
         *args],
        env=env or clean_env(), capture_output=True, text=True, check=check,
    )


def commit_all(repo: Path, message: str = "commit") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def run_keyscan(args: Sequence[str | Path], cwd: Path | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `keyscan` console script in a child process."""
    return subprocess.run([str(KEYSCAN_BIN), *map(str, args)], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, check=False)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)
