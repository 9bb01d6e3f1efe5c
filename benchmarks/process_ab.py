"""Per-process ingest and restore of another revision of xetstore against this checkout.

    python -m benchmarks.process_ab --base REV [--this REV] [--workloads dataset,model] [--runs 5] [--scale 100] [--cache DIR]
                                    [--compact] [--tags]

The process-level successor of `ingest_ab`: what a user's commands cost, start-up included.
REV is checked out into a temporary git worktree (so is --this, else this checkout is measured). For each workload (generated as `xetstore
bench` generates it, or a prepared real-data workload) every version is added by a fresh
`xetstore add -r REPO DIR` process into a new folder repository, then the last version is
restored by one fresh process (`Repository.open`, `read_files`; `read_file` per file for revisions before it), alternately with
REV's code and this checkout's, --runs times each; every command is timed from outside. It
reports median ingest and restore MB/s of both, their ratios, and whether the stored bytes
(and the restored files) are the same. With --compact, `xetstore compact` and `xetstore gc --grace 0`
run after the adds (each a process, timed apart, not in ingest), so the restore reads the compacted
layouts. With --tags, each version is added as `xetstore add --tag vNN .` from inside it (as the
bench's xetstore-cli does), and the last is also restored by `xetstore restore vNN` (command
restore, verified too). Tests never assert timings; this script only measures.
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


def _run(tree: Path, work: Path, args: list[str], cwd: Path | None = None) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "XETSTORE_CACHE": str(work / "cache")}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd or work, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def one_run(tree: Path, workload: Path, compact: bool = False, tags: bool = False) -> dict[str, float]:
    """Add every version (a process each), maybe compact, restore the last (one process;
    with `tags` a second by `xetstore restore`); MB/s and bytes."""
    work = Path(tempfile.mkdtemp(prefix="xetstore-pab-"))
    try:
        repo, vs = work / "repo", versions(workload)
        _run(tree, work, ["-c", _CLI, "init", "-q", str(repo)])
        ingest = sum(_add(tree, work, repo, v, tags) for v in vs)
        compacting = _compact(tree, work, repo) if compact else 0.0
        listing = _listing(tree, work, repo, vs[-1])
        restore = _verified(tree, work, vs[-1], ["-c", _RESTORE, str(repo), str(listing)], "restored")
        command = ["-c", _CLI, "restore", "-q", "-r", str(repo), vs[-1].name]
        by_command = _verified(tree, work, vs[-1], command, "restored-by-command") if tags else 0.0
        mb = tree_bytes(vs[-1]) / 1e6
        return {"ingest": sum(tree_bytes(v) for v in vs) / 1e6 / ingest, "restore": mb / restore,
                "command": mb / by_command if by_command else 0.0, "compact": compacting, "stored": tree_bytes(repo)}  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _add(tree: Path, work: Path, repo: Path, version: Path, tags: bool) -> float:
    if tags:  # from inside the version: the snapshot's paths are its own
        return _run(tree, work, ["-c", _CLI, "add", "-q", "--tag", version.name, "-r", str(repo), "."], cwd=version)
    return _run(tree, work, ["-c", _CLI, "add", "-q", "-r", str(repo), str(version)])


def _verified(tree: Path, work: Path, version: Path, args: list[str], folder: str) -> float:
    """Seconds of a restore process writing `version` into work/folder (its last argument), checked."""
    dest = work / folder
    dest.mkdir()
    seconds = _run(tree, work, [*args, str(dest)])
    if verify_tree(version, dest):
        raise RuntimeError(f"{tree}: {folder} of {version} is not byte-identical")
    return seconds


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
    ap.add_argument("--tags", action="store_true", help="add with --tag and also time `xetstore restore TAG`")
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
    print("| workload | ingest MB/s base | this | ratio | restore MB/s base | this | ratio | command restore MB/s base | this "
          "| ratio | compact s base | this | stored bytes |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    try:
        for name in args.workloads.split(","):
            workload = _workload(name, args.scale, cache)
            if workload is None:
                print(f"| {name} | not prepared (python -m xetstore.bench.workloads.real) |||||||||")
                continue
            found: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
            for _ in range(args.runs):
                for side, tree in (("base", base), ("this", this)):
                    found[side].append(one_run(tree, workload, args.compact, args.tags))
            print(_row(name, found), flush=True)
    finally:
        for tree in (base, this):
            if tree != ROOT:
                remove_worktree(tree)
        shutil.rmtree(trees, ignore_errors=True)


def _row(name: str, found: dict[str, list[dict[str, float]]]) -> str:
    keys = ("ingest", "restore", "command", "compact")
    med = {s: {k: statistics.median(r[k] for r in rs) for k in keys} for s, rs in found.items()}
    stored = {r["stored"] for r in found["base"]}, {r["stored"] for r in found["this"]}
    same = "equal" if stored[0] == stored[1] else f"{min(stored[0]):.0f} -> {min(stored[1]):.0f}"
    b, t = med["base"], med["this"]
    cells = [name]
    for k in ("ingest", "restore", "command"):
        cells += [f"{b[k]:.1f}", f"{t[k]:.1f}", f"{t[k] / b[k]:.2f}" if b[k] else "n/a"]
    return "| " + " | ".join([*cells, f"{b['compact']:.1f}", f"{t['compact']:.1f}", same]) + " |"


if __name__ == "__main__":
    main()
