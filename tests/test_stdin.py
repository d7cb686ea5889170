"""`keyscan scan -`: standard input, as a pipeline step uses it (a CI log, `kubectl get
secret -o yaml`, a config pasted from somewhere)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
from fakes import fake_key_id, fake_secret
from repos import KEYSCAN_BIN, PROJECT, clean_env


def piped(text: str | bytes, *args: str, cwd: Path | None = None
          ) -> subprocess.CompletedProcess[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return subprocess.run([str(KEYSCAN_BIN), "scan", "-", *args], input=data, cwd=cwd,
                          env=clean_env(), capture_output=True, check=False)


def test_a_key_in_piped_text_is_found_at_its_line(tmp_path: Path) -> None:
    key, secret = fake_key_id(), fake_secret()
    log = f"step 1: ok\nexport AWS_ACCESS_KEY_ID={key}\nexport AWS_SECRET_ACCESS_KEY={secret}\n"
    text = piped(log, cwd=tmp_path)
    assert text.returncode == 1
    assert b"(stdin):2:26" in text.stdout and secret.encode() not in text.stdout + text.stderr
    assert b"standard input" in text.stderr
    result = piped(log, "--format", "json", cwd=tmp_path)
    doc = json.loads(result.stdout)
    [finding] = doc["findings"]
    assert (doc["mode"], finding["path"], finding["source"], finding["kind"], finding["key_id"]
            ) == ("stdin", "(stdin)", "stdin", "pair", key)
    schema = json.loads((PROJECT / "keyscan" / "schema" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_clean_input_and_an_allowed_example_pass(tmp_path: Path) -> None:
    assert piped("nothing to see\n", cwd=tmp_path).returncode == 0
    marked = f"AWS_ACCESS_KEY_ID={fake_key_id()}  # keyscan:allow\n"
    assert piped(marked, cwd=tmp_path).returncode == 0
    assert piped(b"", cwd=tmp_path).returncode == 0


def test_input_over_the_size_limit_fails_with_what_was_scanned(tmp_path: Path) -> None:
    key = fake_key_id()
    big = f"id {key}\n" + "padding line\n" * 200
    result = piped(big, "--max-file-size", "1k", cwd=tmp_path)
    assert result.returncode == 2  # unread input is not clean, even with a leak found
    assert b"larger than the size limit" in result.stderr and key.encode() in result.stdout


def test_standard_input_with_a_repository_option_is_a_usage_error(tmp_path: Path) -> None:
    for option in ("--history", "--staged", "--since-commit=HEAD"):
        result = piped("x\n", option, cwd=tmp_path)
        assert result.returncode == 2 and b"standard input" in result.stderr, option
