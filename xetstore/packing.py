"""Packing: new chunks -> compression frames -> the records and footer of one xorb.

The writing half of the xorb codec (xorb.py reads). Runs of consecutive new
chunks are compressed together as frames (docs/format.md §6.3); with an
executor, frames compress on worker threads while the caller goes on chunking.
Pure: chunks in, bytes into a sink and a SealedXorb out; the caller decides
where the sink lives and where the xorb is published.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import BinaryIO, NamedTuple

from .compression import Scheme, compress_frame, decompress_frame, prefers_bg4
from .errors import HashMismatch
from .faults import fault_point
from .hashing import xet_hex, xorb_hash
from .keys import xorb_key
from .near_copies import near_copy
from .params import MAX_CHUNK, MAX_XORB_BYTES, MAX_XORB_CHUNKS, RepositoryParams
from .xorb import HEADER_SIZE, ChunkHeader, DeltaBase, XorbFooter

__all__ = ["SealedXorb", "XorbBuilder", "FrameBuffers", "encode_frame", "encode_near_copy", "frame_records"]


class SealedXorb(NamedTuple):
    """A finished xorb: its hash, footer and serialized size, and its bytes when the
    builder kept them in memory (`data` is None if they went to the caller's sink)."""

    hash: bytes
    footer: XorbFooter
    size: int
    data: bytes | None = None
    deltas: frozenset[int] = frozenset()  # indices of its delta chunks (scheme 6)

    @property
    def key(self) -> str:
        return xorb_key(self.hash)

    def kept_data(self) -> bytes:
        """The xorb's bytes, for a builder that kept them (maintenance rewrites do)."""
        if self.data is None:
            raise RuntimeError(f"xorb {xet_hex(self.hash)} went to a sink; its bytes were not kept")
        return self.data


class XorbBuilder:
    """Packs new chunks into one xorb, compressing runs of them as frames.

    Frames are written to `sink` in order as soon as they are encoded, so a
    xorb never sits whole in memory (with no sink, a BytesIO collects it).
    With an executor, frames are compressed on worker threads while the caller
    goes on chunking; zstd releases the GIL. The first frame of every xorb has
    its round trip checked (see encode_frame).
    At most `_MAX_PENDING` frames' worth of plain bytes are in flight, so memory
    stays bounded; counted in bytes, so that 64 KiB near-copies keep the
    workers as busy as 1 MiB frames do.
    """

    def __init__(
        self,
        level: int = 3,
        frame_bytes: int = 1 << 20,
        compress: bool = True,
        executor: Executor | None = None,
        buffers: FrameBuffers | None = None,
        sink: BinaryIO | None = None,
    ) -> None:
        self._level = level
        self._frame_bytes = frame_bytes
        self._compress = compress
        self._executor = executor
        self._buffers = buffers or FrameBuffers(frame_bytes + MAX_CHUNK)
        self._sink: BinaryIO = sink if sink is not None else io.BytesIO()
        self._keeps_data = sink is None
        self._frames: deque[tuple[Future[_Frame] | _Frame, bytearray | None, int]] = deque()
        self._pending = 0  # plain bytes of the frames in self._frames
        self._serialized: list[int] = []
        self._written = 0
        self._hashes: list[bytes] = []
        self._sizes: list[int] = []
        self._frame = self._buffers.take()
        self._frame_used = 0
        self._frame_first = 0  # index of the first chunk of the open frame
        self._checked = False  # whether a frame of this xorb had its round trip checked
        self._deltas: set[int] = set()
        self._total = 0

    @classmethod
    def for_params(
        cls,
        params: RepositoryParams,
        executor: Executor | None = None,
        buffers: FrameBuffers | None = None,
        sink: BinaryIO | None = None,
    ) -> XorbBuilder:
        """A builder that packs the way a repository's config says."""
        return cls(params.zstd_level, params.frame_bytes, params.compression == "zstd", executor, buffers, sink)

    @property
    def num_chunks(self) -> int:
        return len(self._hashes)

    @property
    def unpacked_bytes(self) -> int:
        return self._total

    @property
    def chunk_hashes(self) -> Sequence[bytes]:
        """The hashes of the chunks added so far, in order (a live view)."""
        return self._hashes

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

    def add_delta(self, h: bytes, size: int, payload: bytes) -> int:
        """Append a delta chunk of `size` plain bytes as its scheme-6 `payload`;
        it is a frame of its own. Returns its index."""
        record = ChunkHeader(len(payload), Scheme.DELTA, size).encode()
        return self._add_own_frame(h, size, ([record, payload], [HEADER_SIZE + len(payload)], True))

    def add_near_copy(
        self, h: bytes, chunk: bytes | memoryview, base: DeltaBase, window: bytes | memoryview, base_share: float
    ) -> int:
        """Append a chunk that delta_prospect sends to the workers (`window`: its
        base run's bytes at its position) as a frame of its own: a delta or,
        when that does not store less, the chunk compressed alone
        (encode_near_copy). Encoded on the executor like frames: the
        compressions cost several times a plain chunk's, and chunking goes on
        meanwhile. Returns its index."""
        args = (bytes(chunk), base, bytes(window), self._level, base_share, not self._checked)
        self._checked = True
        job = self._executor.submit(encode_near_copy, *args) if self._executor else encode_near_copy(*args)
        return self._add_own_frame(h, len(chunk), job)

    def _add_own_frame(self, h: bytes, size: int, job: Future[_Frame] | _Frame) -> int:
        if not self.fits(size):
            raise ValueError("chunk does not fit in this xorb")
        self._close_frame()
        self._hashes.append(h)
        self._sizes.append(size)
        self._total += size
        self._frame_first = len(self._sizes)
        self._queue(job, None, size)
        return len(self._hashes) - 1

    def _close_frame(self, here: bool = False) -> None:
        """Queue the open frame's encoding: on the executor, or with `here` (or none) on this thread."""
        sizes = self._sizes[self._frame_first :]
        if not sizes:
            return
        args = (memoryview(self._frame)[: self._frame_used], sizes, self._level, self._compress, not self._checked)
        self._checked = True
        job = encode_frame(*args) if here or self._executor is None else self._executor.submit(encode_frame, *args)
        self._queue(job, self._frame, self._frame_used)
        self._frame = self._buffers.take()
        self._frame_used = 0
        self._frame_first = len(self._sizes)

    def _queue(self, job: Future[_Frame] | _Frame, buffer: bytearray | None, size: int) -> None:
        self._frames.append((job, buffer, size))
        self._pending += size
        self._write_ready(wait=self._pending > _MAX_PENDING * self._frame_bytes)

    def _write_ready(self, wait: bool) -> None:
        """Write encoded frames to the sink in order; with `wait`, at least one."""
        while self._frames:
            job, buffer, plain = self._frames[0]
            if isinstance(job, Future):
                if not (wait or job.done()):
                    return
                job = job.result()
            self._frames.popleft()
            self._pending -= plain
            wait = False
            records, record_sizes, delta = job
            if delta:
                self._deltas.add(len(self._serialized))  # the index of the chunk it holds
            for part in records:
                self._sink.write(part)
            for size in record_sizes:
                self._written += size
                self._serialized.append(self._written)
            if buffer is not None:
                self._buffers.give([buffer])  # raw records were views into it: written now
            fault_point("packing.mid_xorb")

    def seal(self) -> SealedXorb:
        """Finish the xorb (write the rest and the footer); the builder is done after."""
        # The last frame is encoded here: this thread would only wait for a worker to do it
        # (for a git-lfs object of a few KiB, the hand-off cost more than the compression).
        self._close_frame(here=True)
        while self._frames:
            self._write_ready(wait=True)
        self._buffers.give([self._frame])
        h = xorb_hash(list(zip(self._hashes, self._sizes)))
        unpacked, total = [], 0
        for size in self._sizes:
            total += size
            unpacked.append(total)
        footer = XorbFooter(h, tuple(self._hashes), tuple(self._serialized), tuple(unpacked))
        tail = footer.encode()
        self._sink.write(tail)
        size = self._written + len(tail)
        data = self._sink.getvalue() if self._keeps_data else None  # type: ignore[attr-defined]
        return SealedXorb(h, footer, size, data, frozenset(self._deltas))


# A frame's records, each record's size, and whether it is a delta chunk's.
_Frame = tuple[list[bytes | memoryview], list[int], bool]
_MAX_PENDING = 8


class FrameBuffers:
    """A free list of frame buffers, shared by the xorbs of a session.

    Allocating and zeroing a fresh 1 MiB buffer per frame costs about as much
    as chunking it; recycled buffers cost nothing. Thread-safe (deque).
    """

    def __init__(self, size: int, keep: int = 2 * _MAX_PENDING + 2) -> None:
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


def encode_frame(
    data: bytes | memoryview, sizes: Sequence[int], level: int, compress: bool, check: bool = True
) -> _Frame:
    """Records for consecutive chunks whose bytes are `data`, and each record's size.

    The frame is stored raw, one record per chunk, when compression does not
    shrink it; raw payloads are views into `data`, not copies. With `check`, a
    compressed frame is decompressed and compared with `data` before it is
    used. Builders check the first frame of each xorb: a broken compression
    library fails there, before its xorb is published. Checking every frame
    cost 13-18 % of ingest on compressible data (measured on two cores, where
    ingest is CPU-bound), and every read verifies every chunk hash anyway, so
    a rarer, data-dependent fault is never returned as data and `check
    --read-data` finds it.
    """
    data = memoryview(data)
    scheme, payload = Scheme.NONE, b""
    if compress:
        scheme, payload = compress_frame(data, level, prefers_bg4(data[:65536]))
    what = f"new xorb frame of {len(sizes)} chunks"
    # Compared as bytes: bytes == memoryview runs item by item, holding the GIL
    # (2 ms per MiB, measured), while a copy and a memcmp take 0.07 ms. A BG4
    # frame decodes to a view, so both sides are made bytes.
    if check and scheme != Scheme.NONE and bytes(decompress_frame(scheme, payload, len(data), what)) != data.tobytes():
        raise HashMismatch(what, "the frame's bytes", "different bytes after a compression round trip")
    return frame_records(data, sizes, scheme, payload)


def frame_records(data: memoryview, sizes: Sequence[int], scheme: Scheme, payload: bytes) -> _Frame:
    """A frame's records and the size of each: raw chunks (views into `data`) for NONE,
    else one payload record and IN_FRAME ones."""
    if scheme == Scheme.NONE:
        parts: list[bytes | memoryview] = []
        pos = 0
        for size in sizes:
            parts.append(ChunkHeader(size, Scheme.NONE, size).encode())
            parts.append(data[pos : pos + size])
            pos += size
        return parts, [HEADER_SIZE + size for size in sizes], False
    header = ChunkHeader(len(payload), scheme, sizes[0]).encode()
    rest = b"".join(ChunkHeader(0, Scheme.IN_FRAME, size).encode() for size in sizes[1:])
    record_sizes = [HEADER_SIZE + len(payload)] + [HEADER_SIZE] * (len(sizes) - 1)
    return [header, payload, rest], record_sizes, False


def encode_near_copy(
    chunk: bytes, base: DeltaBase, window: bytes, level: int, base_share: float, check: bool = True
) -> _Frame:
    """A near-copy's record as a frame of its own (near_copies.near_copy decides
    between its delta and the chunk compressed alone)."""
    kept = near_copy(chunk, base, window, level, base_share, check)
    if isinstance(kept, bytes):
        return [ChunkHeader(len(kept), Scheme.DELTA, len(chunk)).encode(), kept], [HEADER_SIZE + len(kept)], True
    return frame_records(memoryview(chunk), [len(chunk)], *kept)
