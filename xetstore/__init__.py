"""xetstore: chunk-deduplicating storage for large binaries, Xet-style.

    >>> from xetstore import Repository
    >>> with Repository.init("/tmp/repo") as repo:       # doctest: +SKIP
    ...     result = repo.add_file("model.safetensors")
    ...     repo.read_file(result.file_hash, "copy.safetensors")
"""

from __future__ import annotations

from .backends import Backend, ObjectInfo, open_backend
from .errors import (
    AccessDenied,
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
    RepositoryNotFound,
    TransientBackendError,
    XetStoreError,
)
from .repository import AddResult, FileInfo, Repository, RepositoryStats

__version__ = "0.1.0"

__all__ = [
    "Repository",
    "AddResult",
    "FileInfo",
    "RepositoryStats",
    "Backend",
    "ObjectInfo",
    "open_backend",
    "XetStoreError",
    "ConfigError",
    "NotFound",
    "ObjectNotFound",
    "FileNotInRepository",
    "RepositoryNotFound",
    "InputError",
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
