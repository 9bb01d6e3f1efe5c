"""An in-process backend for tests: `memory://NAME` names a shared dict."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from ..errors import ObjectNotFound
from .base import Backend, ObjectInfo, Payload, payload_bytes, validate_key

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Objects in a dict. `MemoryBackend.named(name)` returns the same one per name,
    so `memory://NAME` means one repository for the life of the process."""

    _named: dict[str, MemoryBackend] = {}
    _named_lock = threading.Lock()

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, name: str) -> MemoryBackend:
        with cls._named_lock:
            if name not in cls._named:
                cls._named[name] = cls(f"memory://{name}")
            return cls._named[name]

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        validate_key(key)
        with self._lock:
            item = self._objects.get(key)
        if item is None:
            raise ObjectNotFound(key, self.url)
        return item[0][start:end]

    def put(self, key: str, data: Payload) -> bool:
        validate_key(key)
        blob = payload_bytes(data)
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = (blob, time.time())
            return True

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._lock:
            item = self._objects.get(key)
        if item is None:
            raise ObjectNotFound(key, self.url)
        return ObjectInfo(key, len(item[0]), item[1])

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = [(k, v) for k, v in self._objects.items() if k.startswith(prefix)]
        for key, (data, mtime) in items:
            yield ObjectInfo(key, len(data), mtime)
