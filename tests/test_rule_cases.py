"""Every AWS rule case of issue 2, true and false, through the matcher and through the CLI.

Each case builds its content from keys made at run time and says what a user should
see: which findings, of which kind, how severe, on which line and column. The same
cases run twice: once through the pure matcher, once by writing a file and running
`keyscan scan --format json`.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fakes import fake_key_id, fake_secret, fake_session_token
from repos import CliResult

from keyscan.model import Finding

DOC_KEY_ID = "AKIAIOSFODNN7" + "EXAMPLE"  # the ID in AWS documentation
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"  # its secret


@dataclass(frozen=True)
class Keys:
    akia: str
    asia: str
    abia: str
    acca: str
    a3t: str
    secret: str
    secret2: str
    token: str
    slashy: str  # a secret holding '/' and '+', which URLs must percent-encode


@pytest.fixture
def keys() -> Keys:
    rng = random.Random()
    slashy = fake_secret(rng)
    slashy = slashy[:10] + "/" + slashy[11:20] + "+" + slashy[21:]
    return Keys(fake_key_id("AKIA", rng), fake_key_id("ASIA", rng), fake_key_id("ABIA", rng),
                fake_key_id("ACCA", rng), fake_key_id("A3T", rng), fake_secret(rng),
                fake_secret(rng), fake_session_token(rng), slashy)


def where(content: str, value: str) -> tuple[int, int]:
    """1-based (line, column) of the first `value` in `content`."""
    before = content[: content.index(value)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


# -- two ways to scan some content, giving the same plain view of each finding ---------


def view_of_finding(f: Finding) -> dict[str, Any]:
    return {"kind": f.kind, "status": f.status.value, "severity": f.severity,
            "key_id": f.key_id or None, "key_type": f.key_type or None,
            "secret": f.secret.reveal() if f.secret else None,
            "token": f.session_token.reveal() if f.session_token else None,
            "line": f.line, "column": f.column, "encoding": f.encoding}


def view_of_json(d: dict[str, Any]) -> dict[str, Any]:
    return {"kind": d["kind"], "status": d["status"], "severity": d["severity"],
            "key_id": d["key_id"], "key_type": d["key_type"], "secret": d["secret"],
            "token": d["session_token"], "line": d["line"], "column": d["column"],
            "encoding": d["encoding"]}


Scanner = Callable[[str | bytes], list[dict[str, Any]]]


@pytest.fixture(params=["matcher", "cli"])
def scan(request: pytest.FixtureRequest, find: Callable[..., list[Finding]],
         cli: Callable[..., CliResult], tmp_path: Path) -> Scanner:
    if request.param == "matcher":
        return lambda content: [view_of_finding(f) for f in find(content)]

    def through_cli(content: str | bytes) -> list[dict[str, Any]]:
        folder = tmp_path / "plain-folder"
        folder.mkdir(exist_ok=True)
        target = folder / "file.txt"
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        result = cli("scan", folder, "--format", "json", "--show-secrets")
        doc = result.json
        leaks = [f for f in doc["findings"] if f["status"] == "leak"]
        assert result.code == (1 if leaks else 0), result.err
        assert all(f["path"] == "file.txt" for f in doc["findings"])
        return [view_of_json(f) for f in doc["findings"]]

    return through_cli


def assert_findings(found: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Each expected finding (a partial view) matches exactly one found finding, and no more."""
    assert len(found) == len(expected), f"expected {len(expected)} findings, got {found}"
    remaining = list(found)
    for want in expected:
        hits = [f for f in remaining if all(f[k] == v for k, v in want.items())]
        assert hits, f"no finding like {want} in {found}"
        remaining.remove(hits[0])


# -- access key IDs --------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["AKIA", "ASIA", "ABIA", "ACCA", "A3T"])
def test_each_kind_of_key_id_is_found_and_named(scan: Scanner, prefix: str) -> None:
    key = fake_key_id(prefix)
    content = f"[default]\naws_access_key_id = {key}\nregion = eu-west-1\n"
    found = scan(content)
    line, column = where(content, key)
    assert_findings(found, [{"kind": "key-id", "status": "leak", "severity": "high",
                             "key_id": key, "line": line, "column": column, "secret": None}])
    assert found[0]["key_type"].startswith(f"{prefix}: ")


def test_a_key_id_alone_is_a_finding(scan: Scanner, keys: Keys) -> None:
    assert_findings(scan(keys.akia), [{"kind": "key-id", "key_id": keys.akia, "line": 1,
                                       "column": 1, "status": "leak"}])


# -- secret access keys next to a keyword ------------------------------------------------


SECRET_FORMS = {
    "ini": "aws_secret_access_key = {s}\n",
    "json": '{{\n  "SecretAccessKey": "{s}"\n}}\n',
    "shell": "export AWS_SECRET_ACCESS_KEY={s}\n",
    "shell-quoted": 'export AWS_SECRET_ACCESS_KEY="{s}"\n',
    "xml": "<Credentials>\n  <SecretAccessKey>{s}</SecretAccessKey>\n</Credentials>\n",
    "yaml": "aws:\n  secret_key: {s}\n",
    # labelled by name, the value one field (or one line) further on
    "k8s-env-list": "env:\n  - name: AWS_SECRET_ACCESS_KEY\n    value: {s}\n",
    "ecs-task-definition": '{{"name": "AWS_SECRET_ACCESS_KEY", "value": "{s}"}}\n',
    "ecs-task-definition-pretty": ('"environment": [\n  {{\n    "name": "AWS_SECRET_ACCESS_KEY",'
                                   '\n    "value": "{s}"\n  }}\n]\n'),
    "dotnet-config": '<appSettings>\n  <add key="AWSSecretKey" value="{s}"/>\n</appSettings>\n',
    "terraform": 'variable "aws_secret_key" {{ default = "{s}" }}\n',
    "terraform-block": 'variable "aws_secret_key" {{\n  default = "{s}"\n}}\n',
    "makefile": "AWS_SECRET_ACCESS_KEY ?= {s}\n",
    "js-or-default": "const secret = process.env.AWS_SECRET_ACCESS_KEY || '{s}';\n",
    "js-nullish-default": "const secret = process.env.AWS_SECRET_ACCESS_KEY ?? '{s}';\n",
    # JSON inside a JSON string (a notebook's source line, a log line, an Airflow extra)
    "notebook-source": '{{"source": ["os.environ[\\"AWS_SECRET_ACCESS_KEY\\"] = \\"{s}\\"\\n"]}}\n',
    "json-in-a-json-string": '{{"extra": "{{\\"aws_secret_access_key\\": \\"{s}\\"}}"}}\n',
    # XML labelled by an element: Hadoop/Spark core-site.xml, a macOS plist
    "hadoop-core-site": ("<property>\n  <name>fs.s3a.secret.key</name>\n"
                         "  <value>{s}</value>\n</property>\n"),
    "hadoop-one-line": "<property><name>fs.s3a.secret.key</name><value>{s}</value></property>\n",
    "plist": "<dict>\n\t<key>AWS_SECRET_ACCESS_KEY</key>\n\t<string>{s}</string>\n</dict>\n",
    # a shell or docker-compose default
    "shell-default": 'export AWS_SECRET_ACCESS_KEY="${{AWS_SECRET_ACCESS_KEY:-{s}}}"\n',
    "compose-default": "    environment:\n      AWS_SECRET_ACCESS_KEY: ${{AWS_SECRET:-{s}}}\n",
    # YAML block scalars
    "yaml-literal-block": "aws_secret_access_key: |\n  {s}\n",
    "yaml-folded-block": "aws_secret_access_key: >-\n  {s}\n",
    # string prefixes: Python raw and bytes strings, C# verbatim strings
    "python-raw-string": 'AWS_SECRET_ACCESS_KEY = r"{s}"\n',
    "python-bytes": "secret_key=b'{s}'\n",
    "csharp-verbatim": 'var awsSecretKey = @"{s}";\n',
}


@pytest.mark.parametrize("form", sorted(SECRET_FORMS))
def test_a_secret_next_to_an_aws_keyword_is_found(scan: Scanner, keys: Keys, form: str) -> None:
    content = SECRET_FORMS[form].format(s=keys.secret)
    line, column = where(content, keys.secret)
    assert_findings(scan(content), [{"kind": "secret", "status": "leak", "severity": "high",
                                     "secret": keys.secret, "key_id": None,
                                     "line": line, "column": column}])


@pytest.mark.parametrize("form", sorted(SECRET_FORMS))
def test_a_labelled_secret_pairs_with_an_id_above_it(scan: Scanner, keys: Keys,
                                                     form: str) -> None:
    content = f"AWS_ACCESS_KEY_ID={keys.akia}\n" + SECRET_FORMS[form].format(s=keys.secret)
    assert_findings(scan(content), [{"kind": "pair", "severity": "critical", "status": "leak",
                                     "key_id": keys.akia, "secret": keys.secret}])


def test_a_kubernetes_env_list_pairs_its_id_and_secret(scan: Scanner, keys: Keys) -> None:
    content = ("containers:\n  - name: app\n    env:\n"
               f"      - name: AWS_ACCESS_KEY_ID\n        value: {keys.akia}\n"
               f"      - name: AWS_SECRET_ACCESS_KEY\n        value: {keys.secret}\n")
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.secret, "line": line, "column": column}])


def test_a_secret_label_two_lines_above_a_value_is_not_its_label(scan: Scanner,
                                                                  keys: Keys) -> None:
    content = f"- name: AWS_SECRET_ACCESS_KEY\n  valueFrom: aws\n  value: {keys.secret}\n"
    assert scan(content) == []


@pytest.mark.parametrize("content", [
    "AWS_SECRET_ACCESS_KEY: ${{AWS_SECRET_ACCESS_KEY:-}}\n",
    "<name>fs.s3a.secret.key</name>\n<value>${{env.S3_SECRET}}</value>\n",
    "<name>fs.s3a.secret.key</name>\n<description>{s}</description>\n",
    "aws_secret_access_key: |\n\n  {s}\n",
    "aws_secret_access_key = z'{s}'\n",
])
def test_near_forms_of_a_labelled_secret_that_label_nothing(scan: Scanner, keys: Keys,
                                                           content: str) -> None:
    assert [f for f in scan(content.format(s=keys.secret)) if f["status"] == "leak"] == []


def test_a_40_character_value_without_an_aws_keyword_is_not_a_secret(scan: Scanner,
                                                                       keys: Keys) -> None:
    assert scan(f"client_name = {keys.secret}\nchecksum: {keys.secret2}\n") == []


# -- pairing ---------------------------------------------------------------------------


def test_an_id_and_its_secret_a_few_lines_apart_are_one_critical_finding(
        scan: Scanner, keys: Keys) -> None:
    content = (f"[default]\naws_access_key_id = {keys.akia}\n# rotated monthly\n\n"
               f"aws_secret_access_key = {keys.secret}\n")
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "pair", "severity": "critical", "status": "leak",
                                     "key_id": keys.akia, "secret": keys.secret,
                                     "line": line, "column": column}])


def test_an_unlabelled_secret_near_an_id_is_paired(scan: Scanner, keys: Keys) -> None:
    content = f"creds:\n  - {keys.akia}\n  - {keys.secret}\n"
    assert_findings(scan(content), [{"kind": "pair", "severity": "critical",
                                     "key_id": keys.akia, "secret": keys.secret}])


def test_an_unlabelled_value_far_from_any_id_is_not_paired(scan: Scanner, keys: Keys) -> None:
    content = f"id: {keys.akia}\n" + "filler\n" * 12 + f"value: {keys.secret}\n"
    assert_findings(scan(content), [{"kind": "key-id", "key_id": keys.akia, "secret": None}])


@pytest.mark.parametrize("order", ["SIO", "SOI", "ISO", "IOS", "OSI", "OIS"])
def test_a_labelled_secret_wins_over_another_token_near_the_id(scan: Scanner, keys: Keys,
                                                               order: str) -> None:
    # 40 letters and digits labelled for another service, as near the ID as the secret
    other = keys.secret2.replace("/", "a").replace("+", "b")
    lines = {"S": f"AWS_SECRET_ACCESS_KEY={keys.secret}", "I": f"AWS_ACCESS_KEY_ID={keys.akia}",
             "O": f"CLOUDFLARE_API_TOKEN={other}"}
    content = "".join(lines[c] + "\n" for c in order)
    assert_findings(scan(content), [{"kind": "pair", "severity": "critical",
                                     "key_id": keys.akia, "secret": keys.secret}])


def test_two_credentials_in_one_file_pair_with_their_own_secrets(scan: Scanner,
                                                                  keys: Keys) -> None:
    content = (f"[dev]\naws_access_key_id = {keys.akia}\naws_secret_access_key = {keys.secret}\n"
               + "\n" * 10 +
               f"[prod]\naws_access_key_id = {keys.abia}\naws_secret_access_key = {keys.secret2}\n")
    assert_findings(scan(content), [
        {"kind": "pair", "key_id": keys.akia, "secret": keys.secret},
        {"kind": "pair", "key_id": keys.abia, "secret": keys.secret2},
    ])


def test_temporary_credentials_carry_their_session_token(scan: Scanner, keys: Keys) -> None:
    content = (f"[session]\naws_access_key_id = {keys.asia}\n"
               f"aws_secret_access_key = {keys.secret}\naws_session_token = {keys.token}\n")
    assert_findings(scan(content), [{"kind": "pair", "severity": "critical",
                                     "key_id": keys.asia, "secret": keys.secret,
                                     "token": keys.token}])


def test_sts_json_output_carries_the_session_token(scan: Scanner, keys: Keys) -> None:
    content = json.dumps({"Credentials": {
        "AccessKeyId": keys.asia, "SecretAccessKey": keys.secret,
        "SessionToken": keys.token, "Expiration": "2030-01-01T00:00:00Z"}}, indent=4)
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.asia,
                                     "secret": keys.secret, "token": keys.token}])


def test_sts_output_logged_as_a_json_string_carries_the_session_token(scan: Scanner,
                                                                      keys: Keys) -> None:
    sts = json.dumps({"Credentials": {"AccessKeyId": keys.asia, "SecretAccessKey": keys.secret,
                                      "SessionToken": keys.token}})
    content = json.dumps({"level": "debug", "msg": sts}) + "\n"
    assert '\\"SessionToken\\": \\"' in content
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.asia,
                                     "secret": keys.secret, "token": keys.token}])


# -- documentation examples and placeholders -----------------------------------------------


EXAMPLES = {
    "aws-docs-pair": f"aws_access_key_id = {DOC_KEY_ID}\naws_secret_access_key = {DOC_SECRET}\n",
    "xmpl-id": "key = AKIA" + "XMPL" + "Q7RT2ZLMNW5H\n",
    "all-one-char-id": "key = AKIA" + "Q" * 16 + "\n",
    "filler-id": "aws_access_key_id = AKIA" + "X" * 16 + "\n",
    "all-one-char-secret": "aws_secret_access_key = " + "a" * 40 + "\n",
    "xxxx-secret": "aws_secret_access_key = " + "X" * 40 + "\n",
    "angle-placeholder": "aws_secret_access_key = <your secret access key>\n",
    "env-placeholder": "AWS_SECRET_ACCESS_KEY: ${AWS_SECRET}\n",
    # the AWS CLI's `sts get-session-token` example: its secret has 41 characters, so only
    # the ID and the token are found, and both say EXAMPLE
    "sts-docs-session": '"AccessKeyId": "ASIAIOSFODNN7EXAMPLE",\n'
                        '"SessionToken": "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+Fvwq'
                        'nKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4'
                        'IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+c"\n',
    # no real key ID has F (or A-H, K-P) for its 5th character
    "impossible-5th-char-id": "aws_access_key_id = AKIA" + "FAKE" + "Q7RT2ZLMNW5H\n",
    "s3-sigv2-docs-secret": "secret_key = '" + "OtxrzxIsfpFjA7Sw" + "PzILwy8Bw21TLhquhboDYROV'\n",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_documentation_examples_are_listed_as_examples(scan: Scanner, name: str) -> None:
    found = scan(EXAMPLES[name])
    assert found, "an example must be listed (as an example), not dropped"
    assert {f["status"] for f in found} == {"example"}


def test_the_aws_documentation_pair_is_one_example_finding(scan: Scanner) -> None:
    assert_findings(scan(EXAMPLES["aws-docs-pair"]),
                    [{"kind": "pair", "status": "example", "key_id": DOC_KEY_ID,
                      "secret": DOC_SECRET}])


def test_examples_never_fail_the_build_but_show_in_verbose_and_json(
        cli: Callable[..., CliResult], tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("".join(EXAMPLES.values()))
    quiet = cli("scan", tmp_path)
    assert quiet.code == 0
    assert "EXAMPLE" not in quiet.out
    assert "example" in quiet.err  # the summary counts them
    verbose = cli("scan", tmp_path, "--verbose")
    assert verbose.code == 0
    assert verbose.out.count("EXAMPLE ") >= len(EXAMPLES) - 1  # the pair is one finding
    assert DOC_KEY_ID in verbose.out
    as_json = cli("scan", tmp_path, "--format", "json")
    assert as_json.code == 0
    statuses = {f["status"] for f in as_json.json["findings"]}
    assert statuses == {"example"}
    assert as_json.json["summary"]["leaks"] == 0
    assert as_json.json["summary"]["examples"] == len(as_json.json["findings"])


@pytest.mark.parametrize("filler", ["xxxx", "XXXX", "xXxX"])
def test_a_real_secret_holding_xxxx_is_a_leak(scan: Scanner, keys: Keys, filler: str) -> None:
    # its neighbours no x: six in a row are the filler that makes an example
    secret = keys.secret[:19] + "7" + filler + "7" + keys.secret[25:]
    assert_findings(scan(f"aws_secret_access_key = {secret}\n"),
                    [{"kind": "secret", "status": "leak", "secret": secret}])


@pytest.mark.parametrize("filler", ["XXXX", "XMPL"])
def test_a_real_key_id_holding_xxxx_or_xmpl_is_a_leak(scan: Scanner, keys: Keys,
                                                      filler: str) -> None:
    key = keys.akia[:14] + filler + keys.akia[18:]
    assert_findings(scan(f"aws_access_key_id = {key}\n"),
                    [{"kind": "key-id", "status": "leak", "key_id": key}])


def test_a_dna_sequence_stays_dropped(scan: Scanner) -> None:
    assert scan("primer = ACCA" + "GATTACAGATTACAGA" + "\n") == []


def test_a_real_key_next_to_an_example_still_fails(cli: Callable[..., CliResult],
                                                   tmp_path: Path, keys: Keys) -> None:
    (tmp_path / "notes.md").write_text(EXAMPLES["xmpl-id"] + "\n" * 10 + f"real: {keys.akia}\n")
    result = cli("scan", tmp_path, "--format", "json")
    assert result.code == 1
    assert sorted(f["status"] for f in result.json["findings"]) == ["example", "leak"]


# -- encodings people commit ---------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_kubernetes_secret_data_values_are_decoded(scan: Scanner, keys: Keys) -> None:
    content = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\ntype: Opaque\ndata:\n"
               f"  AWS_ACCESS_KEY_ID: {b64(keys.akia)}\n"
               f"  AWS_SECRET_ACCESS_KEY: {b64(keys.secret)}\n")
    line, column = where(content, b64(keys.akia))
    assert_findings(scan(content), [{"kind": "pair", "status": "leak", "key_id": keys.akia,
                                     "secret": keys.secret, "encoding": "base64",
                                     "line": line, "column": column}])


def test_a_base64_encoded_credentials_file_is_decoded(scan: Scanner, keys: Keys) -> None:
    credentials = (f"[default]\naws_access_key_id = {keys.akia}\n"
                   f"aws_secret_access_key = {keys.secret}\n")
    content = f"CREDENTIALS_B64={b64(credentials)}\n"
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia, "secret": keys.secret,
                                     "encoding": "base64", "line": 1, "column": 17}])


@pytest.mark.parametrize("shift", ["", "#", "##"])
def test_a_base64_credentials_file_is_found_at_any_alignment(scan: Scanner, keys: Keys,
                                                            shift: str) -> None:
    credentials = (f"{shift}\n[default]\naws_access_key_id = {keys.akia}\n"
                   f"aws_secret_access_key = {keys.secret}\n")
    found = scan(b64(credentials))
    assert_findings(found, [{"kind": "pair", "key_id": keys.akia, "secret": keys.secret}])


BASE64_FILES = {
    "dotenv": lambda k, s, shift: f"{shift}\nAWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n",
    "json": lambda k, s, shift: shift.replace("#", " ") + json.dumps(
        {"AccessKeyId": k, "SecretAccessKey": s}),
}


@pytest.mark.parametrize("shift", ["", "#", "##"])
@pytest.mark.parametrize("form", sorted(BASE64_FILES))
def test_a_base64_dotenv_or_json_file_is_found_at_any_alignment(scan: Scanner, keys: Keys,
                                                                form: str, shift: str) -> None:
    found = scan(b64(BASE64_FILES[form](keys.akia, keys.secret, shift)))
    assert_findings(found, [{"kind": "pair", "key_id": keys.akia, "secret": keys.secret,
                             "encoding": "base64", "line": 1, "column": 1}])


@pytest.mark.parametrize("width", [76, 64])  # GNU base64, openssl base64 / PEM
def test_wrapped_base64_is_decoded_across_line_breaks(scan: Scanner, keys: Keys,
                                                      width: int) -> None:
    raw_width = width // 4 * 3  # bytes each line holds
    head = "# ci credentials\n[default]\naws_access_key_id = "
    # padded so that the ID, and then the secret, straddle a line break of the encoding
    pad = (raw_width - 10 - len(head)) % raw_width
    credentials = (head.replace("\n", "#" * pad + "\n", 1) + f"{keys.akia}\n"
                   f"aws_secret_access_key = {keys.secret}\n")
    for value in (keys.akia, keys.secret):
        at = credentials.index(value)
        assert at // raw_width != (at + len(value) - 1) // raw_width, "not split: fix the test"
    encoded = b64(credentials)
    content = "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width)) + "\n"
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia, "secret": keys.secret,
                                     "encoding": "base64", "line": 1, "column": 1}])


def test_kubernetes_secret_values_made_with_echo_and_a_newline(scan: Scanner,
                                                               keys: Keys) -> None:
    # `echo "$VALUE" | base64`: the value and its newline, 55 characters + '=' for a secret
    content = ("apiVersion: v1\nkind: Secret\ntype: Opaque\ndata:\n"
               f"  AWS_ACCESS_KEY_ID: {b64(keys.akia + chr(10))}\n"
               f"  AWS_SECRET_ACCESS_KEY: {b64(keys.secret + chr(10))}\n")
    assert_findings(scan(content), [{"kind": "pair", "status": "leak", "key_id": keys.akia,
                                     "secret": keys.secret, "encoding": "base64"}])
    alone = content.split("  AWS_ACCESS_KEY_ID")[0] + content.split("\n")[-2] + "\n"
    line, column = where(alone, b64(keys.secret + "\n"))
    assert_findings(scan(alone), [{"kind": "secret", "status": "leak", "secret": keys.secret,
                                   "encoding": "base64", "line": line, "column": column}])


def test_a_percent_encoded_s3_url_is_decoded(scan: Scanner, keys: Keys) -> None:
    url = f"s3://{keys.akia}:{quote(keys.slashy, safe='')}@my-bucket/backups/"
    assert "%2F" in url and "%2B" in url
    content = f"backup_target = {url}\n"
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.slashy, "line": line, "column": column}])


def test_the_console_accesskeys_csv_download(scan: Scanner, keys: Keys) -> None:
    content = f"Access key ID,Secret access key\r\n{keys.akia},{keys.secret}\r\n"
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.secret, "line": 2, "column": 1}])


def test_the_console_credentials_csv_with_more_columns(scan: Scanner, keys: Keys) -> None:
    content = ("User name,Password,Access key ID,Secret access key,Console login link\n"
               f"deploy,,{keys.akia},{keys.secret},https://123456789012.signin.aws.amazon.com\n")
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.secret}])


def test_aws_iam_create_access_key_output(scan: Scanner, keys: Keys) -> None:
    content = json.dumps({"AccessKey": {
        "UserName": "deploy", "AccessKeyId": keys.akia, "Status": "Active",
        "SecretAccessKey": keys.secret, "CreateDate": "2024-05-01T12:00:00+00:00"}}, indent=4)
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "pair", "severity": "critical",
                                     "key_id": keys.akia, "secret": keys.secret,
                                     "line": line, "column": column}])


# JSON encoders that escape a secret's own characters: PHP's json_encode (and some JS) write
# every '/' as '\/', .NET's System.Text.Json writes '+' as '\u002B'
JSON_ENCODERS = {
    "php": lambda value: json.dumps(value).replace("/", "\\/"),
    "dotnet": lambda value: json.dumps(value).replace("+", "\\u002B"),
}


@pytest.mark.parametrize("encoder", sorted(JSON_ENCODERS))
def test_a_secret_with_escaped_characters_in_json_pairs_with_its_id(scan: Scanner, keys: Keys,
                                                                    encoder: str) -> None:
    content = JSON_ENCODERS[encoder]({"AccessKeyId": keys.akia, "SecretAccessKey": keys.slashy})
    assert keys.slashy not in content  # escaped
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "pair", "severity": "critical", "status": "leak",
                                     "key_id": keys.akia, "secret": keys.slashy,
                                     "encoding": "plain", "line": line, "column": column}])


@pytest.mark.parametrize("encoder", sorted(JSON_ENCODERS))
def test_a_secret_with_escaped_characters_in_json_is_found_alone(scan: Scanner, keys: Keys,
                                                                 encoder: str) -> None:
    content = JSON_ENCODERS[encoder]({"SecretAccessKey": keys.slashy})
    label = '"SecretAccessKey": "'
    line, column = where(content, label)
    column += len(label)  # where the value starts
    assert_findings(scan(content), [{"kind": "secret", "status": "leak", "key_id": None,
                                     "secret": keys.slashy, "line": line, "column": column}])


def test_an_escaped_secret_has_the_fingerprint_of_the_real_value(
        cli: Callable[..., CliResult], tmp_path: Path, keys: Keys) -> None:
    target = tmp_path / "creds.json"
    fingerprints = []
    for encode in (json.dumps, JSON_ENCODERS["php"]):
        target.write_text(encode({"SecretAccessKey": keys.slashy}))
        (finding,) = cli("scan", tmp_path, "--format", "json").json["findings"]
        fingerprints.append(finding["fingerprint"])
    assert fingerprints[0] == fingerprints[1]


def test_an_unlabelled_escaped_secret_next_to_its_id_is_paired(scan: Scanner,
                                                              keys: Keys) -> None:
    content = JSON_ENCODERS["php"]([keys.akia, keys.slashy])
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.slashy}])


def test_an_escaped_session_token_is_carried_whole(scan: Scanner, keys: Keys) -> None:
    # 150 characters before its first '/': enough for a token of its own if cut there
    token = keys.token[:150].replace("/", "A") + "/" + keys.token[151:]
    content = JSON_ENCODERS["php"]({"AccessKeyId": keys.asia, "SecretAccessKey": keys.slashy,
                                    "SessionToken": token})
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.asia,
                                     "secret": keys.slashy, "token": token}])


# -- boundaries ----------------------------------------------------------------------------


def test_a_21_character_id_like_token_is_not_a_key(scan: Scanner, keys: Keys) -> None:
    assert scan(f"token = {keys.akia}Q\n") == []


@pytest.mark.parametrize("template", ["X{k}", "{k}x", "abc{k}def", "9{k}", "{k}7"])
def test_an_id_inside_a_longer_token_is_not_a_key(scan: Scanner, keys: Keys,
                                                  template: str) -> None:
    assert scan(f"value = {template.format(k=keys.akia)}\n") == []


def test_a_41_character_base64_run_is_not_a_secret(scan: Scanner, keys: Keys) -> None:
    assert scan(f"aws_secret_access_key = {keys.secret}Z\n") == []


def test_a_41_character_run_near_an_id_is_not_paired(scan: Scanner, keys: Keys) -> None:
    content = f"{keys.akia}\n{keys.secret}q\n"
    assert_findings(scan(content), [{"kind": "key-id", "secret": None}])


@pytest.mark.parametrize("text", [
    "SLOVAKIA", "Slovakia and SLOVAKIANS", "CZECHOSLOVAKIA2024ABCDEFGHIJKL",
    "ASIAN MARKETS", "WALKIATALKIA",
])
def test_words_holding_a_prefix_are_not_keys(scan: Scanner, text: str) -> None:
    assert scan(f"{text}\n") == []


def test_characters_outside_base32_do_not_make_a_key(scan: Scanner) -> None:
    assert scan("AKIA0189" + "QRSTUV" * 2 + "QR\n") == []


# -- the contexts keys are found in --------------------------------------------------------


def test_inside_a_json_string(scan: Scanner, keys: Keys) -> None:
    content = json.dumps({"config": {"aws": {"id": keys.akia, "key": keys.secret}}})
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia, "line": line,
                                     "column": column}])


def test_in_a_presigned_url_query_string(scan: Scanner, keys: Keys) -> None:
    content = ("curl 'https://bucket.s3.amazonaws.com/report.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
               f"&X-Amz-Credential={keys.akia}%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
               "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600'\n")
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "key-id", "key_id": keys.akia, "line": line,
                                     "column": column}])


def test_in_a_url_with_credentials(scan: Scanner, keys: Keys) -> None:
    content = f"endpoint: https://{keys.akia}@sqs.eu-west-1.amazonaws.com/1/q\n"
    assert_findings(scan(content), [{"kind": "key-id", "key_id": keys.akia}])


def test_in_a_minified_single_line(scan: Scanner, keys: Keys) -> None:
    content = ("!function(e){var t={};" * 400 + f'var c={{accessKeyId:"{keys.akia}",'
               f'secretAccessKey:"{keys.secret}"}};' + "e.exports=t}();" * 400)
    line, column = where(content, keys.akia)
    assert line == 1 and column > 8000
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.secret, "line": 1, "column": column}])


@pytest.mark.parametrize("quote_char", ["'", '"', "`"])
def test_quoted_values(scan: Scanner, keys: Keys, quote_char: str) -> None:
    q = quote_char
    content = f"const id = {q}{keys.akia}{q};\nconst secretKey = {q}{keys.secret}{q};\n"
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.secret, "line": 1, "column": 13}])


def test_a_real_key_id_paired_with_the_example_secret_still_fails(scan: Scanner,
                                                                  keys: Keys) -> None:
    content = f"aws_access_key_id = {keys.akia}\naws_secret_access_key = {DOC_SECRET}\n"
    assert_findings(scan(content), [{"kind": "pair", "status": "leak", "key_id": keys.akia}])


def test_a_real_secret_paired_with_the_example_id_still_fails(scan: Scanner,
                                                              keys: Keys) -> None:
    content = f"aws_access_key_id = {DOC_KEY_ID}\naws_secret_access_key = {keys.secret}\n"
    assert_findings(scan(content), [{"kind": "pair", "status": "leak",
                                     "secret": keys.secret}])


def test_a_lowercase_path_near_an_id_is_not_taken_for_its_secret(scan: Scanner,
                                                                keys: Keys) -> None:
    content = f"id = {keys.akia}\nhome = /home/xxxx/projects/infra/terraform/main\n"
    assert_findings(scan(content), [{"kind": "key-id", "status": "leak", "secret": None}])


def test_a_key_after_an_escaped_newline_in_a_json_string(scan: Scanner, keys: Keys) -> None:
    csv = f"Access key ID,Secret access key\n{keys.akia},{keys.secret}\n"
    content = json.dumps({"attachment": csv})
    assert "\\n" + keys.akia in content
    assert_findings(scan(content), [{"kind": "pair", "key_id": keys.akia,
                                     "secret": keys.secret}])


def test_a_key_in_a_percent_encoded_url_inside_a_url(scan: Scanner, keys: Keys) -> None:
    inner = (f"https://b.s3.amazonaws.com/o?X-Amz-Credential={keys.akia}%2F20240101"
             "%2Fus-east-1%2Fs3%2Faws4_request")
    content = f"https://example.com/login?next={quote(inner, safe='')}\n"
    assert "%3D" + keys.akia in content
    assert_findings(scan(content), [{"kind": "key-id", "key_id": keys.akia}])


def test_an_escaped_letter_before_a_key_still_makes_a_longer_token(scan: Scanner,
                                                                  keys: Keys) -> None:
    assert scan(f"value = %41{keys.akia}\n") == []  # %41 is 'A': "AAKIA..."


# .NET's System.Text.Json writes '"' as \u0022 (a JSON document serialized into a string),
# C and shell sources write it as \x22: the escape's last character is no part of the key
@pytest.mark.parametrize("escape", ["\\u0022", "\\u0027", "\\x22", "\\x27", "\\u003D"])
def test_a_key_after_an_escaped_quote(scan: Scanner, keys: Keys, escape: str) -> None:
    content = f'"{{{escape}id{escape}:{escape}{keys.akia}{escape}}}"\n'
    line, column = where(content, keys.akia)
    assert_findings(scan(content), [{"kind": "key-id", "status": "leak", "key_id": keys.akia,
                                     "line": line, "column": column}])


@pytest.mark.parametrize("escape", ["\\u0041", "\\x41", "\\u0039"])
def test_an_escaped_letter_or_digit_before_a_key_still_makes_a_longer_token(
        scan: Scanner, keys: Keys, escape: str) -> None:
    assert scan(f'"{escape}{keys.akia}"\n') == []  # "AAKIA...", "9AKIA..."
