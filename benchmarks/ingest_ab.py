"""Ingest speed of another revision of xetstore against this checkout, runs interleaved.

    python -m benchmarks.ingest_ab --base REV [--workloads dataset,smallfiles] [--runs 5] [--scale 300] [--cache DIR]

The before/after figure of a change. REV is checked out into a temporary git worktree; for
each workload (generated as `xetstore bench` generates it, from the same cache) every version
is added, one `add_files` session per version, into a fresh folder repository, alternately
with REV's code and with this checkout's, --runs times each, each run in a new process. It
reports the median ingest MB/s of both and their ratio; alternating runs share the machine's
load swings. Stored bytes are compared too, since a speed change must not change them.
Tests never assert timings; this script only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from xetstore.bench.workloads import WORKLOADS, default_cache_dir, materialize

from .revisions import ROOT, add_worktree, compile_tree, remove_worktree

# Run in a child whose sys.path starts with one revision's tree.
_CHILD = """
import json, shutil, sys, tempfile, time
from pathlib import Path
from xetstore import Repository
work = Path(tempfile.mkdtemp())
repo = Repository.init(str(work / "repo"), cache_dir=work / "cache")
total, seconds = 0, 0.0
for version in sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir()):
    files = sorted(p for p in version.rglob("*") if p.is_file())
    total += sum(p.stat().st_size for p in files)
    start = time.perf_counter()
    repo.add_files(files)
    seconds += time.perf_counter() - start
stored = repo.stats().stored_bytes
repo.close()
shutil.rmtree(work)
print(json.dumps({"bytes": total, "seconds": seconds, "stored": stored}))
"""


def ingest(tree: Path, workload: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(workload)], env=env, cwd=tree, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    timings: dict[str, float] = json.loads(out.splitlines()[-1])
    return timings


def compare(base: Path, workload: Path, runs: int) -> dict[str, list[dict[str, float]]]:
    found: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
    for _ in range(runs):
        for name, tree in (("base", base), ("this", ROOT)):
            found[name].append(ingest(tree, workload))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=300.0, help="MB of logical data per workload")
    ap.add_argument("--cache", type=Path, default=None, help="where generated workloads are kept (as bench)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="xetstore-ab-")) / "base"
    add_worktree(base, args.base)
    compile_tree(ROOT)
    print(f"# ingest, {args.base} (base) against this checkout, median of {args.runs} interleaved runs\n")
    print("| workload | base MB/s | this MB/s | ratio | stored bytes |\n|---|---:|---:|---:|---|")
    try:
        for name in args.workloads.split(","):
            workload = materialize(name, args.scale, 1, args.cache or default_cache_dir())
            found = compare(base, workload, args.runs)
            rate = {k: statistics.median(r["bytes"] / r["seconds"] / 1e6 for r in v) for k, v in found.items()}
            same = {r["stored"] for r in found["base"]} == {r["stored"] for r in found["this"]}
            stored = "equal" if same else f"{found['base'][0]['stored']} -> {found['this'][0]['stored']}"
            print(f"| {name} | {rate['base']:.0f} | {rate['this']:.0f} | {rate['this'] / rate['base']:.2f} | {stored} |")
    finally:
        remove_worktree(base)
        shutil.rmtree(base.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
