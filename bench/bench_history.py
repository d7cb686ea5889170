#!/usr/bin/env python3
"""Full-history scan benchmark: keyscan vs git's own read vs betterleaks, in one run.

For every repository given (build them with bench/build_history_releases.py and
bench/build_history_small.py), in this order:

1. repository stats: commits (all refs), blobs, blob bytes;
2. baseline: ``git cat-file --batch-all-objects --batch --unordered > /dev/null``,
   one warm-up run, then ``--repeat`` (default 3) timed runs, each right before one of
   keyscan's timed full scans (step 5): the keyscan / cat-file ratio is the median of
   those pairs' ratios, each pair run under the same conditions (this VM's speed drifts
   by +-20-30% within minutes);
3. optional (``--log-p``): ``git log -p --all > /dev/null`` (what diff-based scanners pay);
4. ``betterleaks git <repo> -ir aws-access-token,aws-secret-access-key`` (its AWS rules
   only; ``aws-secret-access-key`` is the component rule the AWS composite needs);
5. ``keyscan scan --history <repo> --format json -o <tmp>/out.json`` with a cold cache
   (entries matching ``<git-dir>/keyscan*`` are removed before each run; see
   --keyscan-cache-glob), median of ``--repeat`` runs: packed objects are rebuilt
   in-process (keyscan/sources/packs.py);
6. with ``--git-path``: the same with ``KEYSCAN_READ_PACKS=0``, every object read through
   ``git cat-file --batch`` pipes (keyscan's fallback path, and its design before);
7. after each full keyscan run, one new commit on ``refs/heads/bench/incremental`` (the
   file the HEAD commit touched, plus one line that is new on every run), then the same
   keyscan command again (the incremental re-scan), ``--incremental-repeat`` (default 7)
   times, each from the cache that full run left; incremental / full is the median over
   the full runs of (median re-scan / that full run), paired as cat-file is, since this
   VM's speed drifts; the ref is deleted after each block (kept at the end with
   --keep-incremental);
8. timed runs start each command directly; only the one more run that samples memory
   goes under /usr/bin/time -v (~2 ms, 2-3% of a re-scan);
9. the fixed cost of any re-scan: the same incremental re-scan on a 3-commit repository,
   and the interpreter's own start (``python -c pass``).

keyscan is the project installed as users get it (``pip install .`` into
bench/work/venv-release: not editable, bytecode compiled at install); --editable uses the
running venv's console script instead.

If keyscan or its ``--history`` option is missing, or it fails, the keyscan rows say so
and the baselines are still reported.

Every command runs under ``/usr/bin/time -v`` (wall, "Maximum resident set size" = the
largest single process). Timed runs run alone; memory comes from one more run of each
command while psutil samples the whole process tree every 20 ms (sampling takes CPU,
which would slow a program using both cores more than one using one):
"tree RSS" is the peak of the summed RSS of all processes (keyscan + its git children +
workers), which counts twice the pages forked workers share with their parent; "tree
PSS" is the peak of the summed proportional set size, each shared page split between
its sharers, so the whole tree's real footprint; "excl. git" is the summed RSS of the
tree without git's own processes. The 250 MB target is checked against the tree PSS:
everything keyscan runs, git included.

Targets (issue 3): keyscan/cat-file <= 1.3; keyscan faster than betterleaks on every
repository, and >= 2.5x faster where betterleaks is slow (>= 3x git's own read);
incremental <= 3% of full; peak RSS <= 250 MB.

Usage:
    .venv/bin/python bench/bench_history.py bench/work/releases bench/work/small \\
        [--repeat 3] [--log-p] [--json results.json] > table.md
The markdown table goes to stdout; progress to stderr.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    import psutil
except ImportError:  # pragma: no cover - the venv has it; degrade to time -v only
    psutil = None

HERE = Path(__file__).resolve().parent
AWS_RULES = "aws-access-token,aws-secret-access-key"
TIME = "/usr/bin/time"


def log(*a) -> None:
    print("[bench]", *a, file=sys.stderr, flush=True)


def find_betterleaks() -> str | None:
    try:
        import betterleaks  # type: ignore
        cand = Path(betterleaks.__file__).parent / "bin" / "betterleaks"
        if cand.exists():
            return str(cand)
    except Exception:
        pass
    for c in glob.glob(str(Path(sys.prefix) / "lib" / "python*" / "site-packages" /
                           "betterleaks" / "bin" / "betterleaks")):
        return c
    return shutil.which("betterleaks")


def release_keyscan() -> list[str]:
    """keyscan as users get it: the project installed (not editable, bytecode compiled
    at install) into bench/work/venv-release, as bench_worktree.py measures it."""
    sys.path.insert(0, str(HERE))
    import bench_worktree

    bench_worktree.release_keyscan()
    return [bench_worktree.KEYSCAN]


def find_keyscan() -> list[str] | None:
    exe = Path(sys.executable).parent / "keyscan"
    if exe.exists():
        return [str(exe)]
    w = shutil.which("keyscan")
    return [w] if w else None


class Sampler(threading.Thread):
    """Peak summed RSS and PSS of a process tree (and RSS without git's processes), sampled."""

    def __init__(self, pid: int, interval: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = 0
        self.peak_nogit = 0
        self.peak_pss = 0  # proportional: pages shared by forked workers counted once
        self.stop = threading.Event()

    def run(self) -> None:
        if psutil is None:
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop.is_set():
            rss = nogit = pss = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    name = p.name()
                    if name == "time":   # the /usr/bin/time wrapper itself
                        continue
                    mi = p.memory_info()
                    rss += mi.rss
                    if not name.startswith("git"):
                        nogit += mi.rss
                    pss += p.memory_full_info().pss
                except (psutil.Error, AttributeError):
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_nogit = max(self.peak_nogit, nogit)
            self.peak_pss = max(self.peak_pss, pss)
            self.stop.wait(self.interval)


def run_measured(cmd: list[str], cwd: str | None = None, stdout=subprocess.DEVNULL,
                 env: dict | None = None, sample: bool = True) -> dict:
    """One run; with `sample`, under /usr/bin/time -v with the process tree's memory
    sampled too (which costs CPU: timed runs of 2-core programs are made without). Timed
    runs start the command itself: /usr/bin/time adds ~2 ms, which is nothing beside a
    full scan and 2-3% of a re-scan."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        tpath = tf.name
    full = [TIME, "-v", "-o", tpath, *cmd] if os.path.exists(TIME) and sample else cmd
    errf = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(full, cwd=cwd, stdout=stdout, stderr=errf, env=env)
    s = Sampler(proc.pid)
    if sample:
        s.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    s.stop.set()
    if sample:
        s.join()
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    maxrss_kb = None
    try:
        text = Path(tpath).read_text()
        for line in text.splitlines():
            if "Maximum resident set size" in line:
                maxrss_kb = int(line.rsplit(":", 1)[1])
            if "Command exited with non-zero status" in line:
                rc = int(line.rsplit(" ", 1)[1])
    except OSError:
        pass
    finally:
        try:
            os.unlink(tpath)
        except OSError:
            pass
    return {"cmd": cmd, "rc": rc, "wall": wall,
            "maxrss_mb": maxrss_kb / 1024 if maxrss_kb else None,
            "tree_rss_mb": s.peak_rss / 2**20 if psutil and sample else None,
            "tree_nogit_mb": s.peak_nogit / 2**20 if psutil and sample else None,
            "tree_pss_mb": s.peak_pss / 2**20 if psutil and s.peak_pss else None,
            "stderr_tail": err[-2000:]}


def git(repo: str, *args: str, input: bytes | None = None, env=None) -> str:
    return subprocess.run(["git", "-C", repo, *args], input=input, capture_output=True,
                          check=True, env=env).stdout.decode()


def repo_stats(repo: str) -> dict:
    commits = int(git(repo, "rev-list", "--all", "--count"))
    p = subprocess.Popen(["git", "-C", repo, "cat-file", "--batch-all-objects",
                          "--batch-check=%(objecttype) %(objectsize)"], stdout=subprocess.PIPE)
    blobs = blob_bytes = objects = 0
    for line in p.stdout:
        objects += 1
        if line.startswith(b"blob "):
            blobs += 1
            blob_bytes += int(line[5:])
    p.wait()
    return {"commits": commits, "objects": objects, "blobs": blobs, "blob_bytes": blob_bytes}


def count_findings(path: str) -> int | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        for k in ("findings", "results", "leaks"):
            if isinstance(data.get(k), list):
                return len(data[k])
    return None


def keyscan_has_history(keyscan: list[str] | None) -> tuple[bool, str]:
    if not keyscan:
        return False, "keyscan not installed"
    try:
        r = subprocess.run([*keyscan, "scan", "--help"], capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"keyscan scan --help failed: {e}"
    if "--history" not in (r.stdout + r.stderr):
        return False, "keyscan scan has no --history option yet"
    return True, ""


def clear_keyscan_cache(repo: str, pattern: str) -> list[str]:
    gitdir = git(repo, "rev-parse", "--absolute-git-dir").strip()
    removed = []
    for p in glob.glob(os.path.join(gitdir, pattern)):
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
        removed.append(p)
    return removed


def add_incremental_commit(repo: str, ref: str) -> str:
    """One realistic new commit on `ref`: re-edit the file HEAD's commit touched."""
    changed = [p for p in git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r",
                              "--diff-filter=AM", "HEAD").splitlines() if p]
    if not changed:
        changed = git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines()[:1]
    path = changed[0]
    old = subprocess.run(["git", "-C", repo, "cat-file", "blob", f"HEAD:{path}"],
                         capture_output=True, check=True).stdout
    nonce = f"{time.time_ns()}"
    new = old + (f"\n# bench incremental edit {nonce}\n" if path.endswith(".py")
                 else f"\n bench incremental edit {nonce}\n").encode()
    blob = git(repo, "hash-object", "-w", "--stdin", input=new).strip()
    with tempfile.TemporaryDirectory() as td:
        env = dict(os.environ, GIT_INDEX_FILE=os.path.join(td, "index"))
        git(repo, "read-tree", "HEAD", env=env)
        git(repo, "update-index", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env).strip()
    env = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com")
    commit = git(repo, "commit-tree", tree, "-p", "HEAD", "-m",
                 f"bench: incremental edit of {path}", env=env).strip()
    git(repo, "update-ref", ref, commit)
    return commit


def restore_as_built(repo: str) -> int:
    """The repository as its build script left it: each run's incremental commit (its
    blob, trees and commit, loose) stays in the store once its ref is deleted, and a full
    scan and git's read both read every stored object, so 70 earlier runs had added ~10%
    to both (copies of botocore's largest files). Those are the only unreachable objects
    of a bench repository: prune them. Returns how many objects went."""
    subprocess.run(["git", "-C", repo, "update-ref", "-d", INCREMENTAL_REF], check=False)
    before = loose_count(repo)
    git(repo, "prune", "--expire=now")
    return before - loose_count(repo)


def loose_count(repo: str) -> int:
    for line in git(repo, "count-objects", "-v").splitlines():
        if line.startswith("count:"):
            return int(line.split()[1])
    return 0


INCREMENTAL_REF = "refs/heads/bench/incremental"


def fmt(x, spec=".1f", none="–") -> str:
    return none if x is None else format(x, spec)


def bench_repo(repo: str, args, betterleaks: str | None, keyscan: list[str] | None,
               tmp: str) -> dict:
    name = Path(repo).name
    res: dict = {"repo": repo, "name": name}
    res["pruned"] = restore_as_built(repo)
    log(f"{name}: stats ({res['pruned']} loose objects of earlier bench runs pruned)")
    res["stats"] = repo_stats(repo)

    # --- git's own read
    catfile = ["git", "-C", repo, "cat-file", "--batch-all-objects", "--batch", "--unordered"]
    log(f"{name}: cat-file warm-up (memory sampled)")
    memory = run_measured(catfile)
    cat_runs: list[dict] = []

    def time_catfile() -> None:
        r = run_measured(catfile, sample=False)
        log(f"{name}: cat-file run {len(cat_runs) + 1}: {r['wall']:.2f}s")
        cat_runs.append(r)

    def catfile_result() -> None:
        med = sorted(cat_runs, key=lambda r: r["wall"])[len(cat_runs) // 2]
        res["catfile"] = dict(med, walls=[r["wall"] for r in cat_runs],
                              wall=statistics.median(r["wall"] for r in cat_runs),
                              maxrss_mb=memory.get("maxrss_mb"),
                              **{k: v for k, v in memory.items() if k.startswith("tree_")})

    if args.log_p:
        log(f"{name}: git log -p --all")
        res["logp"] = run_measured(["git", "-C", repo, "log", "-p", "--all"])
        log(f"{name}: git log -p --all: {res['logp']['wall']:.1f}s")

    # --- betterleaks, AWS rules only
    if betterleaks and not args.skip_betterleaks:
        out = os.path.join(tmp, f"{name}-betterleaks.json")
        log(f"{name}: betterleaks git")
        r = run_measured([betterleaks, "git", repo, "-ir", AWS_RULES, "--no-banner",
                          "--no-color", "-o", out, "--exit-code", "0"], sample=False)
        r["findings"] = count_findings(out)
        res["betterleaks"] = r
        log(f"{name}: betterleaks {r['wall']:.1f}s rc={r['rc']} findings={r['findings']}")

    # --- keyscan full + incremental
    ok, why = keyscan_has_history(keyscan)
    if not ok:
        res["keyscan_error"] = why
        log(f"{name}: keyscan skipped: {why}")
        for _ in range(args.repeat):
            time_catfile()
        catfile_result()
        return res
    out = os.path.join(tmp, f"{name}-keyscan.json")
    kcmd = [*keyscan, "scan", "--history", repo, "--format", "json", "-o", out]
    variants = [("keyscan", None)]
    if args.git_path:
        variants.append(("keyscan_git", dict(os.environ, KEYSCAN_READ_PACKS="0")))
    incr = _Incremental(repo, kcmd, args, tmp, out)
    for key, env in variants:
        runs = []
        for i in range(args.repeat + 1):  # the last run samples memory, the others time
            if key == "keyscan" and i < args.repeat:
                # each timed keyscan run right after a timed cat-file run: this VM's
                # speed drifts by +-20-30% within minutes, so the ratio is taken pair
                # by pair, each pair under the same conditions
                time_catfile()
            clear_keyscan_cache(repo, args.keyscan_cache_glob)
            r = run_measured(kcmd, env=env, sample=i == args.repeat)
            r["findings"] = count_findings(out)
            log(f"{name}: {key} full run {i + 1}: {r['wall']:.2f}s rc={r['rc']} "
                f"findings={r['findings']}")
            runs.append(r)
            if r["rc"] not in (0, 1):
                res["keyscan_error"] = f"keyscan exited {r['rc']}: {r['stderr_tail'][-300:]}"
                if "catfile" not in res:
                    catfile_result()
                incr.close()
                return res
            if key == "keyscan":
                # re-scans from the cache this full run just left, right after it: the
                # incremental / full ratio is taken pair by pair too
                incr.block(r, sample=i == args.repeat)
        res[key] = median_run(runs[:-1], memory=runs[-1])
        if key == "keyscan":
            catfile_result()
            res["pair_ratios"] = [k["wall"] / c["wall"] for k, c in zip(runs, cat_runs, strict=False)]
    incr.close()
    res["keyscan_incr"] = median_run(incr.timed, memory=incr.sampled or incr.timed[-1])
    res["incr_pair_ratios"] = incr.ratios
    res["incr_pairs"] = incr.pairs
    return res


class _Incremental:
    """Re-scans after one new commit on refs/heads/bench/incremental (the file HEAD's
    commit touched, edited; its ref set only for the re-scans), each from the cache the
    full run just before left, restored before every re-scan."""

    def __init__(self, repo: str, kcmd: list[str], args, tmp: str, out: str) -> None:
        self.repo, self.kcmd, self.args, self.out = repo, kcmd, args, out
        self.name = Path(repo).name
        self.gitdir = git(repo, "rev-parse", "--absolute-git-dir").strip()
        self.saved = os.path.join(tmp, f"{self.name}-cache")
        self.ref = INCREMENTAL_REF
        self.commit = ""
        self.timed: list[dict] = []
        self.sampled: dict | None = None
        self.ratios: list[float] = []
        self.pairs: list[tuple[float, float]] = []  # (full scan, median re-scan after it)

    def block(self, full: dict, sample: bool) -> None:
        shutil.rmtree(self.saved, ignore_errors=True)
        shutil.copytree(os.path.join(self.gitdir, "keyscan"), self.saved)
        # a new commit each time: the full run before read the last one (it reads every
        # object in the store, reachable or not), so it would not be new
        self.commit = add_incremental_commit(self.repo, self.ref)
        log(f"{self.name}: added {self.commit[:12]} on {self.ref}; keyscan incremental")
        try:
            count = 1 if sample else self.args.incremental_repeat
            walls = []
            for _ in range(count):
                clear_keyscan_cache(self.repo, self.args.keyscan_cache_glob)
                shutil.copytree(self.saved, os.path.join(self.gitdir, "keyscan"))
                r = run_measured(self.kcmd, sample=sample)
                r["findings"] = count_findings(self.out)
                log(f"{self.name}: keyscan incremental run: {r['wall']:.3f}s rc={r['rc']}")
                walls.append(r["wall"])
                if sample:
                    self.sampled = r
                else:
                    self.timed.append(r)
            if not sample:
                self.ratios.append(statistics.median(walls) / full["wall"])
                self.pairs.append((full["wall"], statistics.median(walls)))
        finally:
            git(self.repo, "update-ref", "-d", self.ref)

    def close(self) -> None:
        if self.commit and self.args.keep_incremental:
            git(self.repo, "update-ref", self.ref, self.commit)


def time_incremental(repo: str, kcmd: list[str], args, tmp: str, out: str) -> dict:
    """keyscan again after one new commit, each run from the cache the full scan left."""
    name = Path(repo).name
    gitdir = git(repo, "rev-parse", "--absolute-git-dir").strip()
    saved = os.path.join(tmp, f"{name}-cache")
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(os.path.join(gitdir, "keyscan"), saved)
    ref = INCREMENTAL_REF
    try:
        commit = add_incremental_commit(repo, ref)
        log(f"{name}: added {commit[:12]} on {ref}; keyscan incremental")
        runs = []
        for i in range(args.incremental_repeat + 1):
            clear_keyscan_cache(repo, args.keyscan_cache_glob)
            shutil.copytree(saved, os.path.join(gitdir, "keyscan"))
            r = run_measured(kcmd, sample=i == args.incremental_repeat)
            r["findings"] = count_findings(out)
            log(f"{name}: keyscan incremental run {i + 1}: {r['wall']:.3f}s rc={r['rc']}")
            runs.append(r)
        return median_run(runs[:-1], memory=runs[-1])
    finally:
        if not args.keep_incremental:
            subprocess.run(["git", "-C", repo, "update-ref", "-d", ref], check=False)


def fixed_costs(keyscan: list[str], args, tmp: str) -> dict:
    """What a re-scan costs whatever the history: the same incremental re-scan on a
    3-commit repository, and the bare interpreter keyscan runs on."""
    repo = os.path.join(tmp, "tiny")
    os.makedirs(repo, exist_ok=True)
    git(repo, "init", "-q")
    env = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com")
    for n in range(3):
        Path(repo, "app.py").write_text(f"VERSION = {n}\n")
        git(repo, "add", "app.py")
        git(repo, "commit", "-q", "-m", f"commit {n}", env=env)
    out = os.path.join(tmp, "tiny-keyscan.json")
    kcmd = [*keyscan, "scan", "--history", repo, "--format", "json", "-o", out]
    run_measured(kcmd, sample=False)  # the full scan that leaves the cache
    res = {"incremental": time_incremental(repo, kcmd, args, tmp, out)}
    python = Path(keyscan[0]).parent / "python"
    if python.exists():
        walls = [run_measured([str(python), "-c", "pass"], sample=False)["wall"]
                 for _ in range(2 * args.repeat + 1)]
        res["python"] = statistics.median(walls)
    return res


def median_run(runs: list[dict], memory: dict) -> dict:
    """The timed run with the median wall time, every timed run's wall time beside it,
    and the memory of one more run made with the sampler on."""
    med = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
    return dict(med, walls=[r["wall"] for r in runs],
                **{k: v for k, v in memory.items() if k.startswith("tree_")},
                maxrss_mb=max(r.get("maxrss_mb") or 0 for r in [*runs, memory]))


def table(results: list[dict]) -> str:
    lines = []
    lines.append("| repository | commits | blobs | blob bytes |")
    lines.append("|---|---:|---:|---:|")
    for r in results:
        s = r["stats"]
        lines.append(f"| {r['name']} | {s['commits']:,} | {s['blobs']:,} | "
                     f"{s['blob_bytes'] / 1e9:.2f} GB |")
    lines.append("")
    lines.append("| repository | command | wall (s) | × cat-file | max RSS 1 proc (MB) | "
                 "tree RSS (MB) | tree PSS (MB) | excl. git (MB) | findings |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        base = r["catfile"]["wall"]
        rows = [("cat-file --batch-all-objects (median of %d)" % len(r["catfile"]["walls"]),
                 r["catfile"])]
        if "logp" in r:
            rows.append(("git log -p --all", r["logp"]))
        if "betterleaks" in r:
            rows.append(("betterleaks git, AWS rules", r["betterleaks"]))
        if "keyscan" in r:
            rows.append(("keyscan scan --history (full, cold cache, median of %d)"
                         % len(r["keyscan"]["walls"]), r["keyscan"]))
        if "keyscan_git" in r:
            rows.append(("keyscan, all objects through git cat-file (KEYSCAN_READ_PACKS=0)",
                         r["keyscan_git"]))
        if "keyscan_incr" in r:
            rows.append(("keyscan scan --history (after 1 new commit, median of %d)"
                         % len(r["keyscan_incr"]["walls"]), r["keyscan_incr"]))
        for label, m in rows:
            rc = "" if m.get("rc", 0) in (0, 1) or label.startswith("betterleaks") \
                else f" (exit {m['rc']})"
            lines.append(f"| {r['name']} | {label}{rc} | "
                         f"{m['wall']:.{3 if m['wall'] < 1 else 2}f} | "
                         f"{m['wall'] / base:.2f} | {fmt(m.get('maxrss_mb'), '.0f')} | "
                         f"{fmt(m.get('tree_rss_mb'), '.0f')} | "
                         f"{fmt(m.get('tree_pss_mb'), '.0f')} | "
                         f"{fmt(m.get('tree_nogit_mb'), '.0f')} | "
                         f"{fmt(m.get('findings'), 'd')} |")
        if "keyscan_error" in r:
            lines.append(f"| {r['name']} | keyscan: {r['keyscan_error']} "
                         "| – | – | – | – | – | – | – |")
    lines.append("")
    lines.append("| repository | keyscan / cat-file (≤ 1.3) | betterleaks / keyscan (> 1; ≥ 2.5 "
                 "where betterleaks is slow) | incremental / full (≤ 3%) | "
                 "keyscan peak memory, whole process tree, PSS (≤ 250 MB) [RSS sum] |")
    lines.append("|---|---:|---:|---:|---:|")
    for r in results:
        k, ki, bl = r.get("keyscan"), r.get("keyscan_incr"), r.get("betterleaks")
        base = r["catfile"]["wall"]

        def mark(ok):
            return " ✅" if ok else " ❌"
        # the median of the ratios of each keyscan run to the cat-file run just before it
        ratio = statistics.median(r["pair_ratios"]) if r.get("pair_ratios") else (
            k["wall"] / base if k else None)
        c1 = f"{ratio:.2f}{mark(ratio <= 1.3)}" if ratio is not None else "n/a"
        # where betterleaks is slow (>= 3x git's own read), keyscan must be >= 2.5x faster
        slow = bl is not None and bl["wall"] >= 3 * base
        need = 2.5 if slow else 1.0
        c2 = (f"{bl['wall'] / k['wall']:.2f}{mark(bl['wall'] / k['wall'] >= need)}"
              f" (needs {'≥ 2.5' if slow else '> 1'})" if k and bl else "n/a")
        # the median of the ratios of each full run to the re-scans right after it
        inc = statistics.median(r["incr_pair_ratios"]) if r.get("incr_pair_ratios") else (
            ki["wall"] / k["wall"] if k and ki else None)
        c3 = f"{100 * inc:.1f}%{mark(inc <= 0.03)}" if inc is not None else "n/a"
        peak = tree = None
        if k:
            vals = [m.get("tree_pss_mb") or m.get("maxrss_mb") for m in (k, ki) if m]
            peak = max(v for v in vals if v is not None) if any(vals) else None
            tvals = [m.get("tree_rss_mb") for m in (k, ki) if m and m.get("tree_rss_mb")]
            tree = max(tvals) if tvals else None
        c4 = (f"{peak:.0f} MB{mark(peak <= 250)} [{fmt(tree, '.0f')} MB]"
              if peak is not None else "n/a")
        lines.append(f"| {r['name']} | {c1} | {c2} | {c3} | {c4} |")
    if results:
        bl_ratio = [f"{r['name']}: {r['betterleaks']['wall'] / r['catfile']['wall']:.1f}×"
                    for r in results if "betterleaks" in r]
        if bl_ratio:
            lines.append("")
            lines.append("betterleaks / cat-file: " + ", ".join(bl_ratio) + ".")
        pruned = [f"{r['name']}: {r.get('pruned', 0)}" for r in results]
        lines.append("")
        lines.append("Loose objects of earlier bench runs pruned before measuring (the "
                     "repositories as built): " + ", ".join(pruned) + ".")
    pairs = [f"{r['name']}: " + ", ".join(
        f"{k:.2f} / {c:.2f} s = {k / c:.2f}"
        for k, c in zip(r["keyscan"]["walls"], r["catfile"]["walls"], strict=True))
        for r in results if r.get("pair_ratios") and "keyscan" in r]
    if pairs:
        lines.append("")
        lines.append("keyscan / cat-file is the median of each full keyscan run over the "
                     "cat-file run just before it (keyscan / cat-file, in run order): "
                     + "; ".join(pairs) + ".")
    incr = [f"{r['name']}: " + ", ".join(
        f"{i * 1000:.0f} ms / {f:.2f} s = {100 * i / f:.1f}%" for f, i in r["incr_pairs"])
        for r in results if r.get("incr_pairs")]
    if incr:
        lines.append("")
        lines.append("incremental / full is the median, over the timed full runs, of the "
                     "median re-scan right after each (from the cache it left) over that "
                     "full run (in run order): " + "; ".join(incr) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repos", nargs="+")
    ap.add_argument("--incremental-repeat", type=int, default=7,
                    help="timed incremental re-scans (each ~0.1 s: more runs, a steadier "
                         "median on a VM whose speed drifts)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of cat-file and of each keyscan scan (median)")
    ap.add_argument("--git-path", action="store_true",
                    help="also time keyscan reading every object through git cat-file")
    ap.add_argument("--log-p", action="store_true", help="also time git log -p --all")
    ap.add_argument("--skip-betterleaks", action="store_true")
    ap.add_argument("--betterleaks", help="path to the betterleaks binary")
    ap.add_argument("--keyscan", help="keyscan command (default: the project installed "
                                      "into bench/work/venv-release, as users install it)")
    ap.add_argument("--editable", action="store_true",
                    help="use the running venv's keyscan instead (an editable install "
                         "starts slower: import hook, and no .pyc when "
                         "PYTHONDONTWRITEBYTECODE is set)")
    ap.add_argument("--keyscan-cache-glob", default="keyscan*",
                    help="entries under the git dir removed before the cold full scan")
    ap.add_argument("--keep-incremental", action="store_true",
                    help="keep refs/heads/bench/incremental after the run")
    ap.add_argument("--json", help="also write raw results here")
    ap.add_argument("--outputs", help="keep the tools' JSON reports in this directory")
    args = ap.parse_args()

    betterleaks = args.betterleaks or find_betterleaks()
    keyscan = args.keyscan.split() if args.keyscan else \
        find_keyscan() if args.editable else release_keyscan()
    if not betterleaks:
        log("betterleaks not found: skipping it")
    results = []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        if args.outputs:
            os.makedirs(args.outputs, exist_ok=True)
            tmp = args.outputs
        for repo in args.repos:
            repo = str(Path(repo).resolve())
            results.append(bench_repo(repo, args, betterleaks, keyscan, tmp))
        fixed = fixed_costs(keyscan, args, tmp) if keyscan else {}
    info = (f"Machine: {os.cpu_count()} cores; load average (1 min) {load0:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end; git {git('.', 'version').split()[-1]}; "
            f"betterleaks {subprocess.run([betterleaks, '--version'], capture_output=True, text=True).stdout.strip() if betterleaks else 'n/a'}; "
            f"{time.strftime('%Y-%m-%d %H:%M')}.")
    print(info + "\n")
    print(table(results))
    if fixed:
        print(f"Fixed cost of a re-scan, whatever the history: the same re-scan after one new "
              f"commit takes {fixed['incremental']['wall']:.3f} s on a 3-commit repository; "
              f"starting the interpreter alone (`python -c pass`) "
              f"{fmt(fixed.get('python'), '.3f')} s.")
        results.append({"name": "fixed-costs", **fixed})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
