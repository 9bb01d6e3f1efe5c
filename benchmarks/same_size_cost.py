"""What finding an earlier version by size costs in a repository of 1000 files.

    python -m benchmarks.same_size_cost

The index has no table by size, so the first lookup of an add session reads every
manifest; later lookups of the same session reuse what it found. Prints the
median (and max) of 21 first lookups, then of 21 later ones. Measures; tests
never assert timings.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from xetstore import Repository
from xetstore.delta_bases import SameSize


def _ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.3f} ms, max {max(times) * 1000:.3f} ms"


def main(files: int = 1000, sessions: int = 10) -> None:
    root = Path(tempfile.mkdtemp(prefix="xetstore-same-size-"))
    try:
        src = root / "src"
        src.mkdir()
        for i in range(files):  # distinct sizes, so one file matches
            (src / f"f{i:04}").write_bytes(os.urandom(20_000 + i))
        names = sorted(src.iterdir())
        with Repository.init(str(root / "repo"), cache_dir=root / "cache", delta=True) as r:
            step = files // sessions  # several sessions: several shards, as files arrive over time
            for k in range(0, files, step):
                r.add_files(names[k : k + step])
            first = [_timed(lambda: SameSize(r._index)(20_500)) for _ in range(21)]
            same = SameSize(r._index)
            same(20_500)
            later = [_timed(lambda: same(20_700)) for _ in range(21)]
            print(f"{r.stats().files} files: first lookup {_ms(first)}; later lookups {_ms(later)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
