"""Shared fixtures: temporary repositories and deterministic test data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from xetstore import Repository


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own index cache, never the user's."""
    monkeypatch.setenv("XETSTORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("XETSTORE_REPO", raising=False)
    monkeypatch.delenv("XETSTORE_FAULTPOINT", raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    """A fresh folder repository."""
    with Repository.init(str(tmp_path / "repo")) as r:
        yield r


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


__all__ = ["random_bytes", "write_file", "tree_size", "os"]
