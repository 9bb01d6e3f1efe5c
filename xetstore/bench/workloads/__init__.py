"""Workloads: series of versions of realistic data, generated from a seed and cached.

A workload on disk is a folder with one subfolder per version (`v01`, `v02`, …),
in the order a user would have added them. Every generator is deterministic: the
same seed and size give the same bytes on every run (tests check it), so results
can be reproduced and the cache can be trusted. `--corpus DIR` brings the user's
own data in the same shape: each subfolder of DIR is one version.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Workload",
    "WORKLOADS",
    "GENERATOR_VERSION",
    "rng",
    "version_dir",
    "materialize",
    "versions",
    "default_cache_dir",
]

# Bump when any generator's output changes, so cached workloads are regenerated.
GENERATOR_VERSION = 1

Generator = Callable[[Path, int, int], None]  # (dest folder, target bytes, seed)


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    description: str
    generate: Generator


def rng(seed: int, *labels: object) -> np.random.Generator:
    """A generator for one purpose: a stable function of the seed and the labels.

    crc32 instead of hash(): Python salts str hashes per process.
    """
    words = [seed & 0xFFFFFFFF] + [zlib.crc32(str(label).encode()) for label in labels]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def version_dir(dest: Path, n: int) -> Path:
    """The folder of version n (1-based), created empty."""
    path = dest / f"v{n:02d}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions(workload_dir: Path) -> list[Path]:
    """The version folders of a workload (or a user's corpus), in name order."""
    found = sorted(p for p in Path(workload_dir).iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ValueError(f"{workload_dir} has no version subfolders; put each version in its own folder")
    return found


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/xetstore-bench (else ~/.cache/xetstore-bench)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "xetstore-bench"


def materialize(name: str, scale_mb: float, seed: int, cache_dir: Path) -> Path:
    """The folder of a generated workload, generating it unless it is cached."""
    target = max(1, int(scale_mb * 1_000_000))
    folder = Path(cache_dir) / f"{name}-{target}-seed{seed}-g{GENERATOR_VERSION}"
    if (folder / ".complete").exists():
        return folder
    build_folder(folder, lambda tmp: WORKLOADS[name].generate(tmp, target, seed))
    return folder


def build_folder(folder: Path, build: Callable[[Path], None]) -> None:
    """Build a workload folder in a temp folder beside it, then rename it into place
    marked complete: an interrupted build never leaves a folder that looks cached."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _registry() -> dict[str, Workload]:
    from . import database, dataset, edge, finetune, model, release

    items = [model.WORKLOAD, finetune.WORKLOAD, dataset.WORKLOAD, database.WORKLOAD, release.WORKLOAD, *edge.WORKLOADS]
    return {w.name: w for w in items}


WORKLOADS: dict[str, Workload] = _registry()
