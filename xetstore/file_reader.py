"""A seekable file over a manifest: range reads fetch only the frames they touch."""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable

from .errors import MissingData
from .hashing import xet_hex
from .shard import Manifest
from .smudge import Reach, Reconstructor

__all__ = ["FileReader"]


class FileReader(io.RawIOBase):
    """A seekable, read-only file over a manifest; fetches only the chunks a read needs."""

    def __init__(
        self, reconstructor: Reconstructor, manifest: Manifest, refresh: Callable[[], Manifest] | None = None
    ) -> None:
        super().__init__()
        self._rec = reconstructor
        self._refresh = refresh  # a newer manifest of the file, if a xorb vanished (gc repacked it)
        self._file = xet_hex(manifest.file_hash)
        self._use(manifest)
        self._pos = 0
        self._cached: tuple[int, bytes] = (0, b"")  # (file offset, bytes) of the last chunk run

    def _use(self, manifest: Manifest) -> None:
        self._manifest = manifest
        self._reach: dict[bytes, Reach] | None = {}  # filled on the first read: opening reads no footer
        self._starts = [0]
        for t in manifest.terms:
            self._starts.append(self._starts[-1] + t.size)
        self.size = self._starts[-1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._pos >= self.size or not len(view):
            return 0
        data = self._span(self._pos)
        n = min(len(view), len(data))
        view[:n] = data[:n]
        self._pos += n
        return n

    def _span(self, pos: int) -> memoryview:
        """Bytes from `pos` to the end of the cached chunk run, fetching it if needed."""
        at, data = self._cached
        if not at <= pos < at + len(data):
            try:
                self._cached = self._fetch(pos)
            except MissingData:
                if self._refresh is None:
                    raise
                self._use(self._refresh())  # same bytes, newer terms; retried once
                self._cached = self._fetch(pos)
            at, data = self._cached
        return memoryview(data)[pos - at :]

    def _fetch(self, pos: int) -> tuple[int, bytes]:
        t = bisect.bisect_right(self._starts, pos) - 1
        term = self._manifest.terms[t]
        footer = self._rec.check_term(term, self._file)
        base = footer.unpacked_ends[term.first - 1] if term.first else 0
        within = pos - self._starts[t] + base
        i = bisect.bisect_right(footer.unpacked_ends, within, term.first, term.end)
        # Take the chunk's whole frame (within the term): it is decompressed anyway.
        frame_first, frame_end = self._rec.frame_of(term.xorb_hash, footer, i)
        first, end = max(frame_first, term.first), min(frame_end, term.end)
        chunk_start = footer.unpacked_ends[first - 1] if first else 0
        if self._reach == {}:
            self._reach = self._rec.reaches(self._manifest, self._file)
        reach = None if self._reach is None else self._reach[term.xorb_hash]
        data = b"".join(self._rec.chunks(term.xorb_hash, first, end, self._file, reach=reach))
        return self._starts[t] + chunk_start - base, data
