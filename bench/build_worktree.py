#!/usr/bin/env python3
"""Build a large, REAL working tree for the working-tree and pre-commit benchmarks (issue 2).

How the tree is built (no internet; only the package registries are reachable):

1. Source distributions of big, real packages are fetched from PyPI with pip
   (`python -m pip download --no-deps --no-binary :all: NAME==VERSION`) and cached in
   bench/work/sdists/. The pinned list is SDISTS below: three botocore releases (the
   service-model JSON that dominates the AWS world), awscli (thousands of small .rst/.py
   files), Django (code, templates, .po/.mo locale files), sympy (large Python modules).
   Each is extracted to <tree>/vendor/<name>-<version>/.
2. The Python standard library sources of the interpreter running this script
   (sysconfig's "stdlib", minus site-packages, __pycache__ and *.pyc: .py files, test data,
   lib-dynload .so binaries) are copied to <tree>/cpython-Lib/.
3. A handful of FAKE AWS credentials are generated at run time (seeded: random `AKIA` +
   16 base32 characters, random 40-character secrets over [A-Za-z0-9/+]) and planted in
   five files in different places and formats (ini, .env, JSON, Python, YAML). They are
   written to <work>/planted.json so the benchmark can check that each tool finds them.
4. Everything is committed into a fresh git repository at <tree> (`git add -f -A`, so the
   tracked set equals the files on disk even where an sdist ships its own .gitignore).

The result (default bench/work/tree, gitignored) is 26,152 files and 481 MB (.git: 225 MB). Generated
data is never committed to the project. Re-running reuses the downloaded sdists and
rebuilds the tree from scratch.

    .venv/bin/python bench/build_worktree.py [--work bench/work] [--seed 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import string
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

SDISTS = [
    ("botocore", "1.35.0"),
    ("botocore", "1.31.0"),
    ("botocore", "1.29.0"),
    ("awscli", "1.34.0"),
    ("Django", "5.1"),
    ("sympy", "1.13.0"),
]

BASE32 = string.ascii_uppercase + "234567"
SECRET_ALPHABET = string.ascii_letters + string.digits + "/+"

# Where the fake keys go: (path inside the tree, template). {id} and {secret} are filled in.
PLANTS = [
    ("deploy/prod.ini",
     "[default]\nregion = eu-west-1\naws_access_key_id = {id}\n"
     "aws_secret_access_key = {secret}\n"),
    ("vendor/Django-5.1/tests/settings_aws.env",
     "DEBUG=0\nAWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
    ("vendor/awscli-1.34.0/awscli/examples/iam/leaked-create-access-key.json",
     '{{\n    "AccessKey": {{\n        "UserName": "ci-bot",\n        "AccessKeyId": "{id}",\n'
     '        "Status": "Active",\n        "SecretAccessKey": "{secret}",\n'
     '        "CreateDate": "2024-03-09T18:39:23Z"\n    }}\n}}\n'),
    ("cpython-Lib/test/support/leaked_settings.py",
     '"""Settings a contributor forgot to remove."""\n\nAWS_ACCESS_KEY_ID = "{id}"\n'
     'AWS_SECRET_ACCESS_KEY = "{secret}"\n'),
    ("vendor/sympy-1.13.0/.github/workflows/deploy.yml",
     "name: deploy\non: push\nenv:\n  AWS_ACCESS_KEY_ID: {id}\n"
     "  AWS_SECRET_ACCESS_KEY: {secret}\n"),
]


def log(msg: str) -> None:
    print(f"[build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fetch(cache: Path, name: str, version: str) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{version}".lower().replace("_", "-")
    for f in cache.iterdir():
        if f.name.lower().replace("_", "-").startswith(stem + ".tar"):
            return f
    log(f"pip download {name}=={version}")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--no-binary", ":all:", "-d", str(cache), f"{name}=={version}"], check=True)
    return fetch(cache, name, version)


def extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        top = os.path.commonpath([m.name for m in members])
        tmp = dest.parent / (dest.name + ".tmp")
        tar.extractall(tmp, members=members, filter="data")
    (tmp / top).rename(dest)
    shutil.rmtree(tmp)


def copy_stdlib(dest: Path) -> None:
    src = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(src, dest, symlinks=False,
                    ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc"))


def fake_keys(rng: random.Random, n: int) -> list[dict[str, str]]:
    out = []
    for _ in range(n):
        key_id = "AKIA" + "".join(rng.choice(BASE32) for _ in range(16))
        # a real-looking secret: never all one class, never an EXAMPLE marker
        secret = "".join(rng.choice(SECRET_ALPHABET) for _ in range(40))
        out.append({"id": key_id, "secret": secret})
    return out


def git(tree: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
               GIT_AUTHOR_DATE="2024-01-01T00:00:00Z", GIT_COMMITTER_DATE="2024-01-01T00:00:00Z")
    subprocess.run(["git", "-C", str(tree), *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    work = args.work.resolve()
    tree = work / "tree"
    started = time.time()

    archives = [(n, v, fetch(work / "sdists", n, v)) for n, v in SDISTS]
    if tree.exists():
        log(f"removing old {tree}")
        shutil.rmtree(tree)
    (tree / "vendor").mkdir(parents=True)
    for name, version, archive in archives:
        log(f"extract {archive.name}")
        extract(archive, tree / "vendor" / f"{name}-{version}")
    log("copy the standard library sources")
    copy_stdlib(tree / "cpython-Lib")
    # nested repositories would be skipped by git: there should be none, make sure
    for nested in tree.rglob(".git"):
        shutil.rmtree(nested) if nested.is_dir() else nested.unlink()

    rng = random.Random(args.seed)
    keys = fake_keys(rng, len(PLANTS))
    planted = []
    for (rel, template), key in zip(PLANTS, keys, strict=True):
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**key))
        planted.append({"path": rel, **key})
    (work / "planted.json").write_text(json.dumps(planted, indent=2) + "\n")

    log("git init + add + commit")
    git(tree, "init", "-q", "-b", "main")
    git(tree, "config", "core.autocrlf", "false")
    git(tree, "add", "-f", "-A")
    git(tree, "commit", "-q", "-m", "big real tree for keyscan benchmarks")

    files = subprocess.run(["git", "-C", str(tree), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.count(b"\0")
    size = sum(p.stat().st_size for p in tree.rglob("*")
               if p.is_file() and ".git" not in p.relative_to(tree).parts)
    summary = {"tree": str(tree), "files": files, "bytes": size, "planted": len(planted),
               "sdists": [f"{n}=={v}" for n, v, _ in archives], "seed": args.seed,
               "stdlib": sysconfig.get_paths()["stdlib"], "python": sys.version.split()[0]}
    (work / "tree.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"done in {time.time() - started:.0f} s: {files} files, {size / 1e6:.0f} MB, "
        f"{len(planted)} planted keys -> {tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
