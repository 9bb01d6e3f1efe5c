"""The xorb codec: Xet's chunk records and footer, with xetstore's zstd frames.

A xorb is `[record 0] … [record n-1] [footer] [u32 footer length]`; a record is
an 8-byte chunk header and its payload. The footer lists every chunk hash and
the cumulative serialized and uncompressed end offsets, so a reader can fetch
any run of chunks by byte range and the index can be rebuilt from xorbs alone.
This module knows nothing of backends or the index: bytes in, dataclasses out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .compression import Scheme, bg4_join, decompress_frame, xor_residual
from .errors import FormatError, HashMismatch
from .hashing import chunk_hash, xet_hex, xorb_hash
from .keys import MAX_LAYOUT, xorb_key
from .params import MAX_CHUNK, MAX_PAYLOAD, MAX_XORB_BYTES, MAX_XORB_CHUNKS

__all__ = [
    "HEADER_SIZE",
    "ChunkHeader",
    "DeltaBase",
    "BaseReader",
    "DELTA_HEADER",
    "MAX_DELTA_BASE_CHUNKS",
    "encode_delta",
    "decode_delta",
    "XorbFooter",
    "footer_length",
    "decode_xorb",
    "read_chunks",
    "read_frames",
    "verify_xorb",
]

HEADER_SIZE = 8
_FOOTER_IDENT = b"XETBLOB"
_HASHES_IDENT = b"XBLBHSH"
_BOUNDS_IDENT = b"XBLBBND"
_FOOTER_VERSION = 1
_FIXED_FOOTER = 92  # footer bytes besides the 40 per chunk
_MAX_FOOTER = _FIXED_FOOTER + 40 * MAX_XORB_CHUNKS
_MAX_PAYLOAD = (1 << 24) - 1  # a u24
DELTA_HEADER = 77  # base xorb hash, first, end, offset, range hash, residual scheme
MAX_DELTA_BASE_CHUNKS = 16  # a delta's base run: at most 16 chunks (2 MiB), one range read
_RESIDUAL_SCHEMES = (Scheme.NONE, Scheme.ZSTD, Scheme.BG4_ZSTD)


class DeltaBase(NamedTuple):
    """Where a delta chunk's base bytes are: from `offset` in chunks [first, end) of a
    xorb, whose chunk hashes have the verification hash `range_hash` (as a term's)."""

    xorb_hash: bytes
    first: int
    end: int
    offset: int
    range_hash: bytes


# Gives the verified plain bytes of a base run; `what` names the delta chunk for errors.
BaseReader = Callable[[DeltaBase, str], bytes]


def encode_delta(base: DeltaBase, scheme: int, residual: bytes | memoryview) -> bytes:
    """The payload of a scheme-6 record: the base, then the residual compressed with `scheme`."""
    fields = struct.pack("<III", base.first, base.end, base.offset)
    return b"".join((base.xorb_hash, fields, base.range_hash, bytes([scheme]), residual))


def decode_delta(payload: bytes | memoryview, what: str) -> tuple[DeltaBase, int, memoryview]:
    """(base, residual scheme, residual payload) of a scheme-6 record, bounds checked."""
    payload = memoryview(payload)
    if len(payload) < DELTA_HEADER:
        raise FormatError(what, "delta record is shorter than its base reference")
    first, end, offset = struct.unpack_from("<III", payload, 32)
    if not first < end <= min(first + MAX_DELTA_BASE_CHUNKS, MAX_XORB_CHUNKS) or offset >= MAX_DELTA_BASE_CHUNKS * MAX_CHUNK:
        raise FormatError(what, f"delta base chunks [{first}, {end}) from {offset} are impossible")
    scheme = payload[76]
    if scheme not in _RESIDUAL_SCHEMES:
        raise FormatError(what, f"delta residual scheme {scheme} is not supported")
    base = DeltaBase(bytes(payload[:32]), first, end, offset, bytes(payload[44:76]))
    return base, scheme, payload[DELTA_HEADER:]


class ChunkHeader(NamedTuple):
    """The 8-byte record header: version u8, payload u24, scheme u8, size u24."""

    payload_size: int
    scheme: int
    size: int

    def encode(self) -> bytes:
        p, s = self.payload_size, self.size
        if not (0 <= p <= MAX_PAYLOAD and 0 <= s <= MAX_CHUNK):  # callers keep to these: a bug otherwise
            raise FormatError("a chunk header", f"payload {p} or chunk size {s} does not fit its u24 field")
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


class XorbFooter(NamedTuple):
    """Xet's XorbObjectInfoV1: the chunk table of a xorb."""

    xorb_hash: bytes
    chunk_hashes: tuple[bytes, ...]
    serialized_ends: tuple[int, ...]  # cumulative end of each record (header + payload)
    unpacked_ends: tuple[int, ...]  # cumulative end of each chunk's plain bytes
    # Which serialization of the xorb this table describes (docs/format.md §6.8): 0 as
    # its session wrote it, 1 recompressed by compact. Kept in the footer's reserved
    # bytes and in the shard's xorb-info flags.
    layout: int = 0

    @property
    def key(self) -> str:
        """The backend key of the object this table describes."""
        return xorb_key(self.xorb_hash, self.layout)

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
        tail = struct.pack("<IIII", n, hashes_from_end, bounds_from_end, self.layout) + bytes(12)
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
        (layout,) = struct.unpack_from("<I", data, info_len - 16)
        if layout > MAX_LAYOUT:
            raise FormatError(what, f"xorb layout {layout} is not supported")
        footer = cls(bytes(data[8:40]), *fields, layout)
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
    raw: bytes | memoryview, footer: XorbFooter, first: int, end: int, what: str, bases: BaseReader | None = None
) -> list[memoryview]:
    """Decode and verify chunks [first, end) from `raw` = footer.byte_range(first, end).

    Every chunk's hash is checked against the footer before its bytes are returned.
    """
    out: list[memoryview] = []
    for start, chunks in read_frames(raw, footer, first, end, what, bases):
        lo, hi = max(first, start), min(end, start + len(chunks))
        out += chunks[lo - start : hi - start]
    return out


def read_frames(
    raw: bytes | memoryview,
    footer: XorbFooter,
    first: int,
    end: int,
    what: str,
    bases: BaseReader | None = None,
    reach: Mapping[int, int] | None = None,
) -> list[tuple[int, list[memoryview]]]:
    """Every frame that holds chunks [first, end): (its first chunk index, its chunks).

    `raw` is footer.byte_range(first, end); a frame's payload is in its first
    record, so frames decode from their first chunk. Without `reach` they decode
    whole; with it, a zstd frame decodes only as far as `end` or, if further,
    reach[its first chunk] (what the rest of the read needs from it), and the
    frame's list stops there. Every chunk returned is verified.
    Delta chunks read their base with `bases`; without it (when reading a base)
    a delta chunk is a FormatError, so chains never grow past one delta.
    The chunks are views of their decoded frame, not copies: a restore decodes
    tens of MB of frames, and copying each chunk out again cost a restore of
    the bench's last release ~15 ms of 210 (and as many page faults).
    """
    raw = memoryview(raw)
    if not 0 <= first < end <= footer.num_chunks:
        raise FormatError(what, f"chunk range [{first}, {end}) outside 0..{footer.num_chunks}")
    base, stop = footer.byte_range(first, end)
    if len(raw) != stop - base:
        raise FormatError(what, f"got {len(raw)} bytes for a {stop - base}-byte range")
    frames: list[tuple[int, list[memoryview]]] = []
    i = footer.frame_start(first)
    while i < end:
        stop = footer.num_chunks if reach is None else max(end, reach.get(i, end))
        plain, count, checked = _read_frame(raw, base, footer, i, stop, what, bases)
        chunks: list[memoryview] = []
        view, pos = memoryview(plain), 0
        for j in range(i, i + count):
            size = footer.chunk_size(j)
            if pos + size > len(plain):
                break  # the frame was decoded only as far as `end`
            chunk = view[pos : pos + size]
            chunks.append(chunk if checked else _verified(chunk, footer, j, what))
            pos += size
        frames.append((i, chunks))
        i += count
    return frames


def _read_frame(
    raw: memoryview, base: int, footer: XorbFooter, i: int, end: int, what: str, bases: BaseReader | None
) -> tuple[bytes | memoryview, int, bool]:
    """Plain bytes of the frame starting at chunk i (at least up to chunk `end`, all
    of them unless it is a zstd frame), how many chunks it holds, and whether they
    are verified already (a delta chunk is, as it is rebuilt)."""
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
    if header.scheme == Scheme.IN_FRAME or (header.scheme in (Scheme.NONE, Scheme.DELTA) and count > 1):
        raise FormatError(f"{what} chunk {i}", "frame structure disagrees with the xorb footer")
    for k in range(i + 1, i + count):
        pos = footer.record_start(k) - base
        if pos + HEADER_SIZE > len(raw):
            break  # chunks past the requested range: their headers were not fetched
        inner = ChunkHeader.decode(raw[pos : pos + HEADER_SIZE], f"{what} chunk {k}")
        if inner.scheme != Scheme.IN_FRAME or inner.size != footer.chunk_size(k) or inner.payload_size:
            raise FormatError(f"{what} chunk {k}", "chunk header disagrees with the xorb footer")
    plain_start = footer.unpacked_ends[i - 1] if i else 0
    size = footer.unpacked_ends[i + count - 1] - plain_start
    payload = raw[start + HEADER_SIZE : record_end]
    if header.scheme == Scheme.DELTA:
        return _apply_delta(payload, size, footer.chunk_hashes[i], f"{what} chunk {i}", bases), 1, True
    if header.scheme == Scheme.NONE and len(payload) == size:
        return payload, 1, False  # a raw chunk: a view of the fetched bytes, not a copy
    want = footer.unpacked_ends[min(i + count, end) - 1] - plain_start
    return decompress_frame(header.scheme, payload, size, f"{what} chunk {i}", want), count, False


def _apply_delta(
    payload: memoryview, size: int, expected: bytes, what: str, bases: BaseReader | None
) -> bytes | memoryview:
    """A delta chunk's plain bytes, verified against `expected`, its chunk hash."""
    if bases is None:
        raise FormatError(what, "a delta chunk where only plain chunks may be (a delta's base is never a delta)")
    base, scheme, residual = decode_delta(payload, what)
    # A reader that offers the base window byte-grouped (grouped_bases.py) spares
    # regrouping and re-hashing the base; a result that is not the chunk goes the
    # verified plain way below, which names a damaged base.
    grouped: Callable[[DeltaBase, int, str], bytes | None] | None = getattr(bases, "grouped_window", None)
    if scheme == Scheme.BG4_ZSTD and grouped is not None:
        window = grouped(base, size, what)
        if window is not None:
            lanes = decompress_frame(Scheme.ZSTD, residual, size, what)  # the residual, still grouped
            joined = bg4_join(xor_residual(lanes, window))
            if chunk_hash(joined) == expected:
                return joined
    run = bases(base, what)
    if base.offset >= len(run):
        raise FormatError(what, f"delta base offset {base.offset} is past its {len(run)}-byte base")
    plain = xor_residual(decompress_frame(scheme, residual, size, what), memoryview(run)[base.offset : base.offset + size])
    actual = chunk_hash(plain)
    if actual != expected:
        raise HashMismatch(what, xet_hex(expected), xet_hex(actual))
    return plain


def _verified(data: memoryview, footer: XorbFooter, i: int, what: str) -> memoryview:
    actual = chunk_hash(data)
    if actual != footer.chunk_hashes[i]:
        raise HashMismatch(
            f"{what} chunk {i}", xet_hex(footer.chunk_hashes[i]), xet_hex(actual)
        )
    return data


def verify_xorb(data: bytes | memoryview, what: str, bases: BaseReader | None = None) -> XorbFooter:
    """Decode a whole xorb, re-hash every chunk and check the xorb hash."""
    footer = decode_xorb(data, what)
    read_chunks(memoryview(data)[: footer.serialized_ends[-1]], footer, 0, footer.num_chunks, what, bases)
    sizes = [footer.chunk_size(i) for i in range(footer.num_chunks)]
    actual = xorb_hash(list(zip(footer.chunk_hashes, sizes)))
    if actual != footer.xorb_hash:
        raise HashMismatch(what, xet_hex(footer.xorb_hash), xet_hex(actual))
    return footer

