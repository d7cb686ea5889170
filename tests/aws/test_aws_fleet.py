"""`keyscan audit --verify`: a key leaked in many repositories is one IAM question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_helpers import Iam, env_file, make_repo, run_cli


@pytest.mark.timeout(90)
def test_audit_verifies_each_distinct_key_once(iam: Iam, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    shared = iam.new_key("ci-deployer")["AccessKeyId"]
    alone = iam.new_key("backup")["AccessKeyId"]
    repos = [make_repo(tmp_path / f"svc-{i}", {"deploy.env": env_file(shared)})
             for i in range(3)]
    repos.append(make_repo(tmp_path / "backup", {"b.env": env_file(alone)}))
    listing = tmp_path / "repos.txt"
    listing.write_text("".join(f"{r}\n" for r in repos))
    out = tmp_path / "findings.jsonl"
    iam.record()

    code, _, err = run_cli(capsys, "audit", "--repos", str(listing), "--workers", "1",
                           "--workdir", str(tmp_path / "w"), "-o", str(out), "--verify")

    assert code == 1, err
    assert len(iam.calls("GetAccessKeyLastUsed")) == 2  # two keys, four findings
    assert "2 distinct key IDs checked against IAM (4 leaked findings)" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["repo"] for r in rows} == {str(r) for r in repos}
    owners = {r["key_id"]: r["ownership"]["user"] for r in rows}
    assert owners == {shared: "ci-deployer", alone: "backup"}
    assert all(r["ownership"]["confirmed"] for r in rows)
