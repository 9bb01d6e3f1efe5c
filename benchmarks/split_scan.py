"""The most that splitting one file's chunk + hash across processes could give here.

    python -m benchmarks.split_scan [--size-mib 512] [--runs 3] [--processes 2] [--segment-mib 16]

Chunking holds the GIL, so one way past a single core is to chunk a large file in several
processes and reconcile the boundaries at the seams. Before any reconciliation is written,
this measures its upper bound: worker processes (started before timing) each read, chunk
(fastcdc) and blake3 one segment of a random file, while this process takes the file's
sha256 on a thread: the work of `hash_stream`, minus the merkle root and the seams, which
would only add to it. It reports, as medians of --runs timed in rotation, both throughputs
and their ratio. If the ratio is not well above 1, the split is not worth building on this
machine. Tests never assert timings; this script only measures.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import statistics
import tempfile
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from xetstore.bench.inputs import make_random
from xetstore.chunking import make_chunker
from xetstore.hashing import chunk_hashes
from xetstore.intake import hash_stream
from xetstore.params import MAX_CHUNK

from .chunker_speed import rotation_times

MB = 1_000_000


def scan_segment(path: str, start: int, stop: int) -> int:
    """Chunk + blake3 the bytes [start, stop) as if `start` were a boundary; the chunk count."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(stop - start)
    ends = make_chunker("fastcdc").cut_points(memoryview(data), final=True)
    return len(chunk_hashes(data, list(ends)))


def one_process(path: str) -> str:
    with open(path, "rb") as f:
        return hash_stream(f)[0]


def sha256_of(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.digest()


def split_scan(path: str, segment: int, processes: Executor, thread: Executor) -> int:
    """Every segment on the processes (each overlaps the next by MAX_CHUNK, as a
    reconciliation would need) while the sha256 runs here."""
    size = os.path.getsize(path)
    summing = thread.submit(sha256_of, path)
    starts = range(0, size, segment)
    stops = [min(size, s + segment + MAX_CHUNK) for s in starts]
    chunks = sum(processes.map(scan_segment, [path] * len(stops), starts, stops))
    summing.result()
    return chunks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--segment-mib", type=int, default=16)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xetstore-split-"))
    path = str(work / "input.bin")
    size = args.size_mib << 20
    context = multiprocessing.get_context("forkserver")
    try:
        make_random(Path(path), size)
        with ProcessPoolExecutor(args.processes, mp_context=context) as procs, ThreadPoolExecutor(1) as thread:
            list(procs.map(scan_segment, [path] * args.processes, [0] * args.processes, [1 << 20] * args.processes))
            times = rotation_times(
                {
                    "hash_stream (one process)": lambda: one_process(path),
                    f"split over {args.processes} processes": lambda: split_scan(
                        path, args.segment_mib << 20, procs, thread
                    ),
                },
                args.runs,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rates = {name: size / statistics.median(t) / MB for name, t in times.items()}
    base = rates["hash_stream (one process)"]
    print(f"# split scan, {args.size_mib} MiB random file, median of {args.runs} runs, {os.cpu_count()} CPUs\n")
    print("| method | MB/s | ratio to hash_stream |\n|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
