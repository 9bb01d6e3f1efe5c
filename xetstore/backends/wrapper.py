"""A backend that forwards everything to another one: the base of retrying and caching."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .base import Backend, ObjectInfo, Payload

__all__ = ["BackendWrapper"]


class BackendWrapper(Backend):
    """Forwards every call to `inner`; subclasses override what they change."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.remote = inner.remote

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self.inner.get(key, start, end)

    def put(self, key: str, data: Payload) -> bool:
        return self.inner.put(key, data)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def spool_dir(self) -> str | None:
        return self.inner.spool_dir()

    def sweep_temp(self, older_than: float) -> Sequence[str]:
        return self.inner.sweep_temp(older_than)

    def close(self) -> None:
        self.inner.close()
