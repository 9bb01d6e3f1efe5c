"""git push and git clone of a versioned model file: xetstore's agent against plain git-lfs.

    python -m benchmarks.lfs_push [--size-mib 256] [--versions 3] [--runs 3] [--dir PATH] [--remote-dir PATH]

A float32 weight matrix of --size-mib is committed in --versions versions, each a copy of the
last with a few rows changed (what a fine-tune step or a partial retrain does), and pushed
after each commit, then cloned fresh. The same history goes once through xetstore (the agent,
zero-setup: `xetstore lfs install` + committed .lfsconfig) and once through plain git-lfs to a
file:// bare remote (git-lfs's built-in standalone file transfer, which stores whole objects in
the remote's lfs/objects). Reported, as medians of --runs: bytes each stores, the sum of the
push times, and the clone time, with xetstore / plain-git-lfs ratios.

Note: plain git-lfs hard-links objects into (and out of) a file:// remote on the same
filesystem, so its push and fetch cost almost nothing there; put the remotes on another
filesystem with --remote-dir (e.g. /dev/shm) to make it copy, as every real remote must.
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
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from xetstore import Repository

ROW = 4096  # float32 columns per row: 16 KiB rows
CHANGED_ROWS = 48  # rows changed per version


@dataclass
class Run:
    stored_bytes: int
    push_seconds: float  # all pushes
    first_push_seconds: float  # the first version: all data new
    clone_seconds: float


def write_versions(folder: Path, size: int, versions: int) -> list[Path]:
    """Version 1 is random weights; each next one changes CHANGED_ROWS random rows."""
    rng = np.random.default_rng(7)
    rows = size // (ROW * 4)
    weights = rng.normal(0.0, 0.02, (rows, ROW)).astype("<f4")
    paths = []
    for v in range(versions):
        if v:
            picked = rng.choice(rows, CHANGED_ROWS, replace=False)
            weights[picked] += rng.normal(0.0, 0.001, (CHANGED_ROWS, ROW)).astype("<f4")
        path = folder / f"weights-v{v + 1}.bin"
        weights.tofile(path)
        paths.append(path)
    return paths


class Machine:
    """A HOME with its own git config, as one user."""

    def __init__(self, root: Path, agent: bool) -> None:
        self.home = root / "home"
        self.home.mkdir(parents=True)
        self.env = {"PATH": os.environ["PATH"], "HOME": str(self.home), "GIT_CONFIG_NOSYSTEM": "1",
                    "XETSTORE_CACHE": str(root / "cache"), "LANG": "C.UTF-8"}  # fmt: skip
        for key, value in (("user.name", "bench"), ("user.email", "bench@example.com"), ("init.defaultBranch", "main")):
            self.git("config", "--global", key, value)
        self.git("lfs", "install")
        if agent:
            self.run([sys.executable, "-m", "xetstore", "lfs", "install"])

    def run(self, args: list[str], cwd: Path | None = None) -> None:
        done = subprocess.run(args, cwd=cwd or self.home, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{args} failed:\n{done.stdout}{done.stderr}")

    def git(self, *args: str, cwd: Path | None = None) -> None:
        self.run(["git", *args], cwd)

    def timed_git(self, *args: str, cwd: Path | None = None) -> float:
        start = time.perf_counter()
        self.git(*args, cwd=cwd)
        return time.perf_counter() - start


def run_once(root: Path, remotes: Path, versions: list[Path], with_xetstore: bool) -> Run:
    """One history through one system; `remotes` holds the bare git remote and the repository."""
    machine = Machine(root, agent=with_xetstore)
    remote, work, xet = remotes / "remote.git", root / "work", remotes / "xet repository"
    machine.git("init", "--bare", str(remote))
    machine.git("init", str(work))
    (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    if with_xetstore:
        machine.run([sys.executable, "-m", "xetstore", "init", str(xet)])
        machine.run([sys.executable, "-m", "xetstore", "lfs", "init", str(xet)], cwd=work)
    machine.git("remote", "add", "origin", remote.as_uri(), cwd=work)
    pushes = []
    for n, version in enumerate(versions):
        shutil.copyfile(version, work / "model.bin")
        machine.git("add", "-A", cwd=work)
        machine.git("commit", "-q", "-m", f"v{n + 1}", cwd=work)
        pushes.append(machine.timed_git("push", "-q", "origin", "main", cwd=work))
    clone = machine.timed_git("clone", "-q", remote.as_uri(), str(root / "clone"))
    if (root / "clone" / "model.bin").read_bytes() != versions[-1].read_bytes():
        raise SystemExit("the clone differs from the last version")
    if with_xetstore:
        with Repository.open(str(xet), cache_dir=root / "stats-cache") as repo:
            stored = repo.stats().stored_bytes
    else:
        stored = sum(p.stat().st_size for p in (remote / "lfs" / "objects").rglob("*") if p.is_file())
    return Run(stored, sum(pushes), pushes[0], clone)


def median_run(runs: list[Run]) -> Run:
    fields = ("stored_bytes", "push_seconds", "first_push_seconds", "clone_seconds")
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in fields))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where working copies and clones go")
    parser.add_argument("--remote-dir", type=Path, default=None, help="where remotes go (default: --dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="xetstore-lfs-bench-", dir=args.dir))
    remote_base = Path(tempfile.mkdtemp(prefix="xetstore-lfs-bench-", dir=args.remote_dir or base))
    try:
        versions = write_versions(base, args.size_mib << 20, args.versions)
        results: dict[str, list[Run]] = {"xetstore": [], "git-lfs": []}
        for n in range(args.runs):
            for name in results:  # alternate, so drift in machine load hits both
                root, remotes = base / f"{name}-{n}", remote_base / f"{name}-{n}"
                remotes.mkdir()
                results[name].append(run_once(root, remotes, versions, name == "xetstore"))
                shutil.rmtree(root)
                shutil.rmtree(remotes)
        report(args, {name: median_run(runs) for name, runs in results.items()})
    finally:
        shutil.rmtree(remote_base, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def report(args: argparse.Namespace, medians: dict[str, Run]) -> None:
    xet, plain = medians["xetstore"], medians["git-lfs"]
    logical = args.versions * (args.size_mib << 20)
    print(f"{args.versions} versions of a {args.size_mib} MiB float32 file ({CHANGED_ROWS} rows of {ROW} changed "
          f"per version), pushed one by one, then cloned; medians of {args.runs} runs")  # fmt: skip
    print(f"{'':<10} {'stored MB':>10} {'push s':>8} {'(first)':>8} {'clone s':>8}")
    for name, r in medians.items():
        print(f"{name:<10} {r.stored_bytes / 1e6:>10.1f} {r.push_seconds:>8.2f} {r.first_push_seconds:>8.2f} "
              f"{r.clone_seconds:>8.2f}")  # fmt: skip
    ratios = {
        "stored_ratio": xet.stored_bytes / plain.stored_bytes,
        "push_ratio": xet.push_seconds / plain.push_seconds,
        "clone_ratio": xet.clone_seconds / plain.clone_seconds,
    }
    print("xetstore / git-lfs: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(json.dumps({"logical_bytes": logical, **{k: asdict(v) for k, v in medians.items()}, **ratios}))


if __name__ == "__main__":
    main()
