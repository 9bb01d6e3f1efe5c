"""Packing: new chunks -> compression frames -> the records and footer of one xorb.

The writing half of the xorb codec (xorb.py reads). Runs of consecutive new
chunks are compressed together as frames (docs/format.md §6.3); with an
executor, frames compress on worker threads while the caller goes on chunking.
Pure: chunks in, a SealedXorb out; the caller decides where it is written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from .compression import Scheme, compress_frame, decompress_frame, prefers_bg4
from .errors import HashMismatch
from .hashing import xet_hex, xorb_hash
from .params import MAX_CHUNK, MAX_XORB_BYTES, MAX_XORB_CHUNKS, RepositoryParams
from .xorb import HEADER_SIZE, ChunkHeader, XorbFooter

__all__ = ["SealedXorb", "XorbBuilder", "FrameBuffers", "encode_frame"]


@dataclass(frozen=True, slots=True)
class SealedXorb:
    """A finished xorb: its hash, its serialized bytes (as parts, in order) and its footer.

    Parts avoid assembling one 64 MiB buffer only to write it out again.
    """

    hash: bytes
    parts: tuple[bytes | memoryview, ...]  # raw records may be views into `buffers`
    footer: XorbFooter
    buffers: tuple[bytearray, ...] = ()  # frame buffers to recycle once the xorb is written

    @property
    def key(self) -> str:
        return f"xorbs/{xet_hex(self.hash)}"

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


class XorbBuilder:
    """Packs new chunks into one xorb, compressing runs of them as frames.

    With an executor, frames are compressed (and their round trip checked) on
    worker threads while the caller goes on chunking; zstd releases the GIL.
    At most `_MAX_PENDING` frames are in flight, so memory stays bounded.
    """

    def __init__(
        self,
        level: int = 3,
        frame_bytes: int = 1 << 20,
        compress: bool = True,
        executor: Executor | None = None,
        buffers: FrameBuffers | None = None,
    ) -> None:
        self._level = level
        self._frame_bytes = frame_bytes
        self._compress = compress
        self._executor = executor
        self._buffers = buffers or FrameBuffers(frame_bytes + MAX_CHUNK)
        self._used_buffers: list[bytearray] = []
        self._frames: list[Future[_Frame] | _Frame] = []
        self._hashes: list[bytes] = []
        self._sizes: list[int] = []
        self._frame = self._new_frame()
        self._frame_used = 0
        self._frame_first = 0  # index of the first chunk of the open frame
        self._total = 0

    @classmethod
    def for_params(
        cls, params: RepositoryParams, executor: Executor | None = None, buffers: FrameBuffers | None = None
    ) -> XorbBuilder:
        """A builder that packs the way a repository's config says."""
        return cls(params.zstd_level, params.frame_bytes, params.compression == "zstd", executor, buffers)

    def _new_frame(self) -> bytearray:
        buf = self._buffers.take()
        self._used_buffers.append(buf)
        return buf

    @property
    def num_chunks(self) -> int:
        return len(self._hashes)

    @property
    def unpacked_bytes(self) -> int:
        return self._total

    def fits(self, size: int) -> bool:
        """Whether a chunk of `size` bytes may still join this xorb (Xet's limits)."""
        return self.num_chunks + 1 <= MAX_XORB_CHUNKS and self._total + size <= MAX_XORB_BYTES

    def add(self, h: bytes, data: bytes | memoryview) -> int:
        """Append a chunk (its bytes are copied); return its index in the xorb."""
        n = len(data)
        if not self.fits(n):
            raise ValueError("chunk does not fit in this xorb")
        self._hashes.append(h)
        self._sizes.append(n)
        self._total += n
        self._frame[self._frame_used : self._frame_used + n] = data
        self._frame_used += n
        if self._frame_used >= self._frame_bytes:
            self._close_frame()
        return len(self._hashes) - 1

    def _close_frame(self) -> None:
        sizes = self._sizes[self._frame_first :]
        if not sizes:
            return
        plain = memoryview(self._frame)[: self._frame_used]
        args = (plain, sizes, self._level, self._compress)
        if self._executor is None:
            self._frames.append(encode_frame(*args))
        else:
            self._wait_for_room()
            self._frames.append(self._executor.submit(encode_frame, *args))
        self._frame = self._new_frame()
        self._frame_used = 0
        self._frame_first = len(self._sizes)

    def _wait_for_room(self) -> None:
        pending = [f for f in self._frames if isinstance(f, Future) and not f.done()]
        if len(pending) >= _MAX_PENDING:
            pending[0].result()

    def seal(self) -> SealedXorb:
        """Finish the xorb; the builder must not be used afterwards."""
        self._close_frame()
        parts: list[bytes | memoryview] = []
        serialized, end = [], 0
        for frame in self._frames:
            records, record_sizes = frame.result() if isinstance(frame, Future) else frame
            parts += records
            for size in record_sizes:
                end += size
                serialized.append(end)
        h = xorb_hash(list(zip(self._hashes, self._sizes)))
        unpacked, total = [], 0
        for size in self._sizes:
            total += size
            unpacked.append(total)
        footer = XorbFooter(h, tuple(self._hashes), tuple(serialized), tuple(unpacked))
        parts.append(footer.encode())
        return SealedXorb(h, tuple(parts), footer, tuple(self._used_buffers))


_Frame = tuple[list[bytes | memoryview], list[int]]
_MAX_PENDING = 8


class FrameBuffers:
    """A free list of frame buffers, shared by the xorbs of a session.

    Allocating and zeroing a fresh 1 MiB buffer per frame costs about as much
    as chunking it; recycled buffers cost nothing. Thread-safe (deque).
    """

    def __init__(self, size: int, keep: int = 160) -> None:
        self.size = size
        self._keep = keep
        self._free: deque[bytearray] = deque()

    def take(self) -> bytearray:
        try:
            return self._free.pop()
        except IndexError:
            return bytearray(self.size)

    def give(self, buffers: Sequence[bytearray]) -> None:
        for buf in buffers:
            if len(buf) == self.size and len(self._free) < self._keep:
                self._free.append(buf)


def encode_frame(data: bytes | memoryview, sizes: Sequence[int], level: int, compress: bool) -> _Frame:
    """Records for consecutive chunks whose bytes are `data`, and each record's size.

    The frame is stored raw, one record per chunk, when compression does not
    shrink it; raw payloads are views into `data`, not copies. A compressed
    frame is decompressed and compared with `data` before it is used, so a
    compression-library bug cannot store bad data.
    """
    data = memoryview(data)
    scheme, payload = Scheme.NONE, b""
    if compress:
        scheme, payload = compress_frame(data, level, prefers_bg4(data[:65536]))
    if scheme == Scheme.NONE:
        parts: list[bytes | memoryview] = []
        pos = 0
        for size in sizes:
            parts.append(ChunkHeader(size, Scheme.NONE, size).encode())
            parts.append(data[pos : pos + size])
            pos += size
        return parts, [HEADER_SIZE + size for size in sizes]
    what = f"new xorb frame of {len(sizes)} chunks"
    if decompress_frame(scheme, payload, len(data), what) != data:
        raise HashMismatch(what, "the frame's bytes", "different bytes after a compression round trip")
    header = ChunkHeader(len(payload), scheme, sizes[0]).encode()
    rest = b"".join(ChunkHeader(0, Scheme.IN_FRAME, size).encode() for size in sizes[1:])
    record_sizes = [HEADER_SIZE + len(payload)] + [HEADER_SIZE] * (len(sizes) - 1)
    return [header, payload, rest], record_sizes
