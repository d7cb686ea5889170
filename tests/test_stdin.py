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


def test_a_non_blocking_pipe_is_read_to_its_end(tmp_path: Path) -> None:
    """Some CI runners hand a child its stdin in non-blocking mode: one read gave only
    what had arrived, and the key written a moment later passed with exit 0."""
    import fcntl
    import os
    import time

    key, secret = fake_key_id(), fake_secret()
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(read_end, fcntl.F_GETFL)
    fcntl.fcntl(read_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    proc = subprocess.Popen([str(KEYSCAN_BIN), "scan", "-"], stdin=read_end, cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(read_end)
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(b"step 1: ok\n")
        pipe.flush()
        time.sleep(0.5)
        pipe.write(f"AWS_ACCESS_KEY_ID={key}\nAWS_SECRET_ACCESS_KEY={secret}\n".encode())
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and key.encode() in out


def test_standard_input_closed_or_unreadable_is_one_clear_line(tmp_path: Path) -> None:
    closed = subprocess.run(f"{KEYSCAN_BIN} scan - <&-", shell=True, cwd=tmp_path,
                            env=clean_env(), capture_output=True, check=False)
    unreadable = subprocess.run(f"{KEYSCAN_BIN} scan - 0>{tmp_path / 'w'}", shell=True,
                                cwd=tmp_path, env=clean_env(), capture_output=True,
                                check=False)
    for result in (closed, unreadable):  # it was "internal error: AttributeError/OSError"
        assert result.returncode == 2
        [line] = result.stderr.decode().strip().splitlines()
        assert line.startswith("keyscan: error: standard input"), line


def test_a_pipe_or_a_link_named_on_the_command_line_is_read(tmp_path: Path) -> None:
    """`keyscan scan /dev/stdin`, `keyscan scan <(cmd)` and a symlink named as the target
    passed with exit 0 (the link was treated as a folder: 'unreadable: Not a directory')."""
    key = fake_key_id()
    (tmp_path / "real.ini").write_text(f"aws_access_key_id = {key}\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "link.ini").symlink_to(tmp_path / "real.ini")
    for command in (f"cat real.ini | {KEYSCAN_BIN} scan /dev/stdin",
                    f"{KEYSCAN_BIN} scan <(cat real.ini)",
                    f"{KEYSCAN_BIN} scan folder/link.ini"):
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=clean_env(),
                                capture_output=True, check=False)
        assert result.returncode == 1 and key.encode() in result.stdout, command
    # a folder's links are still not followed unless asked (--follow-symlinks)
    assert subprocess.run([str(KEYSCAN_BIN), "scan", "folder"], cwd=tmp_path, env=clean_env(),
                          capture_output=True, check=False).returncode == 0


def test_no_baseline_is_written_from_input_that_was_not_all_read(tmp_path: Path) -> None:
    key = fake_key_id()
    big = (f"id {key}\n" + "padding line\n" * 200).encode()
    result = subprocess.run([str(KEYSCAN_BIN), "baseline", "-", "-o", "b.json",
                             "--max-file-size", "1k"], input=big, cwd=tmp_path,
                            env=clean_env(), capture_output=True, check=False)
    assert result.returncode == 2 and not (tmp_path / "b.json").exists()
    assert b"larger than the size limit" in result.stderr
    assert b"no baseline written" in result.stderr
