"""xetstore: chunk-deduplicating storage for large binaries, Xet-style.

    >>> from xetstore import Repository
    >>> with Repository.init("/tmp/repo") as repo:       # doctest: +SKIP
    ...     result = repo.add_file("model.safetensors")
    ...     repo.read_file(result.file_hash, "copy.safetensors")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AccessDenied,
    AmbiguousName,
    BackendError,
    ConfigError,
    DecompressionError,
    DiskFull,
    FileNotInRepository,
    FormatError,
    HashMismatch,
    IndexUnusable,
    InputError,
    IntegrityError,
    LfsProtocolError,
    LockedError,
    MissingData,
    NotFound,
    ObjectNotFound,
    OutputError,
    Refused,
    RepositoryNotFound,
    SnapshotNotFound,
    TransientBackendError,
    XetStoreError,
)

if TYPE_CHECKING:
    from .backends import Backend, ObjectInfo, open_backend
    from .config import RepositoryConfig
    from .intake import StreamHash, hash_stream
    from .maintenance import CheckReport, CompactReport, GcReport, RebuildReport, ShardRepair, XorbRepair
    from .repository import AddResult, FileInfo, Repository, RepositoryStats
    from .shard import Manifest
    from .snapshot import Snapshot, SnapshotEntry
    from .trees import SnapshotDiff, SnapshotResult

# Imported on first use (PEP 562): `python -m xetstore.lfs agent`, which git-lfs
# starts eight times per transfer, must not pay for numpy and the engine up front.
_LAZY = {
    "Repository": ".repository", "AddResult": ".repository", "FileInfo": ".repository",
    "RepositoryStats": ".repository", "Backend": ".backends", "ObjectInfo": ".backends",
    "open_backend": ".backends", "SnapshotResult": ".trees", "Snapshot": ".snapshot",
    "SnapshotEntry": ".snapshot", "SnapshotDiff": ".trees",
    "CheckReport": ".maintenance", "CompactReport": ".maintenance", "GcReport": ".maintenance", "RebuildReport": ".maintenance",
    "ShardRepair": ".maintenance", "XorbRepair": ".maintenance", "Manifest": ".shard",
    "RepositoryConfig": ".config", "hash_stream": ".intake", "StreamHash": ".intake",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xetstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__version__ = "0.1.0"

__all__ = [
    "Repository",
    "AddResult",
    "FileInfo",
    "RepositoryStats",
    "RepositoryConfig",
    "Manifest",
    "CheckReport",
    "CompactReport",
    "GcReport",
    "RebuildReport",
    "ShardRepair",
    "XorbRepair",
    "Snapshot",
    "SnapshotEntry",
    "SnapshotDiff",
    "SnapshotResult",
    "Backend",
    "ObjectInfo",
    "open_backend",
    "hash_stream",
    "StreamHash",
    "XetStoreError",
    "ConfigError",
    "NotFound",
    "ObjectNotFound",
    "FileNotInRepository",
    "RepositoryNotFound",
    "SnapshotNotFound",
    "AmbiguousName",
    "Refused",
    "InputError",
    "OutputError",
    "IntegrityError",
    "HashMismatch",
    "FormatError",
    "DecompressionError",
    "MissingData",
    "BackendError",
    "TransientBackendError",
    "AccessDenied",
    "DiskFull",
    "IndexUnusable",
    "LockedError",
    "LfsProtocolError",
    "__version__",
]
