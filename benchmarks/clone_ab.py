"""`git clone` through xetstore's git-lfs agent: another revision against this checkout.

    python -m benchmarks.clone_ab --base REV [--workloads release,real-model] [--runs 7] [--scale 100] [--cache DIR]

Every version of a workload is committed and pushed once through the bench's
`xetstore-git` system (real git and git-lfs, a folder repository), with this
checkout's code. Then the last version is cloned --runs times by each side,
alternately: the agent git-lfs starts imports REV's code (a worktree on
PYTHONPATH) or this checkout's, so the clone times differ only by what the agent
does. Each clone is checked byte-identical. Tests never assert timings; this
script only measures.
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
    args = ap.parse_args()
    cache = args.cache or default_cache_dir()
    trees = Path(tempfile.mkdtemp(prefix="xetstore-cab-"))
    base = add_worktree(trees / "base", args.base)
    compile_tree(ROOT)
    print(f"# git clone through the agent: {args.base} (base) against this checkout, median of {args.runs} interleaved runs\n")
    print("| workload | clone ms base | this | ratio |")
    print("|---|---:|---:|---:|")
    try:
        for name in args.workloads.split(","):
            workload = prepared(name, cache) if name in REAL_WORKLOADS else materialize(name, args.scale, 1, cache)
            if workload is None:
                print(f"| {name} | not prepared (python -m xetstore.bench.workloads.real) | | |")
                continue
            found = clone_times(workload, base, args.runs, trees / name)
            b, t = (statistics.median(found[s]) * 1000 for s in ("base", "this"))
            print(f"| {name} | {b:.0f} | {t:.0f} | {b / t:.2f} |", flush=True)
    finally:
        remove_worktree(base)
        shutil.rmtree(trees, ignore_errors=True)


if __name__ == "__main__":
    main()
