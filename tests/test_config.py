""".keyscan.yaml and [tool.keyscan]: one set of settings a team commits, under the flags.

Each story writes a settings file into a real repository, runs `keyscan scan` and
checks what the user sees: the report, the exit code, or one clear error line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import fake_key_id, fake_secret
from repos import CliResult, commit_all

from keyscan.attribute import account_id

Cli = Callable[..., CliResult]


# a rule file of one rule, for a rules folder
ACME_RULES = ("rules:\n  - id: acme-token\n    description: d\n"
              "    regex: 'acme_(?P<value>[a-z]{9})'\n")


def pair(key: str | None = None) -> str:
    return (f"aws_access_key_id = {key or fake_key_id()}\n"
            f"aws_secret_access_key = {fake_secret()}\n")


@pytest.fixture
def project(repo: Path) -> Path:
    """A repository with one leak in app code and one in test fixtures."""
    (repo / "app").mkdir()
    (repo / "app" / "settings.ini").write_text(pair())
    (repo / "tests" / "fixtures").mkdir(parents=True)
    (repo / "tests" / "fixtures" / "creds.ini").write_text(pair())
    commit_all(repo)
    return repo


def leak_paths(result: CliResult) -> list[str]:
    return sorted(f["path"] for f in result.json["findings"] if f["status"] == "leak")


def test_settings_in_keyscan_yaml_apply_to_a_scan(cli: Cli, project: Path) -> None:
    (project / ".keyscan.yaml").write_text(
        "# keyscan settings for this repository\n"
        "format: json\n"
        "exit_code: 9\n"
        "allow_paths: ['tests/fixtures/*']\n")

    result = cli("scan", project)

    assert result.code == 9, result.err
    assert leak_paths(result) == ["app/settings.ini"]  # json without --format json
    assert result.json["summary"]["allowed_by_path"] == 1  # counted, not silently gone
    assert "1 in allowed paths" in result.err


def test_command_line_flags_win_over_the_file(cli: Cli, project: Path) -> None:
    (project / ".keyscan.yaml").write_text("format: json\nexit_code: 9\n")

    result = cli("scan", project, "--format", "text", "--exit-code", "4")

    assert result.code == 4
    assert result.out.startswith("LEAK")


def test_list_settings_add_to_the_flags(cli: Cli, project: Path) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "setup.md").write_text(pair())
    (project / ".keyscan.yaml").write_text("allow_paths: ['tests/fixtures/*']\n")

    result = cli("scan", project, "-f", "json", "--allow-path", "docs/*")

    assert leak_paths(result) == ["app/settings.ini"]


def test_pyproject_tool_keyscan_table_is_read(cli: Cli, project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n'
        '[tool.keyscan]\nformat = "json"\nallow_paths = ["tests/fixtures/*"]\n')

    result = cli("scan", project)

    assert leak_paths(result) == ["app/settings.ini"]


def test_keyscan_yaml_wins_over_pyproject(cli: Cli, project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.keyscan]\nformat = "sarif"\n')
    (project / ".keyscan.yaml").write_text("format: json\n")

    assert "schema_version" in cli("scan", project).json


def test_settings_are_found_from_a_subfolder(cli: Cli, project: Path) -> None:
    (project / ".keyscan.yaml").write_text("format: json\nexit_code: 5\n")

    result = cli("scan", project / "app")

    assert result.code == 5
    assert leak_paths(result) == ["app/settings.ini"]


def test_allow_paths_apply_to_history_scans(cli: Cli, project: Path) -> None:
    (project / ".keyscan.yaml").write_text("allow_paths: ['tests/fixtures/*']\n")

    result = cli("scan", "--history", project, "-f", "json", "--no-cache")

    assert leak_paths(result) == ["app/settings.ini"]
    assert result.json["summary"]["allowed_by_path"] == 1


def test_a_range_that_edits_the_settings_says_so(cli: Cli, project: Path) -> None:
    """A pull request can add a key and, with it, settings that allow it: the CI step's
    range scan still exits clean, but says that the change edits what decides the
    report, and counts what the settings hid. An edit elsewhere in pyproject.toml is no
    such change."""
    from repos import git

    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    commit_all(project, "base")
    base = git(project, "rev-parse", "HEAD").stdout.strip()
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "2"\n')
    commit_all(project, "unrelated")
    quiet = cli("scan", "--range", f"{base}..HEAD", project, "-f", "json")
    assert quiet.code == 0 and "edits" not in quiet.err
    (project / "app" / "new.ini").write_text(pair())
    (project / ".keyscan.yaml").write_text("allow_paths: ['*']\n")
    commit_all(project, "pr")
    result = cli("scan", "--range", f"{base}..HEAD", project, "-f", "json")
    assert result.code == 0 and result.json["findings"] == []
    assert result.json["summary"]["allowed_by_path"] == 1
    assert "this change edits .keyscan.yaml" in result.err
    since = cli("scan", "--since-commit", base, project, "-f", "json")
    assert "this change edits .keyscan.yaml" in since.err


def test_disabled_rules_do_not_run(cli: Cli, repo: Path) -> None:
    (repo / "secret-only.txt").write_text(f"aws_secret_access_key = {fake_secret()}\n")
    commit_all(repo)
    rule_ids = {f["rule"] for f in cli("scan", repo, "-f", "json").json["findings"]}
    assert len(rule_ids) == 1
    (repo / ".keyscan.yaml").write_text(f"disable_rules: [{rule_ids.pop()}]\n")

    result = cli("scan", repo, "-f", "json")

    assert result.code == 0
    assert result.json["findings"] == []


def test_extra_rule_folders_are_relative_to_the_settings_file(cli: Cli, repo: Path) -> None:
    (repo / "ci" / "rules").mkdir(parents=True)
    (repo / "ci" / "rules" / "internal.yaml").write_text(
        "version: 1\nrules:\n"
        "  - id: internal-token\n    description: Internal API token\n    severity: high\n"
        "    role: generic\n    regex: 'itok_(?P<value>[a-z0-9]{32})'\n    keywords: [itok_]\n")
    (repo / "service.env").write_text("TOKEN=itok_" + "0123456789abcdef" * 2 + "\n")
    (repo / ".keyscan.yaml").write_text("rules: [ci/rules]\nformat: json\n")
    commit_all(repo)

    result = cli("scan", repo / "service.env")

    assert [f["rule"] for f in result.json["findings"]] == ["internal-token"]


def test_rules_lists_the_rules_the_settings_put_in_force(cli: Cli, repo: Path) -> None:
    """`keyscan rules` answers for a repository: its settings' rule folders added, the
    rules they disable left out (as a scan there runs them)."""
    shipped = {line.split()[0] for line in cli("rules", repo).out.splitlines()}
    (repo / "ci" / "rules").mkdir(parents=True)
    (repo / "ci" / "rules" / "internal.yaml").write_text(
        "version: 1\nrules:\n"
        "  - id: internal-token\n    description: Internal API token\n    severity: high\n"
        "    role: generic\n    regex: 'itok_(?P<value>[a-z0-9]{32})'\n    keywords: [itok_]\n")
    disabled = sorted(shipped)[0]
    (repo / ".keyscan.yaml").write_text(f"rules: [ci/rules]\ndisable_rules: [{disabled}]\n")
    listed = {line.split()[0] for line in cli("rules", repo).out.splitlines()}
    assert listed == shipped - {disabled} | {"internal-token"}
    assert {line.split()[0] for line in cli("rules", repo, "--no-config").out.splitlines()} \
        == shipped


def test_our_accounts_classify_keys_offline(cli: Cli, repo: Path) -> None:
    ours, theirs = fake_key_id(), fake_key_id()
    (repo / "a.env").write_text(f"KEY={ours}\n")
    (repo / "b.env").write_text(f"KEY={theirs}\n")
    (repo / ".keyscan.yaml").write_text(f"our_accounts: ['{account_id(ours)}']\n")

    result = cli("scan", repo, "-f", "json")

    by_key = {f["key_id"]: f["classification"] for f in result.json["findings"]}
    assert by_key == {ours: "ours", theirs: "foreign"}


def test_max_file_size_skips_big_files(cli: Cli, repo: Path) -> None:
    (repo / "big.ini").write_text(pair() + "#" * 2048)
    (repo / ".keyscan.yaml").write_text("max_file_size: 1k\n")

    result = cli("scan", repo, "-f", "json")

    assert result.code == 0
    assert [s["path"] for s in result.json["skipped"]] == ["big.ini"]


def test_no_config_ignores_the_file(cli: Cli, project: Path) -> None:
    (project / ".keyscan.yaml").write_text("exit_code: 9\n")

    assert cli("scan", project, "--no-config").code == 1


def test_config_flag_names_another_file(cli: Cli, project: Path, tmp_path: Path) -> None:
    other = tmp_path / "strict.yaml"
    other.write_text("exit_code: 4\n")

    assert cli("scan", project, "--config", other).code == 4


# -- mistakes: one line naming the file and the key, exit 2 ----------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("formt: json\n", "unknown key 'formt' (did you mean 'format'?)"),
    ("format: xml\n", "'format' must be one of text, json, jsonl, sarif, not 'xml'"),
    ("exit_code: yes\n", "'exit_code' must be a number from 0 to 255, not True"),
    ("exit_code: 3\n", "'exit_code': 3 already means 'an AWS action failed': choose another"),
    ("allow_paths: 3\n", "'allow_paths' must be a list of strings"),
    ("max_file_size: lots\n", "'max_file_size' must be a size such as"),
    ("our_accounts: ['12345']\n", "'our_accounts' has '12345', not an AWS account ID"),
    ("- just\n- a list\n", "settings must be a mapping of keys"),
    ("format: [json\n", "line 2 is not valid YAML"),
    # PyYAML kept the last silently: a reviewer reading the first saw another setting
    ("format: sarif\nexit_code: 1\nformat: text\n",
     "line 3: key 'format' is given twice in one mapping (first on line 1)"),
    ("disable_rules: [no-such-rule]\n", "'disable_rules' names 'no-such-rule', which no rule"),
])
def test_a_bad_setting_is_one_clear_line(cli: Cli, project: Path, text: str,
                                         expected: str) -> None:
    settings = project / ".keyscan.yaml"
    settings.write_text(text)

    result = cli("scan", project)

    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"keyscan: error: {settings}:")
    assert expected in result.err


@pytest.mark.parametrize(("name", "text"), [
    (".keyscan.yaml", 'rules: [""]\n'),
    (".keyscan.yaml", "rules: ['  ', ci/keyscan-rules]\n"),
    (".keyscan.yaml", 'rules: ""\n'),
    ("pyproject.toml", '[tool.keyscan]\nrules = [""]\n'),
])
def test_an_empty_rules_entry_is_refused(cli: Cli, project: Path, name: str, text: str
                                         ) -> None:
    """`rules: [""]` was joined to the settings file's folder: the repository root was
    read as a rules folder (each YAML file in it a rule file, or none and an error
    about a folder the user never named)."""
    (project / "ci" / "keyscan-rules").mkdir(parents=True)
    (project / "ci" / "keyscan-rules" / "acme.yaml").write_text(ACME_RULES)
    (project / name).write_text(text)
    table = ": [tool.keyscan]" if name.endswith(".toml") else ":"

    result = cli("scan", project)

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"keyscan: error: {project / name}{table} 'rules' has an "
                                 "empty entry: give each rules folder's path"), result.err


@pytest.mark.parametrize("command", [["scan"], ["baseline", "-o", "baseline.json"], ["rules"],
                                     ["audit", "--repos", "repos.txt"]], ids=lambda c: c[0])
@pytest.mark.parametrize("folder", ["", "  "], ids=["empty", "blank"])
def test_an_empty_rules_option_is_a_usage_error(
        cli: Cli, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        command: list[str], folder: str) -> None:
    """`--rules ""` was `Path(".")`: the current folder was read as a rules folder
    (here one holding a rule file, so the scan ran with a rule nobody named), as
    `rules: [""]` in the settings was."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "acme.yaml").write_text(ACME_RULES)
    target = [] if command[0] == "audit" else [project]

    with pytest.raises(SystemExit) as exc:
        cli(*command, *target, "--rules", folder, cwd=here)

    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        f"error: argument --rules: {folder!r} is empty: give a rules folder's path ('.' for "
        "the current folder)"), err
    assert sorted(p.name for p in here.iterdir()) == ["acme.yaml"]  # nothing written


@pytest.mark.parametrize(("name", "key", "text"), [
    (".keyscan.yaml", "allow_paths", 'allow_paths: [""]\n'),
    (".keyscan.yaml", "allow_paths", "allow_paths: ['tests/fixtures/*', '  ']\n"),
    (".keyscan.yaml", "allow_paths", "allow_paths: ''\n"),
    (".keyscan.yaml", "allow_paths", "allow_paths: ['/']\n"),
    ("pyproject.toml", "allow_paths", '[tool.keyscan]\nallow_paths = ["./"]\n'),
    (".keyscan.yaml", "disable_rules", 'disable_rules: [""]\n'),
    ("pyproject.toml", "disable_rules", '[tool.keyscan]\ndisable_rules = ["  "]\n'),
], ids=["allow-empty", "allow-blank", "allow-empty-string", "allow-slash",
        "allow-dot-slash-toml", "disable-empty", "disable-blank-toml"])
def test_an_empty_allow_paths_or_disable_rules_entry_is_refused(
        cli: Cli, project: Path, name: str, key: str, text: str) -> None:
    """An empty allowed path (or one of only `/` or `./`, which are dropped) was an
    empty glob, taken without a word though it allowed no path; an empty rule to
    disable was said to be a rule no rule file has."""
    (project / name).write_text(text)
    table = ": [tool.keyscan]" if name.endswith(".toml") else ":"
    give = {"allow_paths": "give each path or glob to allow, relative to the repository root",
            "disable_rules": "give each rule's ID (`keyscan rules` lists them)"}[key]

    result = cli("scan", project)

    assert result.code == 2, result.out
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"keyscan: error: {project / name}{table} '{key}' has an "
                                 f"empty entry: {give}"), result.err


@pytest.mark.parametrize("command", [["scan"], ["baseline", "-o", "baseline.json"], ["rules"]],
                         ids=lambda c: c[0])
@pytest.mark.parametrize(("option", "value"), [
    ("--allow-path", ""), ("--allow-path", "  "), ("--allow-path", "/"), ("--allow-path", "./"),
    ("--disable-rule", ""), ("--disable-rule", " "),
])
def test_an_empty_allow_path_or_disable_rule_option_is_a_usage_error(
        cli: Cli, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        command: list[str], option: str, value: str) -> None:
    """As in the settings: `--allow-path ""` was taken, allowing no path, and
    `--disable-rule ""` was said to be a rule no rule file has."""
    with pytest.raises(SystemExit) as exc:
        cli(*command, project, option, value, cwd=tmp_path)

    assert exc.value.code == 2
    err = capsys.readouterr().err
    give = {"--allow-path": "give each path or glob to allow, relative to the repository root",
            "--disable-rule": "give each rule's ID (`keyscan rules` lists them)"}[option]
    assert f"error: argument {option}: {value!r} is empty: {give}" in err.splitlines()[-1], err
    assert not (tmp_path / "baseline.json").exists()


NO_MATCH = ("can match no path: allowed paths are matched with the paths a scan reports, "
            "from the repository root, which never have a '.', '..' or empty part: give "
            "each path or glob to allow, relative to the repository root")
# each names no path a scan reports, once path_globs has dropped a leading `/` or `./`
NO_MATCH_GLOBS = [".", "..", "./.", "/..", "../shared/*", "tests/../app/*", "tests//*",
                  "app/./settings.ini"]


@pytest.mark.parametrize("glob", NO_MATCH_GLOBS)
@pytest.mark.parametrize("name", [".keyscan.yaml", "pyproject.toml"])
def test_an_allow_paths_entry_that_can_match_no_path_is_refused(
        cli: Cli, project: Path, name: str, glob: str) -> None:
    """`allow_paths: ["."]` (meant as "the whole repository"), `[".."]` or a path out of
    the repository (`../shared/*`) were taken without a word, and allowed nothing: the
    paths a scan reports are relative to the root, with no `.` or `..` part."""
    text = f"allow_paths: ['app/*', '{glob}']\n" if name == ".keyscan.yaml" \
        else f'[tool.keyscan]\nallow_paths = ["app/*", "{glob}"]\n'
    (project / name).write_text(text)
    table = ": [tool.keyscan]" if name.endswith(".toml") else ":"

    result = cli("scan", project)

    assert result.code == 2, result.err
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"keyscan: error: {project / name}{table} 'allow_paths' has "
                                 f"{glob!r}, which {NO_MATCH}"), result.err


@pytest.mark.parametrize("command", [["scan"], ["baseline", "-o", "baseline.json"], ["rules"]],
                         ids=lambda c: c[0])
@pytest.mark.parametrize("glob", NO_MATCH_GLOBS)
def test_an_allow_path_option_that_can_match_no_path_is_a_usage_error(
        cli: Cli, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        command: list[str], glob: str) -> None:
    """As in the settings: `--allow-path .` or `--allow-path ../x` allowed nothing."""
    with pytest.raises(SystemExit) as exc:
        cli(*command, project, "--allow-path", glob, cwd=tmp_path)

    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument --allow-path: {glob!r} {NO_MATCH}" in err.splitlines()[-1], err
    assert not (tmp_path / "baseline.json").exists()


def test_allowed_paths_named_like_dot_folders_still_apply(cli: Cli, project: Path) -> None:
    """Only a part that is exactly `.` or `..` is refused: `..cache`, `.github` and a
    glob such as `*.ini` are names a repository holds."""
    (project / "..cache").mkdir()
    (project / "..cache" / "k.ini").write_text(pair())
    commit_all(project)
    (project / ".keyscan.yaml").write_text("allow_paths: ['..cache/*', '.github', 'app/*.ini']\n")

    result = cli("scan", project, "-f", "json")

    assert leak_paths(result) == ["tests/fixtures/creds.ini"]
    assert result.json["summary"]["allowed_by_path"] == 2


@pytest.mark.parametrize("size", ["'0.0001k'", "'0.5'", "'0'", "0", "'-5'"])
def test_a_size_under_one_byte_is_refused(cli: Cli, project: Path, size: str) -> None:
    """`max_file_size: "0.0001k"` came to 0 bytes, taken as no setting: the 100M
    default applied without a word."""
    settings = project / ".keyscan.yaml"
    settings.write_text(f"max_file_size: {size}\n")

    result = cli("scan", project)

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"keyscan: error: {settings}: 'max_file_size' must be above "
                                 "0, 1 byte at least, not "), result.err
    assert "give a size such as 1048576, 512k or 50M" in result.err


@pytest.mark.parametrize("size", ["1k", "1.5K", " 2 kb ", "1e3k", "0.0001k", "-1k"])
def test_the_settings_and_the_command_line_read_a_size_alike(
        cli: Cli, project: Path, size: str) -> None:
    """One reader for both: the flag took `1e3k` (as a float), the settings refused it;
    the settings took `0.0001k` (as no setting), the flag refused it."""
    (project / "app" / "big.ini").write_text(pair() + "#" * 1100 + "\n")  # over 1k, under 1.5k
    (project / ".keyscan.yaml").write_text(f"max_file_size: '{size}'\n")

    from_file = cli("scan", project, "-f", "json")
    try:
        flag = cli("scan", project, "--no-config", "-f", "json", "--max-file-size", size)
    except SystemExit as exc:  # argparse's usage error
        assert exc.code == 2
        assert from_file.code == 2 and "'max_file_size' must be" in from_file.err
    else:
        assert from_file.code == flag.code == 1, from_file.err
        assert from_file.json["skipped"] == flag.json["skipped"]
        assert from_file.json["findings"] == flag.json["findings"]


def test_a_bad_pyproject_table_names_the_table(cli: Cli, project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.keyscan]\nmax-file-size = "1M"\n')

    result = cli("scan", project)

    assert result.code == 2
    assert f"{project / 'pyproject.toml'}: [tool.keyscan] unknown key 'max-file-size' " \
           "(did you mean 'max_file_size'?)" in result.err


def test_a_missing_config_file_is_reported(cli: Cli, project: Path) -> None:
    result = cli("scan", project, "--config", project / "nope.yaml")

    assert result.code == 2
    assert "nope.yaml does not exist: check --config" in result.err


def test_a_secret_pasted_into_the_settings_is_not_echoed(cli: Cli, project: Path) -> None:
    """A secret access key pasted where an account ID or a fingerprint belongs: the
    error names the file and the line, and shows the value only as reports do."""
    secret = fake_secret()
    (project / ".keyscan.yaml").write_text(f"our_accounts: ['{secret}']\n")
    result = cli("scan", project)
    assert result.code == 2 and "our_accounts" in result.err
    assert secret not in result.err and secret[:8] not in result.err
    (project / ".keyscan.yaml").unlink()
    (project / ".keyscanignore").write_text(f"{secret}\n")
    result = cli("scan", project)
    assert result.code == 2 and ".keyscanignore:1" in result.err
    assert secret.lower()[:8] not in result.err.lower()


@pytest.mark.parametrize("glob", ["/tests/fixtures/*", "./tests/fixtures/*", "tests/fixtures",
                                  "tests/fixtures/"])
def test_an_allowed_path_written_as_from_the_root_or_as_a_folder_applies(
        cli: Cli, project: Path, glob: str) -> None:
    """Each of these matched no path (paths are relative to the root, and a glob names
    files): the setting was silently a no-op."""
    (project / ".keyscan.yaml").write_text(f"allow_paths: ['{glob}']\n")

    result = cli("scan", project, "-f", "json")

    assert leak_paths(result) == ["app/settings.ini"]
    assert result.json["summary"]["allowed_by_path"] == 1
    assert cli("scan", project, "-f", "json", "--no-config", "--allow-path", glob
               ).json["summary"]["allowed_by_path"] == 1


def test_an_allowed_folder_does_not_allow_a_longer_name(cli: Cli, project: Path) -> None:
    result = cli("scan", project, "-f", "json", "--allow-path", "tests/fix")
    assert leak_paths(result) == ["app/settings.ini", "tests/fixtures/creds.ini"]
