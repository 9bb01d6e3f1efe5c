"""Deterministic large inputs for the throughput benchmarks, written in 64 MiB pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["make_random", "make_weights"]

_PIECE = 64 << 20


def make_random(path: Path, size: int) -> None:
    """Incompressible bytes (numpy's PCG64 raw stream, seed 1)."""
    gen = np.random.PCG64(1)
    with open(path, "wb") as f:
        for start in range(0, size, _PIECE):
            n = min(_PIECE, size - start)
            f.write(gen.random_raw((n + 7) // 8).astype("<u8").tobytes()[:n])


def make_weights(path: Path, size: int) -> None:
    """A float32 "weights" file: normal values with a scale per 64 MiB tensor."""
    rng = np.random.default_rng(2)
    with open(path, "wb") as f:
        for start in range(0, size, _PIECE):
            n = min(_PIECE, size - start) // 4
            scale = rng.uniform(0.005, 0.05)
            f.write(rng.normal(0.0, scale, n).astype("<f4").tobytes())
