"""The Backend contract: a dumb, immutable-object store of key -> bytes.

Backends know keys and bytes only: nothing of chunks, xorbs or the index.
Every method raises only xetstore errors: `ObjectNotFound` for a missing key,
`AccessDenied` (permanent), `DiskFull`, `TransientBackendError` (safe to retry)
or `BackendError`.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from ..errors import ConfigError, ObjectNotFound

__all__ = ["Backend", "ObjectInfo", "Payload", "StagedPut", "validate_key", "payload_bytes", "payload_size"]

# What put() accepts: bytes; the object's bytes as parts in order (joining them
# would copy); or a local file (a xorb spooled to disk while it was built), which
# put() reads but does not remove.
Payload = bytes | bytearray | memoryview | Sequence[bytes] | os.PathLike[str]


def payload_size(data: Payload) -> int:
    """A payload's length in bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    if isinstance(data, os.PathLike):
        return os.path.getsize(data)
    return sum(len(p) for p in data)


def payload_bytes(data: Payload) -> bytes:
    """A payload as one bytes object (for backends that need it whole)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, os.PathLike):
        with open(data, "rb") as f:
            return f.read()
    return b"".join(data)

_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*")
_MAX_KEY = 512


def validate_key(key: str) -> str:
    """Refuse anything but lowercase relative keys without dot-segments.

    Keys come from hashes we computed or names we chose; anything else (a
    listing that returns `../x`, an absolute path, a NUL) is refused before
    it can reach a filesystem path or an S3 request.
    """
    if not isinstance(key, str) or len(key) > _MAX_KEY or not _KEY.fullmatch(key):
        raise ConfigError(f"invalid backend key {key!r}")
    return key


class ObjectInfo(NamedTuple):
    key: str
    size: int
    mtime: float  # seconds since the epoch, as the backend reports it


class StagedPut(NamedTuple):
    """A put whose object becomes visible only at `publish` (which returns what put()
    would); `discard` drops it unpublished."""

    publish: Callable[[], bool]
    discard: Callable[[], None]


class Backend(ABC):
    """Key -> bytes. Objects are written once, atomically, and never modified."""

    url: str
    # Reads cross a network: worth a local cache of fetched xorb ranges.
    remote: bool = False

    @abstractmethod
    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of an object (end None = to the end).

        A range past the end yields the bytes that exist, possibly none, like
        slicing. Raises ObjectNotFound if the key does not exist.
        """

    @abstractmethod
    def put(self, key: str, data: Payload) -> bool:
        """Store an object atomically unless the key exists; return whether it wrote.

        An existing key is left untouched: keys are content-derived, so an
        existing object already holds these bytes. No reader ever sees a
        partial object, even if the writer dies mid-put.
        """

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and time of an object; raises ObjectNotFound."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in no particular order."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The keys `list` gives, where a backend can name them for less (a folder
        need not stat each file: every add lists every shard)."""
        return (info.key for info in self.list(prefix))

    def stage(self, key: str, data: Payload) -> StagedPut:
        """Prepare a put of `key` that becomes visible at `publish`, and never before.

        A folder writes and syncs the bytes under a temp name here, so that the
        sync overlaps whatever must become durable before the object may appear
        (a shard's xorbs); elsewhere (and through wrappers) `publish` is the put.
        """
        return StagedPut(lambda: self.put(key, data), lambda: None)

    def spool_dir(self) -> str | None:
        """Where a file that will be put() is best written, if anywhere in particular
        (a folder backend: inside itself, so publishing it is a link, not a copy)."""
        return None

    def sweep_temp(self, older_than: float) -> Sequence[str]:
        """Remove what interrupted puts left behind, if older than `older_than` seconds
        (younger ones may belong to puts still running); return what was removed.
        A backend whose puts leave nothing behind has nothing to do."""
        return []

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def close(self) -> None:  # noqa: B027 (a no-op default that backends with connections override)
        """Release connections; the default has nothing to release."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
