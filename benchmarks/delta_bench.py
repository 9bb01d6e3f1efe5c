"""Delta chunks at process level: stored bytes and ingest/restore speed, with and without.

    python -m benchmarks.delta_bench [--workload finetune] [--scale-mb 200] [--runs 5] [--peers] [--automatic]

For each run (variants timed in rotation), a fresh repository is made with
`xetstore init` (and `--delta` for the delta variant); every file of every version
is added by its own `xetstore add` process, naming the same file of the version
before with `--earlier` (the delta variant; the plain one adds the same way
without it; with --automatic neither names one, and the delta repository looks
for bases itself among stored files of the same size, as under git-lfs); then every stored file is read back by `xetstore get` and compared.
Reports stored bytes (repository size on disk), ingest and restore throughput
(medians over --runs), and with --peers the stored bytes of restic, borg and
casync for the same versions. Tests never assert timings; this script measures.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xetstore.bench.systems import make_system
from xetstore.bench.systems.base import tree_bytes, tree_files
from xetstore.bench.workloads import default_cache_dir, materialize, versions

from .revisions import ROOT, compile_tree

_PEERS = ("restic", "borg", "casync")


def _xetstore(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "xetstore", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"xetstore {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def run_variant(workload: Path, work: Path, delta: bool, automatic: bool = False) -> dict[str, float]:
    """One fresh repository: add every version file by file, then get every file back."""
    repo = work / "repo"
    _xetstore("init", str(repo), *(["--delta"] if delta else []))
    stored: list[tuple[Path, str]] = []
    previous: dict[Path, str] = {}
    added = 0
    start = time.perf_counter()
    for version in versions(workload):
        for rel in tree_files(version):
            earlier = ["--earlier", previous[rel]] if delta and not automatic and rel in previous else []
            out = _xetstore("add", "-r", str(repo), "--json", "-q", *earlier, str(version / rel))
            previous[rel] = json.loads(out.splitlines()[0])["file_hash"]
            stored.append((version / rel, previous[rel]))
            added += (version / rel).stat().st_size
    ingest = time.perf_counter() - start
    start = time.perf_counter()
    for i, (_source, file_hash) in enumerate(stored):
        _xetstore("get", "-r", str(repo), "-q", "-o", str(work / f"out{i}"), file_hash)
    restore = time.perf_counter() - start
    for i, (source, _) in enumerate(stored):
        if not filecmp.cmp(source, work / f"out{i}", shallow=False):
            raise SystemExit(f"restored {source} differs")
    return {"stored": tree_bytes(repo), "ingest": added / ingest / 1e6, "restore": added / restore / 1e6, "input": added}


def peer_bytes(workload: Path, work: Path) -> dict[str, int]:
    out = {}
    for name in _PEERS:
        system = make_system(name)
        if system.missing():
            continue
        (work / name).mkdir(parents=True)
        system.setup(work / name)
        for version in versions(workload):
            system.add_version(version, version.name)
        out[name] = system.stored_bytes()
        system.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="finetune")
    ap.add_argument("--scale-mb", type=float, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--peers", action="store_true", help="also measure restic, borg and casync (stored bytes)")
    ap.add_argument("--automatic", action="store_true", help="name no earlier version: the repository finds bases")
    args = ap.parse_args()
    compile_tree(ROOT)  # every command is a new process: give it bytecode, as an installed copy has
    workload = materialize(args.workload, args.scale_mb, args.seed, default_cache_dir())
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="delta-bench-") as tmp:
        for run in range(args.runs):
            for delta in ((False, True) if run % 2 == 0 else (True, False)):
                work = Path(tmp) / f"{run}-{delta}"
                results[delta].append(run_variant(workload, work, delta, args.automatic))
                shutil.rmtree(work)
        _report(args.workload, workload, args.runs, results)
        for name, size in (peer_bytes(workload, Path(tmp) / "peers") if args.peers else {}).items():
            print(f"  {name}: stored {size / 1e6:8.2f} MB ({size / results[False][0]['input']:.3f} of input)", flush=True)


def _report(name: str, workload: Path, runs: int, results: dict[bool, list[dict[str, float]]]) -> None:
    total = results[False][0]["input"]
    print(f"workload {name}, {total / 1e6:.1f} MB over {len(versions(workload))} versions, {runs} runs")
    for delta in (False, True):
        rows = results[delta]
        med = {k: statistics.median(r[k] for r in rows) for k in ("stored", "ingest", "restore")}
        print(f"  xetstore {'delta' if delta else 'plain'}: stored {med['stored'] / 1e6:8.2f} MB "
              f"({med['stored'] / total:.3f} of input), ingest {med['ingest']:6.1f} MB/s, restore {med['restore']:6.1f} MB/s",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
