"""The xorb codec: Xet's chunk records and footer, with xetstore's zstd frames.

A xorb is `[record 0] … [record n-1] [footer] [u32 footer length]`; a record is
an 8-byte chunk header and its payload. The footer lists every chunk hash and
the cumulative serialized and uncompressed end offsets, so a reader can fetch
any run of chunks by byte range and the index can be rebuilt from xorbs alone.
This module knows nothing of backends or the index: bytes in, dataclasses out.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from .compression import Scheme, compress_frame, decompress_frame, prefers_bg4
from .errors import FormatError, HashMismatch
from .hashing import chunk_hash, xet_hex, xorb_hash
from .params import MAX_CHUNK, MAX_XORB_BYTES, MAX_XORB_CHUNKS

__all__ = [
    "HEADER_SIZE",
    "ChunkHeader",
    "XorbFooter",
    "XorbBuilder",
    "SealedXorb",
    "footer_length",
    "decode_xorb",
    "read_chunks",
    "verify_xorb",
    "encode_frame",
    "FrameBuffers",
]

HEADER_SIZE = 8
_FOOTER_IDENT = b"XETBLOB"
_HASHES_IDENT = b"XBLBHSH"
_BOUNDS_IDENT = b"XBLBBND"
_FOOTER_VERSION = 1
_FIXED_FOOTER = 92  # footer bytes besides the 40 per chunk
_MAX_FOOTER = _FIXED_FOOTER + 40 * MAX_XORB_CHUNKS
_MAX_PAYLOAD = (1 << 24) - 1  # a u24


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    """The 8-byte record header: version u8, payload u24, scheme u8, size u24."""

    payload_size: int
    scheme: int
    size: int

    def encode(self) -> bytes:
        p, s = self.payload_size, self.size
        return bytes((0, p & 255, p >> 8 & 255, p >> 16, self.scheme, s & 255, s >> 8 & 255, s >> 16))

    @classmethod
    def decode(cls, raw: bytes | memoryview, what: str) -> ChunkHeader:
        if len(raw) < HEADER_SIZE:
            raise FormatError(what, "truncated chunk header")
        if raw[0] != 0:
            raise FormatError(what, f"chunk header version {raw[0]} is not supported")
        payload = raw[1] | raw[2] << 8 | raw[3] << 16
        size = raw[5] | raw[6] << 8 | raw[7] << 16
        if size == 0 or size > MAX_CHUNK:
            raise FormatError(what, f"chunk size {size} outside 1..{MAX_CHUNK}")
        return cls(payload, raw[4], size)


@dataclass(frozen=True, slots=True)
class XorbFooter:
    """Xet's XorbObjectInfoV1: the chunk table of a xorb."""

    xorb_hash: bytes
    chunk_hashes: tuple[bytes, ...]
    serialized_ends: tuple[int, ...]  # cumulative end of each record (header + payload)
    unpacked_ends: tuple[int, ...]  # cumulative end of each chunk's plain bytes

    @property
    def num_chunks(self) -> int:
        return len(self.chunk_hashes)

    def chunk_size(self, i: int) -> int:
        return self.unpacked_ends[i] - (self.unpacked_ends[i - 1] if i else 0)

    def record_start(self, i: int) -> int:
        return self.serialized_ends[i - 1] if i else 0

    def frame_start(self, i: int) -> int:
        """Index of the chunk whose record holds the payload for chunk i."""
        while i > 0 and self.serialized_ends[i] - self.serialized_ends[i - 1] == HEADER_SIZE:
            i -= 1
        return i

    def frame_end(self, i: int) -> int:
        """One past the last chunk of the frame that holds chunk i."""
        i += 1
        while i < self.num_chunks and self.serialized_ends[i] - self.serialized_ends[i - 1] == HEADER_SIZE:
            i += 1
        return i

    def byte_range(self, first: int, end: int) -> tuple[int, int]:
        """Serialized [start, end) that holds chunks [first, end) and their frames."""
        return self.record_start(self.frame_start(first)), self.serialized_ends[end - 1]

    def encode(self) -> bytes:
        n = self.num_chunks
        hashes = b"".join(self.chunk_hashes)
        bounds = struct.pack(f"<{n}I{n}I", *self.serialized_ends, *self.unpacked_ends)
        body = b"".join((
            _FOOTER_IDENT, bytes([_FOOTER_VERSION]), self.xorb_hash,
            _HASHES_IDENT, b"\0", struct.pack("<I", n), hashes,
            _BOUNDS_IDENT, b"\1", struct.pack("<I", n), bounds,
        ))  # fmt: skip
        hashes_from_end = footer_length(n) - (8 + 32)
        bounds_from_end = 12 + 8 * n + 28
        tail = struct.pack("<III", n, hashes_from_end, bounds_from_end) + bytes(16)
        return body + tail + struct.pack("<I", footer_length(n))

    @classmethod
    def decode(cls, data: bytes | memoryview, what: str) -> XorbFooter:
        """Decode footer bytes (ending with the u32 length); validate every bound."""
        data = memoryview(data)
        if len(data) < _FIXED_FOOTER + 4:
            raise FormatError(what, "xorb footer is truncated")
        (info_len,) = struct.unpack_from("<I", data, len(data) - 4)
        if info_len != len(data) - 4 or info_len > _MAX_FOOTER:
            raise FormatError(what, f"xorb footer length {info_len} does not match")
        n = (info_len - _FIXED_FOOTER) // 40
        if info_len != footer_length(n) or n == 0:
            raise FormatError(what, f"xorb footer length {info_len} is not valid")
        if bytes(data[0:7]) != _FOOTER_IDENT or data[7] != _FOOTER_VERSION:
            raise FormatError(what, "bad xorb footer magic or version")
        fields = _decode_sections(data, n, what)
        footer = cls(bytes(data[8:40]), *fields)
        _check_bounds(footer, what)
        return footer


def footer_length(num_chunks: int) -> int:
    """Footer length for n chunks, not counting the trailing u32."""
    return _FIXED_FOOTER + 40 * num_chunks


def _decode_sections(
    data: memoryview, n: int, what: str
) -> tuple[tuple[bytes, ...], tuple[int, ...], tuple[int, ...]]:
    pos = 40
    if bytes(data[pos : pos + 8]) != _HASHES_IDENT + b"\0" or struct.unpack_from("<I", data, pos + 8)[0] != n:
        raise FormatError(what, "bad xorb footer hash section")
    pos += 12
    hashes = tuple(bytes(data[pos + 32 * i : pos + 32 * i + 32]) for i in range(n))
    pos += 32 * n
    if bytes(data[pos : pos + 8]) != _BOUNDS_IDENT + b"\1" or struct.unpack_from("<I", data, pos + 8)[0] != n:
        raise FormatError(what, "bad xorb footer boundary section")
    ends = struct.unpack_from(f"<{2 * n}I", data, pos + 12)
    return hashes, tuple(ends[:n]), tuple(ends[n:])


def _check_bounds(footer: XorbFooter, what: str) -> None:
    prev_s = prev_u = 0
    for s, u in zip(footer.serialized_ends, footer.unpacked_ends):
        if not 0 < u - prev_u <= MAX_CHUNK:
            raise FormatError(what, "xorb footer has a chunk size outside 1..128 KiB")
        if s - prev_s < HEADER_SIZE or s - prev_s > HEADER_SIZE + _MAX_PAYLOAD:
            raise FormatError(what, "xorb footer has an impossible record size")
        prev_s, prev_u = s, u
    if prev_u > MAX_XORB_BYTES:
        raise FormatError(what, "xorb holds more than 64 MiB")
    if footer.serialized_ends[0] == HEADER_SIZE:
        raise FormatError(what, "xorb starts with a chunk inside a frame")


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


def decode_xorb(data: bytes | memoryview, what: str) -> XorbFooter:
    """Decode the footer of a whole serialized xorb and check it against the data."""
    data = memoryview(data)
    if len(data) < 4:
        raise FormatError(what, "xorb is truncated")
    (info_len,) = struct.unpack_from("<I", data, len(data) - 4)
    if info_len > min(_MAX_FOOTER, len(data) - 4):
        raise FormatError(what, f"xorb footer length {info_len} is impossible")
    footer = XorbFooter.decode(data[len(data) - 4 - info_len :], what)
    if footer.serialized_ends[-1] != len(data) - 4 - info_len:
        raise FormatError(what, "xorb records do not end where the footer starts")
    return footer


def read_chunks(
    raw: bytes | memoryview, footer: XorbFooter, first: int, end: int, what: str
) -> list[bytes]:
    """Decode and verify chunks [first, end) from `raw` = footer.byte_range(first, end).

    Every chunk's hash is checked against the footer before its bytes are returned.
    """
    raw = memoryview(raw)
    if not 0 <= first < end <= footer.num_chunks:
        raise FormatError(what, f"chunk range [{first}, {end}) outside 0..{footer.num_chunks}")
    base, stop = footer.byte_range(first, end)
    if len(raw) != stop - base:
        raise FormatError(what, f"got {len(raw)} bytes for a {stop - base}-byte range")
    out: list[bytes] = []
    i = footer.frame_start(first)
    while i < end:
        plain, count = _read_frame(raw, base, footer, i, what)
        pos = 0
        for j in range(i, i + count):
            size = footer.chunk_size(j)
            if j >= first and j < end:
                out.append(_verified(plain[pos : pos + size], footer, j, what))
            pos += size
        i += count
    return out


def _read_frame(
    raw: memoryview, base: int, footer: XorbFooter, i: int, what: str
) -> tuple[bytes, int]:
    """Plain bytes of the frame starting at chunk i, and how many chunks it holds."""
    start = footer.record_start(i) - base
    header = ChunkHeader.decode(raw[start : start + HEADER_SIZE], f"{what} chunk {i}")
    count = 1
    while (
        i + count < footer.num_chunks
        and footer.serialized_ends[i + count] - footer.serialized_ends[i + count - 1] == HEADER_SIZE
    ):
        count += 1
    record_end = footer.serialized_ends[i] - base
    if header.size != footer.chunk_size(i) or start + HEADER_SIZE + header.payload_size != record_end:
        raise FormatError(f"{what} chunk {i}", "chunk header disagrees with the xorb footer")
    if header.scheme == Scheme.IN_FRAME or (header.scheme == Scheme.NONE and count > 1):
        raise FormatError(f"{what} chunk {i}", "frame structure disagrees with the xorb footer")
    for k in range(i + 1, i + count):
        pos = footer.record_start(k) - base
        if pos + HEADER_SIZE > len(raw):
            break  # chunks past the requested range: their headers were not fetched
        inner = ChunkHeader.decode(raw[pos : pos + HEADER_SIZE], f"{what} chunk {k}")
        if inner.scheme != Scheme.IN_FRAME or inner.size != footer.chunk_size(k) or inner.payload_size:
            raise FormatError(f"{what} chunk {k}", "chunk header disagrees with the xorb footer")
    size = footer.unpacked_ends[i + count - 1] - (footer.unpacked_ends[i - 1] if i else 0)
    payload = raw[start + HEADER_SIZE : record_end]
    return decompress_frame(header.scheme, payload, size, f"{what} chunk {i}"), count


def _verified(data: bytes, footer: XorbFooter, i: int, what: str) -> bytes:
    actual = chunk_hash(data)
    if actual != footer.chunk_hashes[i]:
        raise HashMismatch(
            f"{what} chunk {i}", xet_hex(footer.chunk_hashes[i]), xet_hex(actual)
        )
    return data


def verify_xorb(data: bytes | memoryview, what: str) -> XorbFooter:
    """Decode a whole xorb, re-hash every chunk and check the xorb hash."""
    footer = decode_xorb(data, what)
    read_chunks(memoryview(data)[: footer.serialized_ends[-1]], footer, 0, footer.num_chunks, what)
    sizes = [footer.chunk_size(i) for i in range(footer.num_chunks)]
    actual = xorb_hash(list(zip(footer.chunk_hashes, sizes)))
    if actual != footer.xorb_hash:
        raise HashMismatch(what, xet_hex(footer.xorb_hash), xet_hex(actual))
    return footer

