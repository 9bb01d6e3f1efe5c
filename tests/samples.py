"""Deterministic test data and small file-tree tools shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes (numpy PCG64 raw stream)."""
    words = np.random.PCG64(seed).random_raw((size + 7) // 8).astype("<u8")
    return words.tobytes()[:size]


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

