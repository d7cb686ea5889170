#!/usr/bin/env python3
"""Build the "long history of small source files" benchmark repository.

What it builds
--------------
A git repository whose content is the Python standard library's ``.py`` sources
(of the interpreter running this script; 3.11.7 here: 1,790 files, 31.5 MB, average
17.6 KB) and whose history is ~30,000 synthetic commits on main (~35,000 with branches) made by a seeded script:

* the first commit holds ~35% of the modules; the rest arrive over time (add-file
  commits), a few files are deleted, moved to another package or renamed;
* most commits edit 1-10 files with realistic line-level edits: change an identifier,
  a number, a string or a comment on a line, insert a block copied from elsewhere in
  the file (a duplicated function under a new name), delete a block, append code;
  which files get edited follows a skewed (Zipf-like, size-weighted) popularity, so
  some files have hundreds of versions and many have a handful;
* feature branches fork from ``main``, get a few commits while ``main`` moves on
  (on disjoint files) and come back through ``--no-ff``-style merge commits; some
  are left unmerged; every 500th commit of main is tagged (annotated);
* synthetic authors and monotonically increasing dates.

Planted fake AWS keys (generated at run time from the seed; nothing key-like is stored
in this script) are listed with their commits in ``<out>/planted-keys.json``: added then
deleted, kept in HEAD, renamed with its file, arriving on main through a merge, only on
an unmerged branch, only in a commit message.

Result (seed 1, defaults, Python 3.11.7's stdlib, measured 2026-11-25): 34,523 commits
(30,000 on main + branches and merges), 96,737 blobs, 3.77 GB of blob bytes (average
blob 39 KB), a 46 MB pack, 899 branches, 59 tags; ~3 minutes on 2 cores including the
final repack. The summary is printed at the end and written to
``<out>/build-summary.json``.

Usage
-----
    .venv/bin/python bench/build_history_small.py           # -> bench/work/small
    .venv/bin/python bench/build_history_small.py --out DIR --commits 30000 --seed 1

Deterministic for a given seed and stdlib (Python version). Output under bench/work/
(gitignored): never commit generated repositories. Built with ``git fast-import``;
blobs are written grouped by path per chunk of commits so that successive versions of
a file are stored as deltas; at the end the repository is repacked like a clone/gc
would leave it (``git repack -a -d -f --window=10 --depth=50``; skip with --no-repack).
"""
from __future__ import annotations

import argparse
import bisect
import json
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from itertools import accumulate
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "work" / "small"

FIRST = ["Ada", "Boris", "Carmen", "Deniz", "Emeka", "Farah", "Gunnar", "Hiro", "Ines",
         "Jonas", "Kavya", "Luca", "Mei", "Nikolai", "Olga", "Pablo", "Rania", "Stefan",
         "Thandiwe", "Ulla", "Viktor", "Wiebke", "Yara", "Zeynep"]
LAST = ["Abara", "Brandt", "Castillo", "Dimitrov", "Engel", "Fontaine", "Gupta", "Haas",
        "Ivanova", "Jovanovic", "Kim", "Larsen", "Mendes", "Novak", "Ortega", "Pereira",
        "Richter", "Sato", "Teixeira", "Urbina", "Vogel", "Weber", "Yilmaz", "Zhou"]
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+"
WORDS = ["handle", "parse", "build", "check", "update", "cache", "config", "value", "result", "item", "buffer", "stream", "state", "index", "count", "limit", "offset", "token", "node", "entry", "record", "option", "flag", "mode"]
IDENT = re.compile(rb"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")
NUMBER = re.compile(rb"\b\d+\b")


def fake_key(rng: random.Random) -> tuple[str, str]:
    return ("AKIA" + "".join(rng.choice(B32) for _ in range(16)),
            "".join(rng.choice(B64) for _ in range(40)))


def qpath(p: str) -> str:
    if any(c in p for c in ' "\n\\') or p.startswith('"'):
        return '"' + p.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return p


def load_stdlib(root: Path) -> dict[str, bytes]:
    files = {}
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("site-packages/") or "__pycache__" in rel or not p.is_file():
            continue
        files["Lib/" + rel] = p.read_bytes()
    return files


# ----------------------------------------------------------------------------- edits
def mutate_line(rng: random.Random, line: bytes) -> bytes:
    body = line.rstrip(b"\r\n")
    nl = line[len(body):] or b"\n"
    r = rng.random()
    ids = IDENT.findall(body)
    if r < 0.35 and ids:
        old = rng.choice(ids)
        new = old + b"_" + rng.choice(WORDS).encode()
        return body.replace(old, new, 1) + nl
    nums = NUMBER.findall(body)
    if r < 0.5 and nums:
        old = rng.choice(nums)
        return body.replace(old, str(int(old) + rng.randint(1, 9)).encode(), 1) + nl
    if r < 0.75:
        return body + b"  # " + rng.choice(WORDS).encode() + b" " + rng.choice(WORDS).encode() + nl
    indent = body[: len(body) - len(body.lstrip())]
    return indent + b"# TODO: " + b" ".join(rng.choice(WORDS).encode() for _ in range(4)) + nl


def edit_content(rng: random.Random, content: bytes) -> bytes:
    lines = content.splitlines(keepends=True) or [b"\n"]
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
        n = len(lines)
        r = rng.random()
        if r < 0.55:                                   # change a few lines
            i = rng.randrange(n)
            for j in range(i, min(n, i + rng.choice((1, 1, 2, 3)))):
                lines[j] = mutate_line(rng, lines[j])
        elif r < 0.75:                                 # duplicate a block under a new name
            i = rng.randrange(n)
            k = rng.randint(3, 25)
            block = lines[i:i + k]
            suffix = ("_" + rng.choice(WORDS)).encode()
            block = [re.sub(rb"\bdef (\w+)", rb"def \1" + suffix, b) for b in block]
            at = rng.randrange(n + 1)
            lines[at:at] = block
        elif r < 0.92 and n > 40:                      # delete a block
            i = rng.randrange(n - 20)
            del lines[i:i + rng.randint(1, 20)]
        else:                                          # append a small function
            name = "_".join(rng.sample(WORDS, 2))
            lines.append(b"\n\ndef %s(value, limit=%d):\n    return value[:limit]\n"
                         % (name.encode(), rng.randint(2, 99)))
    return b"".join(lines)


class Tree:
    """A branch's file set: path -> (blob mark or None, content)."""

    def __init__(self, files: dict[str, tuple[int | None, bytes]] | None = None):
        self.files = dict(files or {})


class Builder:
    def __init__(self, out: Path, seed: int):
        self.out = out
        self.rng = random.Random(seed)
        self.key_rng = random.Random(f"small-keys-{seed}")
        self.proc = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--depth=50",
             f"--export-marks={out / '.git' / 'bench-marks'}"], cwd=out, stdin=subprocess.PIPE)
        self.w = self.proc.stdin
        self.mark = 0
        self.blob_bytes = 0
        self.pending_blobs: list[tuple[str, int, int, bytes]] = []  # (path, seq, mark, content)
        self.pending_cmds: list[bytes] = []
        self.seq = 0

    def new_blob(self, path: str, content: bytes) -> int:
        self.mark += 1
        self.seq += 1
        self.pending_blobs.append((path, self.seq, self.mark, content))
        self.blob_bytes += len(content)
        return self.mark

    def commit(self, ref, author, when, msg, parents, ops, committer=None) -> int:
        self.mark += 1
        c = committer or author
        out = [f"commit {ref}\nmark :{self.mark}\n"
               f"author {author[0]} <{author[1]}> {when} +0000\n"
               f"committer {c[0]} <{c[1]}> {when} +0000\n".encode()]
        m = msg.encode()
        out.append(b"data %d\n%s\n" % (len(m), m))
        if parents:
            out.append(b"from :%d\n" % parents[0])
            for p in parents[1:]:
                out.append(b"merge :%d\n" % p)
        out.extend(o.encode() + b"\n" for o in ops)
        out.append(b"\n")
        self.pending_cmds.append(b"".join(out))
        return self.mark

    def raw(self, text: str) -> None:
        self.pending_cmds.append(text.encode())

    def flush(self) -> None:
        # blobs grouped by path, in creation order, so fast-import deltas successive versions
        for path, _seq, mark, content in sorted(self.pending_blobs, key=lambda b: (b[0], b[1])):
            self.w.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(content)))
            self.w.write(content)
            self.w.write(b"\n")
        self.pending_blobs.clear()
        for c in self.pending_cmds:
            self.w.write(c)
        self.pending_cmds.clear()

    def close(self) -> None:
        self.flush()
        self.w.close()
        if self.proc.wait() != 0:
            raise SystemExit("git fast-import failed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--commits", type=int, default=30000, help="commits on main (approx.)")
    ap.add_argument("--max-files", type=int, default=10, help="max files edited per commit")
    ap.add_argument("--stdlib", type=Path,
                    default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--size-exponent", type=float, default=0.5,
                    help="edit popularity ~ size**x * pareto noise (higher: bigger files)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-repack", action="store_true",
                    help="keep fast-import's pack (slower to read than a normal pack)")
    args = ap.parse_args()
    t0 = time.time()

    source = load_stdlib(args.stdlib)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(out)], check=True)
    subprocess.run(["git", "-C", str(out), "config", "gc.auto", "0"], check=True)

    b = Builder(out, args.seed)
    rng = b.rng
    authors = []
    for f in FIRST:
        for l in rng.sample(LAST, 2):
            authors.append((f"{f} {l}", f"{f.lower()}.{l.lower()}@example.org"))
    rng.shuffle(authors)
    author_w = list(accumulate(1.0 / (i + 1) for i in range(len(authors))))

    def pick_author():
        return authors[bisect.bisect(author_w, rng.random() * author_w[-1])]

    paths = sorted(source)
    rng.shuffle(paths)
    n_initial = int(len(paths) * 0.35)
    to_add = paths[n_initial:]
    # popularity: size-weighted, heavy-tailed random factor (stable per file, seeded)
    pop = {p: (len(source[p]) ** args.size_exponent) * rng.paretovariate(1.2) for p in paths}

    main_tree = Tree()
    when = 1262304000  # 2010-01-01
    ops = []
    for p in sorted(paths[:n_initial]):
        m = b.new_blob(p, source[p])
        main_tree.files[p] = (m, source[p])
        ops.append(f"M 100644 :{m} {qpath(p)}")
    head = b.commit("refs/heads/main", authors[0], when, "Import the standard library\n",
                    [], ops)
    main_count = 1
    planted: list[dict] = []
    T = args.commits
    plan = {int(T * 0.1): "add_deleted_later", int(T * 0.3): "add_kept",
            int(T * 0.45): "commit_message", int(T * 0.6): "add_renamed",
            int(T * 0.75): "via_merge", int(T * 0.9): "unmerged_branch"}
    pending: dict[int, tuple[str, dict]] = {}

    # weighted choice over the current main tree, refreshed every chunk
    def chooser(tree: Tree, exclude: set[str]):
        items = [p for p in tree.files if p not in exclude]
        cum = list(accumulate(pop.get(p, 1000.0) for p in items))
        return items, cum

    def pick_files(items, cum, k):
        chosen = set()
        for _ in range(k * 3):
            if len(chosen) >= k:
                break
            chosen.add(items[bisect.bisect(cum, rng.random() * cum[-1])])
        return sorted(chosen)

    def plant_line(kid, secret, style):
        if style == 0:
            return (f'\n# credentials used by the integration run\n'
                    f'AWS_ACCESS_KEY_ID = "{kid}"\nAWS_SECRET_ACCESS_KEY = "{secret}"\n').encode()
        return (f'\n_TEST_CONFIG = {{\n    "aws_access_key_id": "{kid}",\n'
                f'    "aws_secret_access_key": "{secret}",\n}}\n').encode()

    branch_no = 0
    tags_made = 0
    open_branch = None  # dict(ref, tree, head, fork_tree, touched, commits_left, merge)
    main_touched_since_fork: set[str] = set()
    items, cum = chooser(main_tree, set())
    chunk_commits = 0

    while main_count < T or open_branch is not None:
        when += rng.randint(120, 60 * 60 * 8)
        # ---------------- a branch commit, sometimes
        if open_branch is not None and rng.random() < 0.4:
            br = open_branch
            if br["commits_left"] > 0:
                bi, bc = chooser(br["tree"], main_touched_since_fork | set())
                fs = pick_files(bi, bc, rng.randint(1, 4))
                ops = []
                for p in fs:
                    content = edit_content(rng, br["tree"].files[p][1])
                    if br.get("plant") and not br["planted"]:
                        kid, secret = br["plant"]
                        content += plant_line(kid, secret, 1)
                        br["planted"] = True
                        br["plant_meta"]["path"] = p
                        pop[p] = 1e-9  # no further edits: the manifest stays exact
                        br["plant_meta_pending"] = True
                    m = b.new_blob(p, content)
                    br["tree"].files[p] = (m, content)
                    br["touched"].add(p)
                    ops.append(f"M 100644 :{m} {qpath(p)}")
                a = pick_author()
                br["head"] = b.commit(br["ref"], a, when, f"{br['topic']}: work on "
                                      f"{', '.join(Path(p).stem for p in fs[:3])}\n",
                                      [br["head"]], ops)
                if br.pop("plant_meta_pending", False):
                    br["plant_meta"]["added_mark"] = br["head"]
                br["commits_left"] -= 1
                chunk_commits += 1
                continue
        # ---------------- close an open branch
        if open_branch is not None and open_branch["commits_left"] <= 0:
            br = open_branch
            if br["merge"]:
                ops = []
                for p in sorted(br["touched"]):
                    m, content = br["tree"].files[p]
                    main_tree.files[p] = (m, content)
                    ops.append(f"M 100644 :{m} {qpath(p)}")
                a = pick_author()
                head = b.commit("refs/heads/main", a, when,
                                f"Merge branch '{br['ref'][11:]}'\n", [head, br["head"]], ops)
                if br.get("plant_meta") is not None:
                    br["plant_meta"]["merge_mark"] = head
                main_count += 1
                chunk_commits += 1
            open_branch = None
            main_touched_since_fork = set()
            items, cum = chooser(main_tree, set())
            continue
        if main_count >= T:
            if open_branch is not None:
                open_branch["commits_left"] = 0
            continue
        # ---------------- open a branch, sometimes
        # the first planned action that is due (merge commits also advance main_count)
        due = min((k for k in plan if k <= main_count), default=None)
        action = plan[due] if due is not None else None
        if action in ("via_merge", "unmerged_branch") and open_branch is not None:
            action = None                       # wait until the open branch closes
        if open_branch is None and (rng.random() < 0.04 or action in ("via_merge",
                                                                      "unmerged_branch")):
            branch_no += 1
            topic = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{branch_no}"
            merge = action == "via_merge" or (action != "unmerged_branch" and rng.random() < 0.85)
            ref = f"refs/heads/{'feature' if merge else 'wip'}/{topic}"
            b.raw(f"reset {ref}\nfrom :{head}\n\n")
            open_branch = {"ref": ref, "topic": topic, "tree": Tree(main_tree.files),
                           "head": head, "touched": set(), "merge": merge,
                           "commits_left": rng.randint(2, 8), "planted": False}
            if action in ("via_merge", "unmerged_branch"):
                kid, secret = fake_key(b.key_rng)
                meta = {"kind": "via_merge" if merge else "unmerged_branch_only",
                        "key_id": kid, "secret": secret, "branch": ref}
                open_branch["plant"] = (kid, secret)
                open_branch["plant_meta"] = meta
                planted.append(meta)
                plan.pop(due)
                action = None
        # ---------------- a main commit
        excl = open_branch["touched"] if open_branch else set()
        if excl:
            items, cum = chooser(main_tree, excl)
        ops = []
        r = rng.random()
        a = pick_author()
        msg = None
        if r < 0.025 and to_add:                          # add modules
            k = min(len(to_add), rng.randint(1, 6))
            new, to_add[:] = to_add[:k], to_add[k:]
            for p in new:
                m = b.new_blob(p, source[p])
                main_tree.files[p] = (m, source[p])
                ops.append(f"M 100644 :{m} {qpath(p)}")
            msg = f"Add {', '.join(Path(p).stem for p in new)}\n"
        elif r < 0.03:                                    # delete a file
            p = pick_files(items, cum, 1)[0]
            if p not in excl and not p.startswith("Lib/bench_"):
                del main_tree.files[p]
                main_touched_since_fork.add(p)
                ops.append(f"D {qpath(p)}")
                msg = f"Remove {p}\n"
        elif r < 0.037:                                   # rename / move a file
            p = pick_files(items, cum, 1)[0]
            parent_dir, name = p.rsplit("/", 1)
            if rng.random() < 0.5:
                newp = f"{parent_dir}/{name[:-3]}_{rng.choice(WORDS)}.py"
            else:
                newp = f"Lib/{rng.choice(['legacy', 'compat', 'internal'])}/{name}"
            if newp not in main_tree.files and p not in excl:
                main_tree.files[newp] = main_tree.files.pop(p)
                main_touched_since_fork.update((p, newp))
                pop[newp] = pop.get(p, 1000.0)
                ops.append(f"R {qpath(p)} {qpath(newp)}")
                msg = f"Move {p} to {newp}\n"
        if msg is None:                                   # edit files
            k = min(args.max_files, int(rng.expovariate(1 / 2.5)) + 1)
            fs = pick_files(items, cum, k)
            for p in fs:
                content = edit_content(rng, main_tree.files[p][1])
                m = b.new_blob(p, content)
                main_tree.files[p] = (m, content)
                ops.append(f"M 100644 :{m} {qpath(p)}")
            main_touched_since_fork.update(fs)
            stems = ", ".join(Path(p).stem for p in fs[:3])
            msg = rng.choice(["Fix {} handling in {}", "Refactor {1}", "Clean up {1}",
                              "{0}: tidy {1}", "Improve {0} in {1}"]).format(
                rng.choice(WORDS), stems) + "\n"
            if rng.random() < 0.3:
                msg += "\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) + "\n"
        # ---------------- planted keys on main
        meta = None
        if action in ("add_deleted_later", "add_kept", "add_renamed"):
            kid, secret = fake_key(b.key_rng)
            path = {"add_deleted_later": "Lib/test/support/aws_fixture.py",
                    "add_kept": "Lib/bench_settings_local.py",
                    "add_renamed": "Lib/test/aws_creds_example.py"}[action]
            content = (b'"""Local settings."""\n' +
                       plant_line(kid, secret, 0 if action != "add_renamed" else 1))
            m = b.new_blob(path, content)
            main_tree.files[path] = (m, content)
            pop[path] = 1e-9  # never picked for edits, so the manifest stays exact
            ops.append(f"M 100644 :{m} {qpath(path)}")
            meta = {"kind": action, "key_id": kid, "secret": secret, "path": path}
            if action == "add_deleted_later":
                pending[main_count + int(T * 0.02)] = ("delete", meta)
            if action == "add_renamed":
                pending[main_count + int(T * 0.05)] = ("rename", meta)
        elif action == "commit_message":
            kid, secret = fake_key(b.key_rng)
            msg += f"\nrepro creds: AWS_ACCESS_KEY_ID={kid} AWS_SECRET_ACCESS_KEY={secret}\n"
            meta = {"kind": action, "key_id": kid, "secret": secret, "path": None}
        post = []
        if action is not None:
            plan.pop(due)
        due_p = min((k for k in pending if k <= main_count), default=None)
        if due_p is not None:
            what, pm = pending.pop(due_p)
            if pm["path"] in main_tree.files:
                if what == "delete":
                    del main_tree.files[pm["path"]]
                    ops.append(f"D {qpath(pm['path'])}")
                    post.append((pm, "removed_mark"))
                else:
                    newp = "Lib/test/support/aws_creds_example.py"
                    main_tree.files[newp] = main_tree.files.pop(pm["path"])
                    pop[newp] = 1e-9
                    ops.append(f"R {qpath(pm['path'])} {qpath(newp)}")
                    pm["renamed_to"] = newp
                    post.append((pm, "renamed_mark"))
        head = b.commit("refs/heads/main", a, when, msg, [head], ops)
        for pm, key in post:
            pm[key] = head
        if meta is not None:
            meta["added_mark"] = head
            planted.append(meta)
        main_count += 1
        chunk_commits += 1
        if main_count // 500 > tags_made:
            tags_made = main_count // 500
            b.raw(f"tag r{main_count // 500}\nfrom :{head}\n"
                  f"tagger {a[0]} <{a[1]}> {when + 30} +0000\n")
            tmsg = f"Snapshot {main_count // 500}\n".encode()
            b.pending_cmds.append(b"data %d\n%s\n" % (len(tmsg), tmsg))
        if chunk_commits >= 400 and open_branch is None:
            b.flush()
            chunk_commits = 0
            items, cum = chooser(main_tree, set())
            print(f"[small] {main_count} main commits, {b.blob_bytes / 1e9:.2f} GB blob bytes, "
                  f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        elif r < 0.04 or (open_branch is None and chunk_commits % 50 == 0):
            items, cum = chooser(main_tree, excl)
    b.close()

    marks = {}
    for line in (out / ".git" / "bench-marks").read_text().splitlines():
        m, sha = line.split()
        marks[int(m[1:])] = sha
    (out / ".git" / "bench-marks").unlink()
    for pm in planted:
        for k in [k for k in pm if k.endswith("_mark")]:
            pm[k.replace("_mark", "_commit")] = marks.get(pm.pop(k))
        pm.setdefault("removed_commit", None)
        pm["in_head"] = pm["kind"] in ("add_kept", "add_renamed", "via_merge")
    subprocess.run(["git", "-C", str(out), "reset", "-q", "--hard", "main"], check=True)
    sys.path.insert(0, str(HERE))
    from build_history_releases import repack, summarize
    if not args.no_repack:
        repack(out)
    summary = summarize(out)
    summary.update({"generator": "bench/build_history_small.py", "seed": args.seed,
                    "stdlib": str(args.stdlib), "python": sys.version.split()[0],
                    "build_seconds": round(time.time() - t0, 1)})
    (out / "planted-keys.json").write_text(json.dumps(planted, indent=2) + "\n")
    (out / "build-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / ".git" / "info" / "exclude", "a") as f:
        f.write("planted-keys.json\nbuild-summary.json\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
