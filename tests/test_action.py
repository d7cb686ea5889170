"""The CI recipes are the ones that run: action.yml's steps and the README's command lines.

The composite action's `run:` scripts are taken from action.yml and run with bash, the
way GitHub runs them, with the inputs filled in; the README's CI section is parsed and
every `keyscan` command line in it is run with the CI variables filled in. Both run in
a real repository: an old accepted leak, then a pull request adding a new one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import fake_key_id, fake_secret
from repos import KEYSCAN_BIN, PROJECT, clean_env, commit_all, git

BASELINE = ".keyscan-baseline.json"


@dataclass
class Story:
    repo: Path
    old_key: str
    new_key: str
    base: str  # main before the pull request
    head: str = ""  # the pull request's head, which adds new_key

    def open_pull_request(self) -> None:
        git(self.repo, "checkout", "-q", "-b", "pull-request")
        (self.repo / "deploy.sh").write_text(f"export AWS_ACCESS_KEY_ID={self.new_key}\n")
        git(self.repo, "add", "deploy.sh")  # not the reports earlier steps left behind
        git(self.repo, "commit", "-qm", "deploy script")
        self.head = git(self.repo, "rev-parse", "HEAD").stdout.strip()


def ci_env(**extra: str) -> dict[str, str]:
    env = clean_env(**extra)
    env["PATH"] = f"{KEYSCAN_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As GitHub runs a `shell: bash` step: bash --noprofile --norc -eo pipefail."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)


def readme_commands() -> list[str]:
    """Every `keyscan ...` command line in the README's "CI" section, in order."""
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("\n## CI\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```\w*\n(.*?)```", section, re.S):
        for line in block.splitlines():
            m = re.match(r"^\s*(?:- |run: )?(keyscan\s.*)$", line)
            if m:
                commands.append(m.group(1).split("  #")[0].strip())
    return commands


def fill_in(command: str, story: Story) -> str:
    """GitHub's ${{ }} expressions, as the runner substitutes them before bash runs."""
    values = {"github.event.pull_request.base.sha": story.base,
              "github.event.pull_request.head.sha": story.head}
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m.group(1)], command)


@pytest.fixture
def story(repo: Path) -> Iterator[Story]:
    """main with an old leak accepted in a committed baseline; a PR will add a new key."""
    old_key = fake_key_id()
    (repo / "legacy.ini").write_text(f"aws_access_key_id = {old_key}\n"
                                     f"aws_secret_access_key = {fake_secret()}\n")
    commit_all(repo, "legacy code")
    made = bash(readme_commands()[0], repo, ci_env())
    assert made.returncode == 0, made.stderr
    commit_all(repo, "accept the known leaks")
    base = git(repo, "rev-parse", "HEAD").stdout.strip()
    yield Story(repo, old_key, fake_key_id(), base)


# -- the README -----------------------------------------------------------------------------


def test_the_readme_recipes_cover_every_ci() -> None:
    commands = readme_commands()

    assert commands[0] == f"keyscan baseline --history . --output {BASELINE}"
    scans = commands[1:]
    assert len(scans) == 5
    assert all(c.startswith("keyscan scan ") and f"--baseline {BASELINE}" in c for c in scans)
    assert sum("--range" in c for c in scans) == 2  # GitHub PR, GitLab MR
    assert sum("--format sarif" in c for c in scans) == 1


def test_the_readme_commands_pass_on_main_and_fail_on_the_new_leak(story: Story) -> None:
    commands = readme_commands()[1:]
    for command in (c for c in commands if "--range" not in c):
        before = bash(command, story.repo, ci_env())
        assert before.returncode == 0, f"{command}\n{before.stdout}{before.stderr}"
    story.open_pull_request()
    gitlab = {"CI_MERGE_REQUEST_DIFF_BASE_SHA": story.base, "CI_COMMIT_SHA": story.head}
    for command in commands:
        for old_report in story.repo.glob("keyscan.*"):
            old_report.unlink()
        after = bash(fill_in(command, story), story.repo, ci_env(**gitlab))

        assert after.returncode == 1, f"{command}\n{after.stdout}{after.stderr}"
        assert reported(story.repo, after.stdout) == [story.new_key], command


def reported(repo: Path, stdout: str) -> list[str]:
    """The key IDs a recipe reports as leaks: in its text output or the report it wrote."""
    keys = re.findall(r"^\s+key ID\s+(\S+)", stdout, re.M)
    for report in repo.glob("keyscan.*"):
        text = report.read_text()
        if report.suffix == ".sarif":
            keys += [r["message"]["text"].split()[-1] for run in json.loads(text)["runs"]
                     for r in run["results"] if not r.get("suppressions")]
        else:
            rows = json.loads(text)["findings"] if report.suffix == ".json" \
                else [json.loads(line) for line in text.splitlines()]
            keys += [r["key_id"] for r in rows if r["status"] == "leak"]
    return keys


def test_the_readme_uses_only_inputs_the_action_has() -> None:
    readme = (PROJECT / "README.md").read_text()
    usage = readme.split("- uses: keyscan/keyscan@", 1)[1].split("```", 1)[0]
    given = set(re.findall(r"^\s{10}([\w-]+):", usage, re.M))

    assert given == {"range", "baseline"}
    assert given <= set(action()["inputs"])


# -- action.yml -----------------------------------------------------------------------------


def action() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((PROJECT / "action.yml").read_text())
    return doc


def run_action(story: Story, **inputs: str) -> list[subprocess.CompletedProcess[str]]:
    """Each `run:` step of the composite action, in order, until one fails."""
    doc = action()
    values = {name: spec.get("default", "") for name, spec in doc["inputs"].items()}
    values.update(inputs)
    context = {f"inputs.{k}": v for k, v in values.items()}
    context["github.action_path"] = str(PROJECT)
    done = []
    for step in doc["runs"]["steps"]:
        if "run" not in step:
            continue
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], "inputs reach scripts through env:, never inline"
        env = ci_env(**{k: re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: context[m.group(1)],
                                  str(v)) for k, v in step.get("env", {}).items()})
        done.append(bash(step["run"], story.repo, env))
        if done[-1].returncode != 0:
            break
    return done


def sarif_keys(path: Path) -> list[str]:
    runs = json.loads(path.read_text())["runs"]
    return [r["message"]["text"] for run in runs for r in run["results"]
            if not r.get("suppressions")]


def test_the_action_passes_on_main_with_the_baseline(story: Story) -> None:
    steps = run_action(story, baseline=BASELINE)

    assert [s.returncode for s in steps] == [0, 0], steps[-1].stderr
    assert sarif_keys(story.repo / "keyscan.sarif") == []


def test_the_action_fails_a_pull_request_that_adds_a_key(story: Story) -> None:
    story.open_pull_request()

    steps = run_action(story, baseline=BASELINE, range=f"{story.base}..{story.head}",
                       sarif="out/pr.sarif")

    assert [s.returncode for s in steps] == [0, 1]
    found = sarif_keys(story.repo / "out" / "pr.sarif")
    assert len(found) == 1 and story.new_key in found[0]
    assert story.new_key in steps[1].stdout  # the findings are in the job's log too


def test_the_action_without_a_baseline_reports_every_leak(story: Story) -> None:
    steps = run_action(story)

    assert steps[-1].returncode == 1
    assert [story.old_key in k for k in sarif_keys(story.repo / "keyscan.sarif")] == [True]


def test_the_action_installs_the_version_asked_for_even_over_a_keyscan_on_path(
        tmp_path: Path) -> None:
    """A `version:` input was ignored whenever a keyscan was already on the PATH."""
    install = next(s for s in action()["runs"]["steps"] if s.get("name") == "Install keyscan")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "pip-calls"
    fake = bin_dir / "python3"  # records the install instead of running pip
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    fake.chmod(0o755)
    for version, installed in (("keyscan==9.9.9", True), ("", False)):
        env = ci_env(KEYSCAN_VERSION=version, ACTION_PATH=str(PROJECT))
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"  # keyscan is on it too
        result = bash(install["run"], tmp_path, env)
        assert result.returncode == 0, result.stderr
        said = calls.read_text() if calls.exists() else ""
        assert ("keyscan==9.9.9" in said) is installed, (version, said)
        calls.unlink(missing_ok=True)
