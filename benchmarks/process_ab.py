"""Per-process ingest and restore of another revision of xetstore against this checkout.

    python -m benchmarks.process_ab --base REV [--this REV] [--workloads dataset,model] [--runs 5] [--scale 100] [--cache DIR]
                                    [--compact]

The process-level successor of `ingest_ab`: what a user's commands cost, start-up included.
REV is checked out into a temporary git worktree (so is --this, else this checkout is measured). For each workload (generated as `xetstore
bench` generates it, or a prepared real-data workload) every version is added by a fresh
`xetstore add -r REPO DIR` process into a new folder repository, then the last version is
restored by one fresh process (`Repository.open`, `read_files`; `read_file` per file for revisions before it), alternately with
REV's code and this checkout's, --runs times each; every command is timed from outside. It
reports median ingest and restore MB/s of both, their ratios, and whether the stored bytes
(and the restored files) are the same. With --compact, `xetstore compact` and `xetstore gc --grace 0`
run after the adds (each a process, timed apart, not in ingest), so the restore reads the compacted
layouts. Tests never assert timings; this script only measures.
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
import time
from pathlib import Path

from xetstore.bench.runner import verify_tree
from xetstore.bench.systems.base import tree_bytes, tree_files
from xetstore.bench.systems.processes import _RESTORE
from xetstore.bench.workloads import WORKLOADS, default_cache_dir, materialize, versions
from xetstore.bench.workloads.real import REAL_WORKLOADS, prepared

from .revisions import ROOT, add_worktree, compile_tree, remove_worktree

_CLI = "import sys; from xetstore.cli import main; sys.argv[0] = 'xetstore'; sys.exit(main())"


def _run(tree: Path, work: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "XETSTORE_CACHE": str(work / "cache")}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def one_run(tree: Path, workload: Path, compact: bool = False) -> dict[str, float]:
    """Add every version (a process each), maybe compact, restore the last (one process); MB/s and bytes."""
    work = Path(tempfile.mkdtemp(prefix="xetstore-pab-"))
    try:
        repo, vs = work / "repo", versions(workload)
        _run(tree, work, ["-c", _CLI, "init", "-q", str(repo)])
        ingest = sum(_run(tree, work, ["-c", _CLI, "add", "-q", "-r", str(repo), str(v)]) for v in vs)
        compacting = _compact(tree, work, repo) if compact else 0.0
        listing = _listing(tree, work, repo, vs[-1])
        dest = work / "restored"
        dest.mkdir()
        restore = _run(tree, work, ["-c", _RESTORE, str(repo), str(listing), str(dest)])
        if verify_tree(vs[-1], dest):
            raise RuntimeError(f"{tree}: restore of {vs[-1]} is not byte-identical")
        total = sum(tree_bytes(v) for v in vs)
        restored = tree_bytes(vs[-1]) / 1e6 / restore
        return {"ingest": total / 1e6 / ingest, "restore": restored, "compact": compacting, "stored": tree_bytes(repo)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compact(tree: Path, work: Path, repo: Path) -> float:
    """Seconds of `xetstore compact`, then the replaced layouts removed (untimed), as the bench does."""
    seconds = _run(tree, work, ["-c", _CLI, "compact", "-q", "-r", str(repo)])
    _run(tree, work, ["-c", _CLI, "gc", "-q", "--grace", "0", "--no-dry-run", "-r", str(repo)])
    return seconds


def _listing(tree: Path, work: Path, repo: Path, version: Path) -> Path:
    """[relative path, file hash] of the last version, from `xetstore hash` (not timed)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "XETSTORE_CACHE": str(work / "cache")}
    out = subprocess.run([sys.executable, "-c", _CLI, "hash", "--json", str(version)], cwd=work, env=env,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    rels = {str(version / rel): rel.as_posix() for rel in tree_files(version)}
    listing = [[rels[item["path"]], item["file_hash"]] for item in map(json.loads, out.splitlines())]
    path = work / "listing.json"
    path.write_text(json.dumps(listing))
    return path


def _workload(name: str, scale: float, cache: Path) -> Path | None:
    if name in REAL_WORKLOADS:
        return prepared(name, cache)
    return materialize(name, scale, 1, cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--this", dest="this_rev", help="a git revision to measure instead of this checkout")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=100.0, help="MB of logical data per generated workload")
    ap.add_argument("--cache", type=Path, default=None, help="where workloads are kept (as bench)")
    ap.add_argument("--compact", action="store_true", help="compact and gc after the adds (compact s reported)")
    args = ap.parse_args()
    cache = args.cache or default_cache_dir()
    trees = Path(tempfile.mkdtemp(prefix="xetstore-pab-"))
    base, this = trees / "base", (trees / "this" if args.this_rev else ROOT)
    for tree, rev in ((base, args.base), (this, args.this_rev)):
        if rev:
            add_worktree(tree, rev)
    compile_tree(ROOT)
    what = args.this_rev or "this checkout"
    print(f"# per process: {args.base} (base) against {what}, median of {args.runs} interleaved runs\n")
    print("| workload | ingest MB/s base | this | ratio | restore MB/s base | this | ratio | compact s base | this | stored bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    try:
        for name in args.workloads.split(","):
            workload = _workload(name, args.scale, cache)
            if workload is None:
                print(f"| {name} | not prepared (python -m xetstore.bench.workloads.real) |||||||||")
                continue
            found: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
            for _ in range(args.runs):
                for side, tree in (("base", base), ("this", this)):
                    found[side].append(one_run(tree, workload, args.compact))
            keys = ("ingest", "restore", "compact")
            med = {s: {k: statistics.median(r[k] for r in rs) for k in keys} for s, rs in found.items()}
            stored = {r["stored"] for r in found["base"]}, {r["stored"] for r in found["this"]}
            same = "equal" if stored[0] == stored[1] else f"{min(stored[0]):.0f} -> {min(stored[1]):.0f}"
            b, t = med["base"], med["this"]
            print(f"| {name} | {b['ingest']:.1f} | {t['ingest']:.1f} | {t['ingest'] / b['ingest']:.2f} | "
                  f"{b['restore']:.1f} | {t['restore']:.1f} | {t['restore'] / b['restore']:.2f} | "
                  f"{b['compact']:.1f} | {t['compact']:.1f} | {same} |", flush=True)  # fmt: skip
    finally:
        for tree in (base, this):
            if tree != ROOT:
                remove_worktree(tree)
        shutil.rmtree(trees, ignore_errors=True)


if __name__ == "__main__":
    main()
