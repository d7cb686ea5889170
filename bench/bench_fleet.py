#!/usr/bin/env python3
"""Fleet audit benchmark (issue 7): the same repositories scanned

* one after another in a single process (scan_history, the baseline),
* by `keyscan audit` on a running Dask cluster of 1 worker, then of 2 workers
  (`--scheduler`: the steady state, cluster start-up excluded),
* by `keyscan audit --workers N` end to end (a LocalCluster started and stopped).

Every run starts without incremental caches (.git/keyscan removed), so each one reads
every object. Each configuration runs --rounds times, interleaved; the median counts.
Prints a Markdown table and writes bench/work/fleet/results.json.

    bench/build_fleet.sh                       # the repositories (once, ~2 minutes)
    .venv/bin/python bench/bench_fleet.py      # ~2 minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "fleet"
KEYSCAN = Path(sys.executable).parent / "keyscan"


def repositories(listing: Path) -> list[Path]:
    return [Path(line) for line in listing.read_text().split() if line]


def cpu_seconds() -> float:
    """CPU time of this process and of every child process it has waited for (their
    children included): robust to other load on the machine, unlike wall time."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def clear_caches(repos: list[Path]) -> None:
    for repo in repos:
        shutil.rmtree(repo / ".git" / "keyscan", ignore_errors=True)


def sequential(repos: list[Path]) -> dict[str, float]:
    """The baseline: one process, one repository after another, as the audit scans each."""
    from keyscan.history import HistoryOptions, scan_history
    from keyscan.rules import load_rules
    from keyscan.scan import ScanOptions

    clear_caches(repos)
    started, cpu = time.perf_counter(), cpu_seconds()
    rules = load_rules()
    total = 0
    for repo in repos:
        result = scan_history(repo, rules, ScanOptions(),
                              HistoryOptions(progress=False, workers=1))
        total += result.stats.bytes
    return {"seconds": time.perf_counter() - started, "bytes": total,
            "cpu": cpu_seconds() - cpu}


def audit(repos: list[Path], listing: Path, *how: str) -> dict[str, float]:
    clear_caches(repos)
    status = WORK / "status.json"
    started, cpu = time.perf_counter(), cpu_seconds()
    proc = subprocess.run([str(KEYSCAN), "audit", "--repos", str(listing), "--workdir",
                           str(WORK / "workdir"), "-o", str(WORK / "findings.jsonl"),
                           "--status", str(status), "--no-progress", *how],
                          capture_output=True, text=True, check=False)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    if proc.returncode not in (0, 1):
        raise SystemExit(f"keyscan audit failed: {proc.stderr}")
    summary = json.loads(status.read_text())["summary"]
    assert summary["by_status"] == {"scanned": len(repos)}, summary
    # on a running cluster the workers are not our children: their CPU is not counted
    return {"seconds": seconds, "bytes": summary["bytes"], "cpu": cpu}


def on_cluster(repos: list[Path], listing: Path, workers: int) -> dict[str, float]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        audit(repos, listing, "--scheduler", cluster.scheduler_address)  # warm the workers
        return audit(repos, listing, "--scheduler", cluster.scheduler_address)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repos", type=Path, default=WORK / "repos.txt")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    repos = repositories(args.repos)
    runs: dict[str, list[dict[str, float]]] = {}
    configs: dict[str, Any] = {
        "sequential, 1 process": lambda: sequential(repos),
        "audit, running cluster, 1 worker": lambda: on_cluster(repos, args.repos, 1),
        "audit, running cluster, 2 workers": lambda: on_cluster(repos, args.repos, 2),
        "audit --workers 1 (end to end)": lambda: audit(repos, args.repos, "--workers", "1"),
        "audit --workers 2 (end to end)": lambda: audit(repos, args.repos, "--workers", "2"),
    }
    for round_ in range(args.rounds):
        for name, run in configs.items():
            runs.setdefault(name, []).append(run())
            print(f"round {round_ + 1}: {name}: {runs[name][-1]['seconds']:.2f} s",
                  file=sys.stderr)
    table = summarise(runs, len(repos))
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "results.json").write_text(json.dumps({"runs": runs, "table": table}, indent=2))
    print(markdown(table))


def summarise(runs: dict[str, list[dict[str, float]]], count: int) -> list[dict[str, Any]]:
    base = statistics.median(r["seconds"] for r in runs["sequential, 1 process"])
    one = statistics.median(r["seconds"] for r in runs["audit, running cluster, 1 worker"])
    rows = []
    for name, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        mb = results[0]["bytes"] / 1e6
        cpu = statistics.median(r["cpu"] for r in results)
        rows.append({"config": name, "seconds": seconds, "cpu": cpu, "repos_per_s": count / seconds,
                     "mb_per_s": mb / seconds, "vs_sequential": seconds / base,
                     "speedup_vs_1_worker": one / seconds, "mb": mb,
                     "all": [round(r["seconds"], 2) for r in results]})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| configuration | wall s (median) | repos/s | MB/s | time vs sequential "
             "| speed-up vs 1 worker | CPU s | runs (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['seconds']:.2f} | {r['repos_per_s']:.2f} | "
                     f"{r['mb_per_s']:.0f} | {r['vs_sequential']:.3f} | "
                     f"{r['speedup_vs_1_worker']:.2f} | "
                     f"{r['cpu']:.1f}{'' if 'end' in r['config'] or 'seq' in r['config'] else '*'}"
                     f" | {', '.join(map(str, r['all']))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
