"""A size-bounded local disk cache of the xorb byte ranges read from a remote backend.

Xorbs are immutable and content-named, so a range fetched once stays right
forever: the cache serves it again from `directory` instead of the network.
Only `xorbs/` keys with an explicit, fully returned range are cached; `config`,
shards and listings always go to the backend. Each entry carries a digest
of its bytes, checked on every hit: a damaged entry is dropped and the
range fetched again. The digest is a crc32: it catches accidents (a torn write,
a bad disk); deliberate tampering is caught where every chunk is checked against
its hash before use, so the cache can never make a read return wrong bytes, and
it never writes to the backend at all. Least recently used entries
are evicted once the cache holds more than `max_bytes`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from collections import OrderedDict
from pathlib import Path

from ..errors import ConfigError
from ..keys import XORBS
from .base import Backend
from .wrapper import BackendWrapper

__all__ = ["CachingBackend", "cache_bytes_from_env", "DEFAULT_CACHE_BYTES"]

log = logging.getLogger("xetstore")

DEFAULT_CACHE_BYTES = 2 * 1024**3
_CACHED_PREFIX = XORBS
_DIGEST = 4  # a crc32 of the entry's bytes
_WRITE_PIECE = 256 * 1024
_ENTRY = re.compile(r"(\d+)-(\d+)")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

_Entry = tuple[str, int, int]  # key, start, end


def _digest(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(_DIGEST, "little")


def _write(path: Path, digest: bytes, data: bytes) -> None:
    # Pieces: one 8 MiB write() costs several times what 32 small ones do (page allocation).
    view = memoryview(data)
    with open(path, "wb", buffering=0) as f:
        f.write(digest)
        for start in range(0, len(view), _WRITE_PIECE):
            f.write(view[start : start + _WRITE_PIECE])


def cache_bytes_from_env(default: int = DEFAULT_CACHE_BYTES) -> int:
    """The cap set by $XETSTORE_CACHE_BYTES (`0`, `500M`, `4G`, plain bytes), else `default`."""
    text = os.environ.get("XETSTORE_CACHE_BYTES", "").strip()
    if not text:
        return default
    m = re.fullmatch(r"(\d+)\s*([kmgt]?)(i?b)?", text.lower())
    if not m:
        raise ConfigError(f"XETSTORE_CACHE_BYTES={text!r} is not a size; use e.g. 0, 500M or 4G")
    return int(m.group(1)) * _UNITS[m.group(2)]


class CachingBackend(BackendWrapper):
    """Serves repeated ranged reads of xorbs from local disk, LRU by bytes."""

    def __init__(self, inner: Backend, directory: Path, max_bytes: int | None = None) -> None:
        super().__init__(inner)
        self.directory = Path(directory)
        self.max_bytes = cache_bytes_from_env() if max_bytes is None else max_bytes
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[_Entry, int] = OrderedDict()  # oldest use first
        self._by_key: dict[str, set[tuple[int, int]]] = {}
        self._total = 0
        self._scan()

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        if not self._cacheable(key, start, end):
            return self.inner.get(key, start, end)
        assert end is not None
        data = self._lookup(key, start, end)
        if data is not None:
            return data
        data = self.inner.get(key, start, end)
        with self._lock:
            self.misses += 1
        if len(data) == end - start:  # ranges past the end are not cached
            self._store(key, start, end, data)
        return data

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        with self._lock:
            ranges = self._by_key.get(key, set()).copy()
        for start, end in ranges:
            self._drop((key, start, end))

    def _cacheable(self, key: str, start: int, end: int | None) -> bool:
        # An empty range is covered by no entries, yet must still fail on a missing key.
        return self.max_bytes > 0 and end is not None and end > start and key.startswith(_CACHED_PREFIX)

    # -- entries on disk ------------------------------------------------------

    def _path(self, entry: _Entry) -> Path:
        key, start, end = entry
        return self.directory / key / f"{start}-{end}"

    def _lookup(self, key: str, start: int, end: int) -> bytes | None:
        """[start, end) from cached ranges that cover it together, or None."""
        with self._lock:
            ranges = [(s, e) for s, e in self._by_key.get(key, ()) if s < end and start < e]
        cover = _cover(ranges, start, end)
        if cover is None:
            return None
        pieces, pos = [], start
        for s, e in cover:
            entry = (key, s, e)
            data = self._read(entry)
            if data is None:
                self._drop(entry)
                return None
            pieces.append(data[pos - s : min(end, e) - s])
            pos = min(end, e)
            with self._lock:
                if entry in self._entries:
                    self._entries.move_to_end(entry)
        with self._lock:
            self.hits += 1
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _read(self, entry: _Entry) -> bytes | None:
        """An entry's bytes if they are intact, else None."""
        path = self._path(entry)
        try:
            raw = path.read_bytes()
            os.utime(path)  # recency survives a restart
        except OSError:
            return None  # evicted by another process, or unreadable
        digest, data = raw[:_DIGEST], raw[_DIGEST:]
        if len(data) != entry[2] - entry[1] or _digest(data) != digest:
            log.warning("dropping damaged cache entry %s", path)
            return None
        return data

    def _store(self, key: str, start: int, end: int, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        entry = (key, start, end)
        path = self._path(entry)
        tmp = self.directory / f".tmp-{os.urandom(8).hex()}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(tmp, _digest(data), data)
            os.replace(tmp, path)
        except OSError as exc:  # a cache that cannot write is only slower
            log.debug("cannot cache %s: %s", path, exc)
            tmp.unlink(missing_ok=True)
            return
        self._remember(entry, len(data))
        self._evict()

    def _remember(self, entry: _Entry, size: int) -> None:
        with self._lock:
            if entry in self._entries:
                return
            self._entries[entry] = size
            self._by_key.setdefault(entry[0], set()).add(entry[1:])
            self._total += size

    def _forget(self, entry: _Entry) -> bool:
        with self._lock:
            size = self._entries.pop(entry, None)
            if size is None:
                return False
            self._total -= size
            ranges = self._by_key.get(entry[0])
            if ranges is not None:
                ranges.discard(entry[1:])
                if not ranges:
                    del self._by_key[entry[0]]
            return True

    def _drop(self, entry: _Entry) -> None:
        self._forget(entry)
        self._path(entry).unlink(missing_ok=True)

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self._total <= self.max_bytes or not self._entries:
                    return
                oldest = next(iter(self._entries))
            self._drop(oldest)

    def _scan(self) -> None:
        """Load the entries a previous process left, oldest use first."""
        found: list[tuple[float, _Entry, int]] = []
        root = self.directory / _CACHED_PREFIX
        if not root.is_dir():
            return
        for path in root.glob("*/*"):
            m = _ENTRY.fullmatch(path.name)
            if not m:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            entry = (f"{_CACHED_PREFIX}{path.parent.name}", int(m.group(1)), int(m.group(2)))
            found.append((st.st_mtime, entry, st.st_size - _DIGEST))
        for _mtime, entry, size in sorted(found):
            self._remember(entry, size)
        for tmp in self.directory.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
        self._evict()


def _cover(ranges: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]] | None:
    """Few ranges whose union holds [start, end), in order, or None if there are gaps."""
    chosen: list[tuple[int, int]] = []
    pos = start
    ranges = sorted(ranges)
    i, best = 0, None
    while pos < end:
        while i < len(ranges) and ranges[i][0] <= pos:
            if best is None or ranges[i][1] > best[1]:
                best = ranges[i]
            i += 1
        if best is None or best[1] <= pos:
            return None
        chosen.append(best)
        pos = best[1]
    return chosen
