"""Backends by URL: a folder path or file:// URL, memory://NAME, s3://BUCKET/PREFIX."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import ConfigError
from .base import Backend, ObjectInfo, Payload, validate_key

__all__ = ["Backend", "ObjectInfo", "Payload", "validate_key", "open_backend", "with_local_cache"]


def open_backend(url: str) -> Backend:
    """The backend a repository URL names."""
    if url.startswith("memory://"):
        from .memory import MemoryBackend

        return MemoryBackend.named(url[len("memory://") :])
    if url.startswith("s3://"):
        from .retrying import RetryingBackend
        from .s3 import S3Backend

        return RetryingBackend(S3Backend.from_url(url))
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URL {url!r} names a host; use file:///absolute/path")
        return _folder(Path(unquote(parsed.path)))
    if "://" in url:
        raise ConfigError(f"unsupported repository URL {url!r}; use a path, file://, s3:// or memory://")
    return _folder(Path(url).expanduser())


def with_local_cache(backend: Backend, directory: Path) -> Backend:
    """`backend`, behind a local cache of fetched xorb ranges if it is remote."""
    if not backend.remote:
        return backend
    from .cache import CachingBackend

    return CachingBackend(backend, directory)


def _folder(path: Path) -> Backend:
    from .folder import FolderBackend

    return FolderBackend(path)
