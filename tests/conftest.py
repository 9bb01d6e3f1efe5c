"""Shared fixtures: temporary repositories and deterministic test data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
