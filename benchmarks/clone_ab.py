"""`git clone` (and `git push`) through xetstore's git-lfs agent: another revision against this checkout.

    python -m benchmarks.clone_ab --base REV [--workloads release,real-model] [--runs 7] [--scale 100] [--cache DIR] [--push]

Every version of a workload is committed and pushed once through the bench's
`xetstore-git` system (real git and git-lfs, a folder repository), with this
checkout's code. Then the last version is cloned --runs times by each side,
alternately: the agent git-lfs starts imports REV's code (a worktree on
PYTHONPATH) or this checkout's, so the clone times differ only by what the agent
does. Each clone is checked byte-identical. With --push, each run also pushes
every version into a new git repository and xetstore repository per side, the
agent importing that side's code, and the table gives the sum of those pushes.
Tests never assert timings; this script only measures.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from xetstore.bench.runner import verify_tree
from xetstore.bench.systems.git import XetstoreGit
from xetstore.bench.workloads import default_cache_dir, materialize, versions
from xetstore.bench.workloads.real import REAL_WORKLOADS, prepared

from .revisions import ROOT, add_worktree, compile_tree, remove_worktree


def clone_times(workload: Path, base: Path, runs: int, work: Path) -> dict[str, list[float]]:
    """Seconds of each side's clones of the workload's last version, pushed once."""
    vs = versions(workload)
    (work / "w").mkdir(parents=True)
    system = XetstoreGit()
    system.setup(work / "w")
    try:
        for v in vs:
            system.prepare_version(v, v.name)
            system.add_version(v, v.name)
        env = dict(system.env)
        found: dict[str, list[float]] = {"base": [], "this": []}
        for i in range(runs):
            for side in found:
                system.env = {**env, "PYTHONPATH": str(base)} if side == "base" else env
                found[side].append(_clone(system, vs[-1], work / f"clone-{i}-{side}"))
        return found
    finally:
        system.close()


def push_times(workload: Path, base: Path, runs: int, work: Path) -> dict[str, list[float]]:
    """Seconds of each side's pushes of every version, into new repositories each run."""
    found: dict[str, list[float]] = {"base": [], "this": []}
    for i in range(runs):
        for side in found:
            found[side].append(_push_all(versions(workload), base if side == "base" else None, work / f"push-{i}-{side}"))
    return found


def _push_all(vs: list[Path], pythonpath: Path | None, work: Path) -> float:
    work.mkdir(parents=True)
    system = XetstoreGit()
    system.setup(work)
    if pythonpath is not None:
        system.env = {**system.env, "PYTHONPATH": str(pythonpath)}
    try:
        seconds = 0.0
        for v in vs:
            system.prepare_version(v, v.name)  # git add and commit: git-lfs's clean filter, not the agent
            start = time.perf_counter()
            system.add_version(v, v.name)
            seconds += time.perf_counter() - start
        return seconds
    finally:
        system.close()
        shutil.rmtree(work, ignore_errors=True)


def _clone(system: XetstoreGit, version: Path, dest: Path) -> float:
    shutil.rmtree(system.workdir / "clone.git", ignore_errors=True)  # the clone's git dir, outside dest
    start = time.perf_counter()
    system.restore(version.name, dest)
    seconds = time.perf_counter() - start
    if verify_tree(version, dest):
        raise RuntimeError(f"a clone of {version} is not byte-identical")
    shutil.rmtree(dest)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--workloads", default="release,model")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--scale", type=float, default=100.0, help="MB of logical data per generated workload")
    ap.add_argument("--cache", type=Path, default=None, help="where workloads are kept (as bench)")
    ap.add_argument("--push", action="store_true", help="also time every version's push, per side")
    args = ap.parse_args()
    cache = args.cache or default_cache_dir()
    trees = Path(tempfile.mkdtemp(prefix="xetstore-cab-"))
    base = add_worktree(trees / "base", args.base)
    compile_tree(ROOT)
    print(f"# git clone through the agent: {args.base} (base) against this checkout, median of {args.runs} interleaved runs\n")
    print("| workload | clone ms base | this | ratio |" + (" push ms base | this | ratio |" if args.push else ""))
    print("|---|---:|---:|---:|" + ("---:|---:|---:|" if args.push else ""))
    try:
        for name in args.workloads.split(","):
            workload = prepared(name, cache) if name in REAL_WORKLOADS else materialize(name, args.scale, 1, cache)
            if workload is None:
                print(f"| {name} | not prepared (python -m xetstore.bench.workloads.real) | | |")
                continue
            row = _cells(clone_times(workload, base, args.runs, trees / name))
            if args.push:
                row += _cells(push_times(workload, base, args.runs, trees / f"{name}-push"))
            print(f"| {name} |{row}", flush=True)
    finally:
        remove_worktree(base)
        shutil.rmtree(trees, ignore_errors=True)


def _cells(found: dict[str, list[float]]) -> str:
    """Median ms of each side and base/this (above 1: this checkout is faster)."""
    b, t = (statistics.median(found[side]) * 1000 for side in ("base", "this"))
    return f" {b:.0f} | {t:.0f} | {b / t:.2f} |"


if __name__ == "__main__":
    main()
