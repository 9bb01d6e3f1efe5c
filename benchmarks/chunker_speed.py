"""File hash throughput of the two chunkers, next to hf_xet measured on the same file in the same run.

    python -m benchmarks.chunker_speed [--size-mib 256] [--runs 5] [--one-core]

For a file of random bytes and a float32 "weights" file it reports, as medians of --runs, the
throughput of a whole file hash with the `xet` chunker and with `fastcdc` and of
`hf_xet.hash_files` (Hugging Face's Rust client), with ratios to hf_xet. `hash_stream` reads,
chunks, hashes every chunk (blake3), builds the merkle root and also computes the file's
sha256; hf_xet computes no sha256, so the `xet` chunker is also timed without it ("file hash
only": read + chunk + blake3 + merkle, the same work as hf_xet). It also checks that the `xet` file hash equals hf_xet's. With --one-core everything is
measured a second time pinned to a single CPU. The file is read from the page cache (one
warm-up read first). Tests never assert timings; this script only measures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from xetstore.bench.inputs import make_random, make_weights
from xetstore.chunking import iter_chunks, make_chunker
from xetstore.hashing import chunk_hash, file_hash, xet_hex
from xetstore.intake import hash_stream

MB = 1_000_000
BASELINE = "hf_xet.hash_files"


def rotation_times(contenders: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Seconds of each run of each contender, timed in rotation so that a change in
    machine load affects all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ours(path: Path, chunker: str) -> str:
    with open(path, "rb") as f:
        return hash_stream(f, chunker)[0]


def file_hash_only(path: Path, chunker: str) -> str:
    """The file hash without the sha256 that hash_stream adds."""
    with open(path, "rb") as f:
        chunks = [(chunk_hash(c), len(c)) for c in iter_chunks(f, make_chunker(chunker))]
    return xet_hex(file_hash(chunks))


def theirs(path: Path) -> str:
    import hf_xet

    return str(hf_xet.hash_files([str(path)])[0].hash)


def measure(path: Path, runs: int) -> dict[str, tuple[float, float]]:
    """(MB/s from the median time, median ratio to hf_xet) of each contender."""
    size = path.stat().st_size
    ours(path, "fastcdc")  # warm the page cache and the thread pool
    if not ours(path, "xet") == file_hash_only(path, "xet") == theirs(path):
        raise SystemExit(f"xet file hash of {path} differs from hf_xet's")
    times = rotation_times(
        {
            "xet chunker, file hash only": lambda: file_hash_only(path, "xet"),
            "xet chunker (hash_stream)": lambda: ours(path, "xet"),
            "fastcdc chunker (hash_stream)": lambda: ours(path, "fastcdc"),
            BASELINE: lambda: theirs(path),
        },
        runs,
    )
    return {
        name: (size / statistics.median(t) / MB, statistics.median(b / x for b, x in zip(times[BASELINE], t)))
        for name, t in times.items()
    }


def report(title: str, results: dict[str, tuple[float, float]]) -> None:
    print(f"\n## {title}\n")
    print("| file hash | MB/s | ratio to hf_xet (median of per-run ratios) |\n|---|---:|---:|")
    for name, (mbps, ratio) in results.items():
        print(f"| {name} | {mbps:.0f} | {ratio:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--one-core", action="store_true", help="also measure pinned to one CPU")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xetstore-bench-", dir=args.dir))
    size = args.size_mib << 20
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(f"# chunker speed, {args.size_mib} MiB files, median of {args.runs} runs, {len(cpus) or os.cpu_count()} CPUs")
    try:
        for name, make in (("random", make_random), ("float32 weights", make_weights)):
            path = work / "input.bin"
            make(path, size)
            report(name, measure(path, args.runs))
            if args.one_core and cpus:
                os.sched_setaffinity(0, cpus[:1])
                try:
                    report(f"{name}, one CPU", measure(path, args.runs))
                finally:
                    os.sched_setaffinity(0, cpus)
            path.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
