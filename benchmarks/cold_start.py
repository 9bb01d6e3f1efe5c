"""Start-up cost of the commands a user types, for this checkout or against another revision.

    python -m benchmarks.cold_start [--base REV] [--runs 11]

Each command runs as a fresh process (`python -c` doing what the installed `xetstore`
script does) against a small folder repository made once, and its wall time is taken from
the outside; `Repository.open` is timed inside a process after `import xetstore`, so it
includes the engine modules it imports on first use. With --base, REV is checked out into a temporary git worktree and its runs
alternate with this checkout's, so both see the same machine load; the table gives the
median of --runs runs and the ratio. Tests never assert timings; this script only measures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .revisions import ROOT, add_worktree, compile_tree, remove_worktree

_SCRIPT = "import sys; from xetstore.cli import main; sys.argv[0] = 'xetstore'; sys.exit(main())"
_OPEN = """
import sys, time
import xetstore
start = time.perf_counter()
xetstore.Repository.open(sys.argv[1], cache_dir=sys.argv[2]).close()
print(time.perf_counter() - start)
"""


def commands(repo: Path, cache: Path) -> dict[str, list[str]]:
    """Name -> argv of each measured command."""
    cli = [sys.executable, "-c", _SCRIPT]
    return {
        "xetstore --version": [*cli, "--version"],
        "xetstore ls": [*cli, "ls", "-r", str(repo)],
        "xetstore stats": [*cli, "stats", "-r", str(repo)],
        "import xetstore": [sys.executable, "-c", "import xetstore"],
        "python (nothing)": [sys.executable, "-c", "pass"],
    }


def wall(argv: list[str], tree: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, check=True, capture_output=True)
    return time.perf_counter() - start


def open_seconds(tree: Path, repo: Path, cache: Path, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", _OPEN, str(repo), str(cache)], cwd=tree,
                         env={**env, "PYTHONPATH": str(tree)}, check=True, capture_output=True, text=True)  # fmt: skip
    return float(out.stdout.split()[-1])


def make_repository(work: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A small folder repository (a few files) and its cache, made with this checkout.

    The commands use $XETSTORE_CACHE (set by the caller), whose index the first run builds."""
    repo, cache = work / "repo", work / "cache"
    for n in range(5):
        (work / f"f{n}.bin").write_bytes(os.urandom(200_000) + bytes(100_000))
    setup = f"from xetstore import Repository\nr = Repository.init({str(repo)!r}, cache_dir={str(cache)!r})\n"
    setup += f"r.add_files(sorted(__import__('pathlib').Path({str(work)!r}).glob('f*.bin')))\nr.close()\n"
    subprocess.run([sys.executable, "-c", setup], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, check=True)
    return repo, cache


def measure(trees: dict[str, Path], runs: int) -> dict[str, dict[str, list[float]]]:
    work = Path(tempfile.mkdtemp(prefix="xetstore-cold-"))
    env = {**os.environ, "XETSTORE_CACHE": str(work / "cache-root")}
    try:
        repo, cache = make_repository(work, env)
        found: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
        for _ in range(runs):
            for name, tree in trees.items():
                for label, argv in commands(repo, cache).items():
                    found[name].setdefault(label, []).append(wall(argv, tree, env))
                found[name].setdefault("Repository.open (after import xetstore)", []).append(open_seconds(tree, repo, cache, env))
        return found
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="git revision to compare against")
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args()
    trees = {"this": ROOT}
    base_dir = None
    if args.base:
        base_dir = Path(tempfile.mkdtemp(prefix="xetstore-cold-base-")) / "base"
        trees = {"base": add_worktree(base_dir, args.base), "this": ROOT}
    compile_tree(ROOT)
    try:
        found = measure(trees, args.runs)
    finally:
        if base_dir is not None:
            remove_worktree(base_dir)
    print(f"# start-up wall time, median of {args.runs} interleaved runs, ms\n")
    names = list(trees)
    print("| command | " + " | ".join(names) + (" | this / base |" if args.base else " |"))
    print("|---|" + "---:|" * (len(names) + (1 if args.base else 0)))
    for label in found["this"]:
        medians = [statistics.median(found[n][label]) * 1000 for n in names]
        ratio = f" | {medians[1] / medians[0]:.2f}" if args.base else ""
        print(f"| {label} | " + " | ".join(f"{m:.0f}" for m in medians) + ratio + " |")


if __name__ == "__main__":
    main()
