"""`keyscan demo` runs from the README, with its own local IAM and no AWS account."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no real ~/.aws can be read
    done = subprocess.run([sys.executable, "-m", "keyscan", "demo"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "IAM now says the key is Inactive" in out
    assert '"action": "deactivate"' in out
    assert "IAM now says the key is Active" in out
    assert "the local IAM is stopped" in out
    assert "(40 chars, redacted)" in out
