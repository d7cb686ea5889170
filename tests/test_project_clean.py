"""keyscan's own tree scans clean: no test, rule file or doc holds a real-looking key."""

from __future__ import annotations

import json

import pytest
from repos import PROJECT, git, run_keyscan


def test_the_project_scans_clean_with_keyscan() -> None:
    proc = run_keyscan(["scan", PROJECT, "--format", "json"])
    assert proc.returncode == 0, "\n".join(
        f"{f['path']}:{f['line']}:{f['column']} {f['rule']}"
        for f in json.loads(proc.stdout)["findings"] if f["status"] == "leak") or proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["files"] > 10
    assert doc["errors"] == []


def test_the_project_s_whole_history_scans_clean() -> None:
    """Every commit of keyscan itself, as this checkout holds them (a clone's packs are
    the kind fetches leave: this test caught a pack-reading error)."""
    if git(PROJECT, "rev-parse", "--git-dir", check=False).returncode != 0:
        pytest.skip("not a git checkout")
    proc = run_keyscan(["scan", "--history", PROJECT, "--no-cache", "--format", "json"])
    assert proc.returncode == 0, proc.stderr + "\n".join(
        f"{f['path']}:{f['line']} {f['rule']}" for f in json.loads(proc.stdout or "{}")
        .get("findings", []) if f["status"] == "leak")
    doc = json.loads(proc.stdout)
    assert doc["summary"]["files"] > 100 and doc["errors"] == []
