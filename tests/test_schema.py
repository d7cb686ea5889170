"""The published JSON Schema (keyscan/schema/report.schema.json) holds for real reports.

Reports come from real scans of real repositories: the working tree, the whole
history (commit and history fields), AWS classification, a baseline with stale
entries; `--format jsonl` lines are findings of the same schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fakes import fake_key_id, fake_secret, fake_session_token
from repos import CliResult, commit_all, git

from keyscan.attribute import account_id
from keyscan.model import Finding, Location, Ownership, ScanResult, Secret, Status
from keyscan.report import json as json_report

Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = (resources.files("keyscan") / "schema" / "report.schema.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def valid(doc: object, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.fixture
def leaky(repo: Path) -> dict[str, str]:
    """Every kind of finding: a pair, an ID alone, a session token, an example, a skip."""
    keys = {"pair": fake_key_id(), "alone": fake_key_id(), "temp": fake_key_id("ASIA"),
            "removed": fake_key_id(), "message": fake_key_id()}
    (repo / "prod.ini").write_text(f"aws_access_key_id = {keys['pair']}\n"
                                   f"aws_secret_access_key = {fake_secret()}\n")
    (repo / "ids.txt").write_text(f"id {keys['alone']}\n")
    (repo / "sts.env").write_text(f"AWS_ACCESS_KEY_ID={keys['temp']}\n"
                                  f"AWS_SECRET_ACCESS_KEY={fake_secret()}\n"
                                  f"AWS_SESSION_TOKEN={fake_session_token()}\n")
    (repo / "old.txt").write_text(f"id {keys['removed']}\n")
    (repo / "README.md").write_text("Example: AKIAIOSFODNN7EXAMPLE\n")
    commit_all(repo, "leaks")
    git(repo, "rm", "-q", "old.txt")
    git(repo, "commit", "-qm", f"remove old key {keys['message']}")
    git(repo, "tag", "-a", "v1", "-m", "release")
    (repo / "huge.bin").write_bytes(b"x" * 4096)
    return keys


def test_a_working_tree_report_matches_the_schema(cli: Cli, repo: Path, leaky: dict[str, str],
                                                  schema: dict[str, Any]) -> None:
    doc = cli("scan", repo, "-f", "json", "--max-file-size", "1k").json

    valid(doc, schema)
    assert {f["kind"] for f in doc["findings"]} >= {"pair", "key-id"}
    assert {f["status"] for f in doc["findings"]} == {"leak", "example"}
    assert doc["skipped"] and doc["baseline"] is None


def test_a_history_report_with_commits_matches_the_schema(
        cli: Cli, repo: Path, leaky: dict[str, str], schema: dict[str, Any]) -> None:
    doc = cli("scan", "--history", repo, "-f", "json", "--no-cache").json

    valid(doc, schema)
    removed = next(f for f in doc["findings"] if f["key_id"] == leaky["removed"])
    assert removed["commit"]["message"] == "leaks"
    assert removed["in_head"] is False and removed["occurrences"]
    assert "commit-message" in {f["source"] for f in doc["findings"]}


def test_classification_and_baseline_fields_match_the_schema(
        cli: Cli, repo: Path, leaky: dict[str, str], schema: dict[str, Any]) -> None:
    baseline = repo.parent / "baseline.json"
    cli("baseline", repo, "-o", baseline)
    (repo / "ids.txt").unlink()
    ours, theirs = fake_key_id(), fake_key_id()
    (repo / "new.env").write_text(f"A={ours}\nB={theirs}\n")

    doc = cli("scan", repo, "-f", "json", "--baseline", baseline,
              "--our-account", account_id(ours)).json

    valid(doc, schema)
    assert {f["classification"] for f in doc["findings"] if f["status"] == "leak"} \
        == {"ours", "foreign"}
    assert [s["key_id"] for s in doc["baseline"]["stale"]] == [leaky["alone"]]


def test_iam_ownership_fields_match_the_schema(schema: dict[str, Any]) -> None:
    key = fake_key_id()
    own = Ownership(classification="ours", account=account_id(key), checked=True,
                    confirmed=True, user="deployer", arn="arn:aws:iam::1:user/deployer",
                    status="Active", created="2024-01-02", key_count=1, live=True,
                    notes=("a note",))
    finding = Finding(rule_id="aws-access-key-id", description="AWS access key ID",
                      severity="high", status=Status.LEAK, location=Location("a.env"),
                      line=1, column=1, key_id=key, account=account_id(key),
                      secret=Secret(fake_secret()), ownership=own)

    doc = json.loads(json_report.render(ScanResult("repo", "worktree", findings=[finding])))

    valid(doc, schema)
    assert doc["findings"][0]["ownership"]["user"] == "deployer"


def test_json_lines_are_findings_of_the_schema(cli: Cli, repo: Path, leaky: dict[str, str],
                                               schema: dict[str, Any]) -> None:
    finding_schema = {**schema["$defs"]["finding"], "$defs": schema["$defs"]}

    result = cli("scan", "--history", repo, "--format", "jsonl", "--no-cache")

    lines = result.out.splitlines()
    assert result.code == 1
    assert len(lines) == len(cli("scan", "--history", repo, "-f", "json").json["findings"])
    for line in lines:
        valid(json.loads(line), finding_schema)
