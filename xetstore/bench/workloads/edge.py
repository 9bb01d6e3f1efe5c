"""Edge cases: incompressible random data, zeros, and a tree of many small files.

- `random`: v01 random bytes → v02 more appended → v03 a region overwritten and
  a few bytes inserted in the middle. Nothing compresses; only dedup can help.
- `zeros`: v01 zeros → v02 longer → v03 a small random block in the middle.
  Everything compresses; dedup collapses it to a handful of chunks.
- `smallfiles`: a source-tree-like folder of 1-64 KiB files (text, some
  binary) → v02 5 % edited, 5 % added → v03 10 % deleted, 5 % edited → v04 a
  folder renamed. Tests per-file overhead more than chunking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import Workload, rng, version_dir

__all__ = ["WORKLOADS"]


def _random(seed: int, tag: str, size: int) -> bytes:
    return rng(seed, "edge", tag).bytes(size)


def generate_random(dest: Path, target_bytes: int, seed: int) -> None:
    size = max(1024, int(target_bytes / 3.3))
    data = _random(seed, "base", size)
    (version_dir(dest, 1) / "random.bin").write_bytes(data)
    data += _random(seed, "append", size // 10)
    (version_dir(dest, 2) / "random.bin").write_bytes(data)
    mid = len(data) // 2
    patch = _random(seed, "patch", max(1, size // 100))
    data = data[:mid] + patch + data[mid + len(patch) : mid + len(patch) + size // 4] + b"inserted!" + data[mid + len(patch) + size // 4 :]
    (version_dir(dest, 3) / "random.bin").write_bytes(data)


def generate_zeros(dest: Path, target_bytes: int, seed: int) -> None:
    size = max(1024, int(target_bytes / 4))
    (version_dir(dest, 1) / "zeros.bin").write_bytes(bytes(size))
    (version_dir(dest, 2) / "zeros.bin").write_bytes(bytes(size * 3 // 2))
    block = _random(seed, "zeros-block", min(65536, max(1, size // 100)))
    mid = size * 3 // 4
    (version_dir(dest, 3) / "zeros.bin").write_bytes(bytes(mid) + block + bytes(size * 3 // 2 - mid - len(block)))


def _small_file(seed: int, ident: int, revision: int, words: list[bytes]) -> bytes:
    g = rng(seed, "smallfiles", ident, revision)
    size = int(np.exp(g.uniform(np.log(1024), np.log(65536))))
    if ident % 7 == 0:  # some binary assets among the sources
        return g.bytes(size)
    picks = np.minimum(g.zipf(1.3, size // 6 + 1), len(words)) - 1
    return b" ".join(words[p] for p in picks)[:size]


def generate_smallfiles(dest: Path, target_bytes: int, seed: int) -> None:
    g = rng(seed, "smallfiles", "layout")
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz_(){};=\n", dtype=np.uint8)
    words = [letters[g.integers(0, len(letters), int(n))].tobytes() for n in g.integers(1, 12, 3000)]
    count = max(8, int(target_bytes / 4 / 16_000))  # mean file size, measured
    files = {i: 0 for i in range(count)}  # ident -> revision
    moved = False

    def save(n: int) -> None:
        folder = version_dir(dest, n)
        for ident, rev in files.items():
            top = "library" if moved and ident % 10 == 3 else f"pkg{ident % 10}"
            path = folder / top / f"sub{ident % 37}" / f"file{ident:06d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_small_file(seed, ident, rev, words))

    save(1)
    keys = list(files)
    for k in g.choice(keys, max(1, count // 20), replace=False):
        files[int(k)] += 1
    files.update({count + i: 0 for i in range(max(1, count // 20))})
    save(2)
    keys = list(files)
    for k in g.choice(keys, max(1, len(keys) // 10), replace=False):
        del files[int(k)]
    for k in g.choice(list(files), max(1, len(files) // 20), replace=False):
        files[int(k)] += 1
    save(3)
    moved = True
    save(4)


WORKLOADS = (
    Workload("random", "incompressible random bytes: appended, then overwritten and shifted", generate_random),
    Workload("zeros", "all zeros, longer, then a small random block inside", generate_zeros),
    Workload("smallfiles", "source-tree-like folder of 1-64 KiB files: edits, adds, deletes, a rename", generate_smallfiles),
)
