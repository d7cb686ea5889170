"""keyscan's own tree scans clean: no test, rule file or doc holds a real-looking key."""

from __future__ import annotations

import json

from repos import PROJECT, run_keyscan


def test_the_project_scans_clean_with_keyscan() -> None:
    proc = run_keyscan(["scan", PROJECT, "--format", "json"])
    assert proc.returncode == 0, "\n".join(
        f"{f['path']}:{f['line']}:{f['column']} {f['rule']}"
        for f in json.loads(proc.stdout)["findings"] if f["status"] == "leak") or proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["files"] > 10
    assert doc["errors"] == []
