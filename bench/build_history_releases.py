#!/usr/bin/env python3
"""Build the "large files edited often" benchmark repository from botocore releases.

What it builds
--------------
A git repository whose history replays 51 successive source releases of botocore
(every 5th release from 1.29.0 to 1.31.82, the sdists from PyPI: ~4,200 files and
~100 MB per release, with service models of up to 3 MB). Each release's changes
relative to the previous one are split into ~200 commits: every modified file's diff
hunks are applied in several steps, so a big JSON model gets many intermediate
versions (a large file edited often), added and deleted files go in batches. Authors,
dates and commit messages are synthetic and seeded. Every release ends in an
annotated tag ``v<version>``; a few maintenance branches point at older releases.

Result (seed 1, default options, measured 2026-11-25): 10,501 commits, 22,342 blobs,
5.88 GB of blob bytes (``git cat-file --batch-all-objects --batch-check='%(objectsize)'``
summed), an 84 MB pack; ~8 minutes on 2 cores (2.5 of them the final repack) once the
51 archives (~530 MB) are cached. The summary is printed at the end and written to
``<out>/build-summary.json``.

Planted fake AWS keys
---------------------
A handful of fake AWS key pairs (``AKIA`` + 16 chars of A-Z2-7, a 40-char secret of
[A-Za-z0-9/+]) are generated at run time from the seed (nothing key-like is stored in
this script) and planted at known commits: added then deleted, added and still in
HEAD, renamed, inside a 3 MB JSON model that the next release edit drops, only on a
side branch, only in a commit message, only in an annotated tag message. They are
listed with their commits in ``<out>/planted-keys.json``.

Determinism
-----------
Same seed + same release archives => same commit ids (fixed dates, fixed
authors; the archives are cached under bench/work/cache/botocore/ and re-used).

Usage
-----
    .venv/bin/python bench/build_history_releases.py            # -> bench/work/releases
    .venv/bin/python bench/build_history_releases.py --out DIR --commits 10500 --seed 1

Downloads (first run only) use the ordinary client:
``pip download --no-deps --no-binary :all: botocore==X`` (falls back to the wheel).
Generated repositories live under bench/work/ (gitignored): never commit them.
The import goes through ``git fast-import``; blobs of the same path are written
consecutively so fast-import stores the intermediate versions as deltas; at the end the
repository is repacked like a clone/gc would leave it
(``git repack -a -d -f --window=10 --depth=50``; skip with --no-repack).
"""
from __future__ import annotations

import argparse
import difflib
import json
import random
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "work" / "releases"
DEFAULT_CACHE = HERE / "work" / "cache" / "botocore"

VERSIONS = ["1.29.0", "1.29.5", "1.29.10", "1.29.15", "1.29.20", "1.29.25", "1.29.30", "1.29.35", "1.29.40", "1.29.45", "1.29.50", "1.29.55", "1.29.60", "1.29.65", "1.29.70", "1.29.75", "1.29.80", "1.29.85", "1.29.90", "1.29.95", "1.29.100", "1.29.105", "1.29.110", "1.29.115", "1.29.120", "1.29.125", "1.29.130", "1.29.135", "1.29.140", "1.29.145", "1.29.150", "1.29.155", "1.29.160", "1.29.165", "1.31.2", "1.31.7", "1.31.12", "1.31.17", "1.31.22", "1.31.27", "1.31.32", "1.31.37", "1.31.42", "1.31.47", "1.31.52", "1.31.57", "1.31.62", "1.31.67", "1.31.72", "1.31.77", "1.31.82"]

FIRST = ["Alice", "Bart", "Chen", "Dana", "Eitan", "Fatima", "Goran", "Hana", "Ivan",
         "Jun", "Kemal", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa",
         "Sven", "Tomoko", "Umar", "Vera", "Wen", "Ximena", "Yusuf", "Zofia"]
LAST = ["Andersen", "Baptiste", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
        "Horvat", "Ito", "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura",
        "Okafor", "Petrov", "Quispe", "Rossi", "Silva", "Tanaka", "Umarov", "Varga"]

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+"


def fake_key(rng: random.Random) -> tuple[str, str]:
    kid = "AKIA" + "".join(rng.choice(B32) for _ in range(16))
    secret = "".join(rng.choice(B64) for _ in range(40))
    return kid, secret


def make_authors(rng: random.Random, n: int = 40) -> list[tuple[str, str]]:
    out = []
    seen = set()
    while len(out) < n:
        f, l = rng.choice(FIRST), rng.choice(LAST)
        if (f, l) in seen:
            continue
        seen.add((f, l))
        out.append((f"{f} {l}", f"{f.lower()}.{l.lower()}@example.com"))
    return out


# ----------------------------------------------------------------------------- download
def ensure_archives(cache: Path, versions: list[str], python: str) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for v in versions:
        cands = [cache / f"botocore-{v}.tar.gz"] + sorted(cache.glob(f"botocore-{v}-*.whl"))
        hit = next((c for c in cands if c.exists()), None)
        if hit is None:
            print(f"[download] botocore=={v}", file=sys.stderr, flush=True)
            r = subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps",
                                "--no-binary", ":all:", f"botocore=={v}", "-d", str(cache)])
            if r.returncode != 0:
                subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps",
                                "--only-binary", ":all:", f"botocore=={v}", "-d", str(cache)],
                               check=True)
            cands = [cache / f"botocore-{v}.tar.gz"] + sorted(cache.glob(f"botocore-{v}-*.whl"))
            hit = next(c for c in cands if c.exists())
        found[v] = hit
    return found


def load_release(path: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                if not info.is_dir():
                    files[info.filename] = z.read(info)
        return files
    with tarfile.open(path) as t:
        for m in t:
            if m.isfile():
                rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                f = t.extractfile(m)
                assert f is not None
                files[rel] = f.read()
    return files


# ----------------------------------------------------------------------------- fast-import
def qpath(p: str) -> str:
    if any(c in p for c in ' "\n\\') or p.startswith('"'):
        return '"' + p.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return p


class FastImport:
    def __init__(self, repo: Path):
        self.proc = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--depth=50",
             f"--export-marks={repo / '.git' / 'bench-marks'}"],
            cwd=repo, stdin=subprocess.PIPE)
        self.w = self.proc.stdin
        self.mark = 0
        self.blob_bytes = 0

    def next_mark(self) -> int:
        self.mark += 1
        return self.mark

    def data(self, b: bytes) -> None:
        self.w.write(b"data %d\n" % len(b))
        self.w.write(b)
        self.w.write(b"\n")

    def blob(self, content: bytes) -> int:
        m = self.next_mark()
        self.w.write(b"blob\nmark :%d\n" % m)
        self.data(content)
        self.blob_bytes += len(content)
        return m

    def commit(self, ref: str, author: tuple[str, str], when: int, msg: str,
               parent: int | None, ops: list[str], committer=None, cwhen=None) -> int:
        m = self.next_mark()
        c = committer or author
        hdr = (f"commit {ref}\nmark :{m}\n"
               f"author {author[0]} <{author[1]}> {when} +0000\n"
               f"committer {c[0]} <{c[1]}> {cwhen or when} +0000\n")
        self.w.write(hdr.encode())
        self.data(msg.encode())
        if parent is not None:
            self.w.write(b"from :%d\n" % parent)
        for op in ops:
            self.w.write(op.encode() + b"\n")
        self.w.write(b"\n")
        return m

    def tag(self, name: str, target: int, tagger: tuple[str, str], when: int, msg: str):
        self.w.write(f"tag {name}\nfrom :{target}\ntagger {tagger[0]} <{tagger[1]}> {when} +0000\n".encode())
        self.data(msg.encode())

    def reset(self, ref: str, target: int):
        self.w.write(f"reset {ref}\nfrom :{target}\n\n".encode())

    def close(self):
        self.w.close()
        if self.proc.wait() != 0:
            raise SystemExit("git fast-import failed")


# ----------------------------------------------------------------------------- edit planning
def split_lines(b: bytes) -> list[bytes]:
    return b.splitlines(keepends=True)


def hunks_of(a: bytes, b: bytes):
    x, y = split_lines(a), split_lines(b)
    ops = difflib.SequenceMatcher(None, x, y).get_opcodes()
    return x, y, ops


def build_version(x, y, ops, hunk_index, applied: int) -> bytes:
    """Content with the first `applied` changed hunks taken from y, the rest from x."""
    parts: list[bytes] = []
    for (tag, i1, i2, j1, j2), hi in zip(ops, hunk_index):
        if tag == "equal":
            parts.extend(x[i1:i2])
        elif hi < applied:
            parts.extend(y[j1:j2])
        else:
            parts.extend(x[i1:i2])
    return b"".join(parts)


def allocate_groups(hunks: dict[str, int], target: int) -> dict[str, int]:
    total = sum(hunks.values()) or 1
    g = {p: min(h, max(1, round(target * h / total))) for p, h in hunks.items()}
    # fill up to the target with files that still have hunks to spare (largest first)
    spare = sorted((p for p in hunks if g[p] < hunks[p]), key=lambda p: -hunks[p])
    i = 0
    while sum(g.values()) < target and spare:
        p = spare[i % len(spare)]
        if g[p] < hunks[p]:
            g[p] += 1
            i += 1
        else:
            spare.remove(p)
    return g


def service_of(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 3 and parts[0] == "botocore" and parts[1] == "data":
        return parts[2]
    return parts[-1].rsplit(".", 1)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--commits", type=int, default=10500, help="target commit count")
    ap.add_argument("--units-per-commit", type=float, default=2.0,
                    help="average edit units (hunk groups / file batches) per commit")
    ap.add_argument("--versions", type=int, default=len(VERSIONS),
                    help="use only the first N releases of the fixed list")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-repack", action="store_true",
                    help="keep fast-import's pack (slower to read than a normal pack)")
    ap.add_argument("--python", default=sys.executable, help="interpreter whose pip downloads")
    args = ap.parse_args()

    t0 = time.time()
    versions = VERSIONS[: args.versions]
    archives = ensure_archives(args.cache, versions, args.python)
    print(f"[releases] {len(versions)} archives ready in {time.time() - t0:.0f}s", file=sys.stderr)

    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(out)], check=True)
    subprocess.run(["git", "-C", str(out), "config", "gc.auto", "0"], check=True)

    rng = random.Random(args.seed)
    key_rng = random.Random(f"keys-{args.seed}")
    authors = make_authors(rng)
    bot = ("botocore release bot", "release-bot@example.com")
    when = 1667260800  # 2022-11-01T00:00:00Z

    fi = FastImport(out)
    parent: int | None = None
    commit_no = 0
    commit_marks: list[int] = []
    planted: list[dict] = []

    n_rel = len(versions)
    # planting schedule: commit index -> action (decided up front from the target count)
    T = args.commits
    plan = {
        int(T * 0.08): "add_deleted_later",
        int(T * 0.25): "add_kept",
        int(T * 0.40): "commit_message",
        int(T * 0.55): "add_renamed",
        int(T * 0.70): "side_branch",
        int(T * 0.85): "in_big_json",
    }
    pending_delete: dict[int, dict] = {}
    pending_rename: dict[int, dict] = {}
    big_json_plant: dict | None = None
    BIG = "botocore/data/ec2/2016-11-15/service-2.json"
    tag_key_release = n_rel // 2

    def plant_file_text(kid: str, secret: str, style: int) -> bytes:
        if style == 0:
            return (f'"""Example: upload a file with explicit credentials (do not commit!)."""\n'
                    f"import boto3\n\n"
                    f"session = boto3.Session(\n"
                    f'    aws_access_key_id="{kid}",\n'
                    f'    aws_secret_access_key="{secret}",\n'
                    f'    region_name="us-west-2",\n)\n'
                    f's3 = session.client("s3")\n').encode()
        if style == 1:
            return (f"# CI credentials for the integration suite\n"
                    f"AWS_ACCESS_KEY_ID={kid}\n"
                    f"AWS_SECRET_ACCESS_KEY={secret}\n"
                    f"AWS_DEFAULT_REGION=eu-west-1\n").encode()
        return (f"#!/bin/sh\nset -e\n"
                f"aws configure set aws_access_key_id {kid}\n"
                f"aws configure set aws_secret_access_key {secret}\n"
                f"aws sts get-caller-identity\n").encode()

    prev: dict[str, bytes] = {}
    current_big = b""
    total_units = 0
    for ri, v in enumerate(versions):
        tr = time.time()
        cur = load_release(archives[v])
        # ---- plan the edit units of this release
        added = sorted(p for p in cur if p not in prev)
        deleted = sorted(p for p in prev if p not in cur)
        modified = sorted(p for p in cur if p in prev and prev[p] != cur[p])
        remaining_rel = n_rel - ri
        c_target = max(1, round((T - commit_no) / remaining_rel))
        if ri == 0:
            c_target = max(1, min(c_target, 60))
        u_target = max(1, round(c_target * args.units_per_commit))
        diffs = {}
        for p in modified:
            try:
                diffs[p] = hunks_of(prev[p], cur[p])
            except Exception:
                diffs[p] = None
        hunks = {p: (sum(1 for o in d[2] if o[0] != "equal") if d else 1) for p, d in diffs.items()}
        n_batch_units = 0
        units: list[tuple] = []
        # added / deleted files: batches of up to 12 files of the same top folder
        for kind, paths in (("add", added), ("del", deleted)):
            batch: list[str] = []
            for p in paths:
                if batch and (len(batch) >= 12 or p.split("/")[:3] != batch[0].split("/")[:3]):
                    units.append((kind, tuple(batch)))
                    batch = []
                batch.append(p)
            if batch:
                units.append((kind, tuple(batch)))
        n_batch_units = len(units)
        groups = allocate_groups(hunks, max(len(hunks), u_target - n_batch_units))
        for p in modified:
            for gi in range(groups[p]):
                units.append(("mod", p, gi))
        rng.shuffle(units)
        # per file, the k-th unit in commit order applies group k (keeps versions monotone)
        seen_count: dict[str, int] = {}
        ordered = []
        for u in units:
            if u[0] == "mod":
                k = seen_count.get(u[1], 0)
                seen_count[u[1]] = k + 1
                ordered.append(("mod", u[1], k))
            else:
                ordered.append(u)
        # hunk -> group index (contiguous hunk ranges per group)
        hunk_group: dict[str, list[int]] = {}
        for p in modified:
            d = diffs[p]
            if d is None:
                continue
            h, g = hunks[p], groups[p]
            idx, hi = [], 0
            for o in d[2]:
                if o[0] == "equal":
                    idx.append(-1)
                else:
                    idx.append(hi * g // h)
                    hi += 1
            hunk_group[p] = idx
        # split into commits
        n_commits = min(c_target, len(ordered))
        cuts = sorted(rng.sample(range(1, len(ordered)), n_commits - 1)) if n_commits > 1 else []
        chunks = [ordered[a:b] for a, b in zip([0] + cuts, cuts + [len(ordered)])]
        total_units += len(ordered)

        # ---- materialise blob contents, grouped by path (consecutive => fast-import deltas)
        versions_of: dict[str, list[bytes]] = {}
        for p in modified:
            d = diffs[p]
            if d is None:
                versions_of[p] = [cur[p]]
                continue
            x, y, ops = d
            versions_of[p] = [build_version(x, y, ops, hunk_group[p], gi + 1)
                              for gi in range(groups[p])]
            versions_of[p][-1] = cur[p]
        marks: dict[tuple[str, int], int] = {}
        for p in modified:
            for gi, content in enumerate(versions_of[p]):
                marks[(p, gi)] = fi.blob(content)
        for u in ordered:
            if u[0] == "add":
                for p in u[1]:
                    marks[(p, 0)] = fi.blob(cur[p])

        # ---- commits
        for ci, chunk in enumerate(chunks):
            ops: list[str] = []
            touched: list[str] = []
            for u in chunk:
                if u[0] == "add":
                    ops += [f"M 100644 :{marks[(p, 0)]} {qpath(p)}" for p in u[1]]
                    touched += list(u[1])
                elif u[0] == "del":
                    ops += [f"D {qpath(p)}" for p in u[1]]
                    touched += list(u[1])
                else:
                    p, gi = u[1], u[2]
                    ops.append(f"M 100644 :{marks[(p, gi)]} {qpath(p)}")
                    touched.append(p)
            author = authors[rng.randrange(len(authors))]
            when += rng.randint(60, 60 * 90)
            svcs = sorted({service_of(p) for p in touched})
            kinds = {u[0] for u in chunk}
            verb = {"add": "Add", "del": "Remove", "mod": "Update"}[sorted(kinds)[0]]
            msg = f"{verb} {', '.join(svcs[:3])}{' and more' if len(svcs) > 3 else ''}"
            msg += f" for {v} ({ci + 1}/{len(chunks)})\n"
            if rng.random() < 0.3:
                msg += f"\napi-change:``{svcs[0]}``: model update towards botocore {v}.\n"
            last = ci == len(chunks) - 1
            post: list[tuple[dict, str]] = []  # (meta, key) to set to this commit's mark
            action = plan.get(commit_no)
            extra_meta = None
            if action in ("add_deleted_later", "add_kept", "add_renamed"):
                kid, secret = fake_key(key_rng)
                style = {"add_deleted_later": 0, "add_kept": 1, "add_renamed": 2}[action]
                path = {"add_deleted_later": "docs/source/examples/s3_upload_example.py",
                        "add_kept": "tests/integration/.env.ci",
                        "add_renamed": "scripts/aws_setup.sh"}[action]
                bm = fi.blob(plant_file_text(kid, secret, style))
                ops.append(f"M 100644 :{bm} {qpath(path)}")
                extra_meta = {"kind": action, "key_id": kid, "secret": secret, "path": path}
            elif action == "commit_message":
                kid, secret = fake_key(key_rng)
                msg += (f"\nTemporarily testing with the ops account:\n"
                        f"  aws_access_key_id = {kid}\n  aws_secret_access_key = {secret}\n")
                extra_meta = {"kind": action, "key_id": kid, "secret": secret, "path": None}
            elif action == "in_big_json":
                # insert into the current version of the 3 MB EC2 model; the next edit of
                # that file (rebuilt from release contents) silently drops it again
                kid, secret = fake_key(key_rng)
                content = current_big
                for u in chunk:
                    if u[0] == "mod" and u[1] == BIG:
                        content = versions_of[BIG][u[2]]
                lines = split_lines(content)
                ins = (f'  "x-example-credentials":"aws_access_key_id={kid} '
                       f'aws_secret_access_key={secret}",\n').encode()
                lines.insert(1, ins)
                bm = fi.blob(b"".join(lines))
                ops = [o for o in ops if not o.endswith(" " + BIG)]
                ops.append(f"M 100644 :{bm} {BIG}")
                touched.append(BIG)
                extra_meta = {"kind": action, "key_id": kid, "secret": secret, "path": BIG}
            # a pending big-json plant is dropped by the next commit that rewrites the file
            if big_json_plant is not None and big_json_plant.get("removed_mark") is None \
                    and action != "in_big_json" and BIG in touched:
                big_json_plant["removed_mark"] = -1
                post.append((big_json_plant, "removed_mark"))
            # deletions / renames of earlier plants
            if commit_no in pending_delete:
                meta = pending_delete.pop(commit_no)
                ops.append(f"D {qpath(meta['path'])}")
                post.append((meta, "removed_mark"))
            if commit_no in pending_rename:
                meta = pending_rename.pop(commit_no)
                new = "scripts/ci/aws_setup.sh"
                ops.append(f"R {qpath(meta['path'])} {qpath(new)}")
                meta["renamed_to"] = new
                post.append((meta, "renamed_mark"))
            if action == "side_branch":
                kid, secret = fake_key(key_rng)
                bm = fi.blob(plant_file_text(kid, secret, 1).replace(b"CI credentials", b"debug creds"))
                side = fi.commit("refs/heads/feature/debug-creds", author, when - 30,
                                 "WIP: debug credentials for the sts tests\n", parent,
                                 [f"M 100644 :{bm} tests/functional/debug.env"])
                planted.append({"kind": "side_branch_only", "key_id": kid, "secret": secret,
                                "path": "tests/functional/debug.env", "added_mark": side,
                                "refs": ["refs/heads/feature/debug-creds"]})
            committer = bot if last else author
            parent = fi.commit("refs/heads/main", author, when, msg, parent, ops,
                               committer=committer)
            commit_marks.append(parent)
            for meta, key in post:
                meta[key] = parent
            for u in chunk:
                if u[0] == "mod" and u[1] == BIG:
                    current_big = versions_of[BIG][u[2]]
                elif u[0] == "add" and BIG in u[1]:
                    current_big = cur[BIG]
            if extra_meta is not None:
                extra_meta["added_mark"] = parent
                planted.append(extra_meta)
                if action == "add_deleted_later":
                    pending_delete[commit_no + int(T * 0.01)] = extra_meta
                if action == "add_renamed":
                    pending_rename[commit_no + int(T * 0.05)] = extra_meta
                if action == "in_big_json":
                    big_json_plant = extra_meta
            commit_no += 1
        # ---- release tag
        tag_msg = f"botocore {v}\n\nSource release {v}, {len(cur)} files.\n"
        if ri == tag_key_release:
            kid, secret = fake_key(key_rng)
            tag_msg += f"\nrelease signing account: {kid}\naws_secret_access_key: {secret}\n"
            planted.append({"kind": "tag_message_only", "key_id": kid, "secret": secret,
                            "path": None, "tag": f"refs/tags/v{v}", "added_mark": parent})
        fi.tag(f"v{v}", parent, bot, when + 60, tag_msg)
        if v.endswith(".165") or v == "1.29.80":
            fi.reset(f"refs/heads/maint/{v.rsplit('.', 1)[0]}-{v.rsplit('.', 1)[1]}", parent)
        prev = cur
        print(f"[releases] {v}: +{len(added)} -{len(deleted)} ~{len(modified)} files, "
              f"{len(chunks)} commits ({commit_no} total), blob bytes so far "
              f"{fi.blob_bytes / 1e9:.2f} GB, {time.time() - tr:.1f}s",
              file=sys.stderr, flush=True)
    fi.close()

    # ---- resolve marks -> commit ids, write the manifest
    mark_to_sha = {}
    for line in (out / ".git" / "bench-marks").read_text().splitlines():
        m, sha = line.split()
        mark_to_sha[int(m[1:])] = sha
    for p in planted:
        for k in [k for k in p if k.endswith("_mark")]:
            p[k.replace("_mark", "_commit")] = mark_to_sha.get(p.pop(k)) if p.get(k) else None
        p.setdefault("removed_commit", None)
        p["in_head"] = p["kind"] in ("add_kept", "add_renamed")
        if p["kind"] == "in_big_json":
            p["in_head"] = p.get("removed_commit") is None
    subprocess.run(["git", "-C", str(out), "reset", "-q", "--hard", "main"], check=True)
    (out / ".git" / "bench-marks").unlink()
    if not args.no_repack:
        repack(out)
    summary = summarize(out)
    summary.update({"generator": "bench/build_history_releases.py", "seed": args.seed,
                    "releases": versions, "build_seconds": round(time.time() - t0, 1)})
    (out / "planted-keys.json").write_text(json.dumps(planted, indent=2) + "\n")
    (out / "build-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    # keep the manifests out of the repository's own status
    with open(out / ".git" / "info" / "exclude", "a") as f:
        f.write("planted-keys.json\nbuild-summary.json\n")
    print(json.dumps(summary, indent=2))


def repack(repo: Path) -> None:
    """Repack like a server/gc would (window 10, depth 50, deltas recomputed).

    fast-import's own pack deltas only against the previously written blob and is
    several times slower to read than a normal pack; a cloned or gc'd repository is what
    the benchmark should read.
    """
    t = time.time()
    print("[repack] git repack -a -d -f --window=10 --depth=50", file=sys.stderr, flush=True)
    subprocess.run(["git", "-C", str(repo), "repack", "-a", "-d", "-f", "-q",
                    "--window=10", "--depth=50"], check=True)
    print(f"[repack] done in {time.time() - t:.0f}s", file=sys.stderr, flush=True)


def summarize(repo: Path) -> dict:
    commits = int(subprocess.run(["git", "-C", str(repo), "rev-list", "--all", "--count"],
                                 capture_output=True, text=True, check=True).stdout)
    p = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch-all-objects",
                          "--batch-check=%(objecttype) %(objectsize)"], stdout=subprocess.PIPE)
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for line in p.stdout:
        t, s = line.split()
        t = t.decode()
        counts[t] = counts.get(t, 0) + 1
        sizes[t] = sizes.get(t, 0) + int(s)
    p.wait()
    du = sum(f.stat().st_size for f in (repo / ".git" / "objects").rglob("*") if f.is_file())
    return {"repo": str(repo), "commits": commits, "blobs": counts.get("blob", 0),
            "blob_bytes": sizes.get("blob", 0), "all_object_bytes": sum(sizes.values()),
            "objects": counts, "object_store_bytes_on_disk": du}


if __name__ == "__main__":
    main()
