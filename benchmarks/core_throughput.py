"""Clean and smudge throughput of the core engine, next to baselines measured in the same run.

    python -m benchmarks.core_throughput [--size-mib 1024] [--runs 3] [--rss-gib 4]

For a file of random bytes and a float32 "weights" file it reports, as medians of --runs:
add of new data, re-add of an identical file, and read (restore to a file), each as MB/s and
as a ratio to `hf_xet.hash_files` on the same file (the official Rust client's chunk + hash)
or to a plain file copy. With --rss-gib it also adds a file of that size in a child process,
reads it back in another, and reports each child's peak RSS. Tests never assert timings; this script only measures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from xetstore import Repository
from xetstore.bench.inputs import make_random, make_weights

MB = 1_000_000


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], runs: int, setup: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(runs):
        if setup:
            setup()
        times.append(timed(fn))
    return statistics.median(times)


def hf_xet_hash(path: Path) -> None:
    import hf_xet

    hf_xet.hash_files([str(path)])


def measure(path: Path, runs: int, work: Path) -> dict[str, float]:
    size = path.stat().st_size
    state: dict[str, object] = {}

    def fresh_repo() -> None:
        if "repo" in state:
            state["repo"].close()  # type: ignore[attr-defined]
        shutil.rmtree(work / "repo", ignore_errors=True)
        shutil.rmtree(work / "cache", ignore_errors=True)
        state["repo"] = Repository.init(str(work / "repo"), cache_dir=work / "cache")

    def add() -> None:
        state["hash"] = state["repo"].add_file(path).file_hash  # type: ignore[attr-defined]

    def read() -> None:
        state["repo"].read_file(state["hash"], work / "restored")  # type: ignore[attr-defined]

    t_hf = median_time(lambda: hf_xet_hash(path), runs)
    t_copy = median_time(lambda: shutil.copyfile(path, work / "copy"), runs)
    t_add = median_time(add, runs, setup=fresh_repo)
    t_readd = median_time(add, runs)
    t_read = median_time(read, runs)
    if (work / "restored").read_bytes()[:1 << 20] != path.read_bytes()[:1 << 20]:
        raise SystemExit("restore differs from the input")
    state["repo"].close()  # type: ignore[attr-defined]
    return {
        "hf_xet.hash_files": size / t_hf / MB,
        "plain copy": size / t_copy / MB,
        "add (new data)": size / t_add / MB,
        "re-add (identical)": size / t_readd / MB,
        "read": size / t_read / MB,
    }


def peak_rss(size: int, work: Path) -> tuple[float, float]:
    """Peak RSS (MiB) of a child process adding a `size`-byte file, and of
    another reading it back to a file.

    Each child reads its own VmHWM: Linux carries a process's ru_maxrss across
    fork and exec, so getrusage in the child would report this (large) parent.
    """
    big, back, repo, cache = (str(work / name) for name in ("big.bin", "back.bin", "rssrepo", "rsscache"))
    make_random(Path(big), size)
    opened = f"r = Repository.open({repo!r}, cache_dir={cache!r})"
    file_hash, add_rss = _child_rss(f"Repository.init({repo!r}, cache_dir={cache!r}).close(); {opened}; print(r.add_file({big!r}).file_hash)")
    _, read_rss = _child_rss(f"{opened}; r.read_file({file_hash!r}, {back!r})")
    os.unlink(big)
    os.unlink(back)
    return add_rss, read_rss


def _child_rss(statements: str) -> tuple[str, float]:
    """What a child running `statements` printed, and its peak RSS in MiB."""
    code = (
        f"import re; from xetstore import Repository; {statements}; r.close();"
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return (out[0] if len(out) > 1 else ""), int(out[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-gib", type=float, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xetstore-bench-", dir=args.dir))
    size = args.size_mib << 20
    print(f"# core throughput, {args.size_mib} MiB files, median of {args.runs} runs, {os.cpu_count()} CPUs")
    try:
        for name, make in (("random", make_random), ("float32 weights", make_weights)):
            path = work / "input.bin"
            make(path, size)
            r = measure(path, args.runs, work)
            print(f"\n## {name}\n")
            print("| measure | MB/s | ratio | against |\n|---|---:|---:|---|")
            for key in ("add (new data)", "re-add (identical)"):
                print(f"| {key} | {r[key]:.0f} | {r[key] / r['hf_xet.hash_files']:.2f} | hf_xet.hash_files {r['hf_xet.hash_files']:.0f} MB/s |")
            print(f"| read | {r['read']:.0f} | {r['read'] / r['plain copy']:.2f} | plain copy {r['plain copy']:.0f} MB/s |")
            path.unlink()
        if args.rss_gib:
            add_rss, read_rss = peak_rss(int(args.rss_gib * (1 << 30)), work)
            print(f"\npeak RSS adding a {args.rss_gib:g} GiB file: {add_rss:.0f} MiB")
            print(f"peak RSS reading it back: {read_rss:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n(self peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
