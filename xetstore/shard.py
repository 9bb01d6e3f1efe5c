"""The shard codec: Xet's MDB shard v2, holding manifests and xorb chunk tables.

One shard is written per add session. Its file-info section holds a manifest per
file (terms, a verification hash per term, the file's sha256); its xorb-info
section holds the chunk table of every xorb the session wrote. xetstore puts
each chunk's serialized end offset in the entry's reserved u32 so that readers
can fetch chunk ranges without reading the xorb footer (docs/format.md).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .errors import FormatError
from .hashing import ZERO_HASH, from_xet_hex, xet_hex
from .keys import MAX_LAYOUT, shard_key  # a shard's key is part of the layout; re-exported for callers of shard
from .params import MAX_CHUNK, MAX_XORB_CHUNKS
from .xorb import XorbFooter, footer_length

__all__ = [
    "Term",
    "Manifest",
    "Shard",
    "ShardXorb",
    "newest_layouts",
    "encode_shard",
    "decode_shard",
    "encode_manifest",
    "decode_manifest",
    "shard_key",
]

SHARD_TAG = b"HFRepoMetaData" + bytes(
    [0, 85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]
)
SHARD_VERSION = 2
FOOTER_SIZE = 200
FOOTER_VERSION = 1
_RECORD = 48
_BOOKEND = b"\xff" * 32 + bytes(16)
_HAS_VERIFICATION = 0x80000000
_HAS_METADATA = 0x40000000
_DELTA_CHUNK = 0x1  # xorb-info chunk entry flag: the chunk is stored as a delta (scheme 6)
_MAX_FILE_BYTES = 1 << 48  # bound on a manifest's claimed size


class Term(NamedTuple):
    """A half-open run [first, end) of chunks in one xorb, `size` plain bytes."""

    xorb_hash: bytes
    first: int
    end: int
    size: int
    range_hash: bytes = ZERO_HASH


class Manifest(NamedTuple):
    """The ordered terms that rebuild one file."""

    file_hash: bytes
    sha256: bytes  # raw 32-byte digest
    terms: tuple[Term, ...]

    @property
    def size(self) -> int:
        return sum(t.size for t in self.terms)


class ShardXorb(NamedTuple):
    """A xorb's chunk table as a shard records it; `stored_size` is its byte length,
    `deltas` the indices of its delta chunks (so gc finds their bases)."""

    footer: XorbFooter
    stored_size: int
    deltas: frozenset[int] = frozenset()


class Shard(NamedTuple):
    manifests: tuple[Manifest, ...]
    xorbs: tuple[ShardXorb, ...]
    created: int = 0  # seconds since the epoch


def newest_layouts(tables: Iterable[ShardXorb], into: dict[bytes, ShardXorb] | None = None) -> dict[bytes, ShardXorb]:
    """Xorb hash -> the table of its highest layout among `tables` (added to `into`).

    Every reader, the index and gc pick a xorb's layout by this one rule, so
    they agree whatever order shards are read in (docs/format.md §6.8).
    """
    out: dict[bytes, ShardXorb] = {} if into is None else into
    for x in tables:
        have = out.get(x.footer.xorb_hash)
        if have is None or x.footer.layout > have.footer.layout:
            out[x.footer.xorb_hash] = x
    return out




def encode_shard(shard: Shard) -> bytes:
    """Serialize a shard (files sorted by file hash, as Xet does)."""
    out = bytearray(SHARD_TAG + struct.pack("<QQ", SHARD_VERSION, FOOTER_SIZE))
    materialized = 0
    for m in sorted(shard.manifests, key=lambda m: xet_hex(m.file_hash)):
        out += encode_manifest(m)
        materialized += m.size
    out += _BOOKEND
    xorb_offset = len(out)
    stored = on_disk = 0
    for x in shard.xorbs:
        out += _encode_xorb(x)
        stored += x.footer.unpacked_ends[-1]
        on_disk += x.stored_size
    out += _BOOKEND
    lookups = len(out)
    footer = struct.pack("<QQQ", FOOTER_VERSION, _RECORD, xorb_offset)
    footer += struct.pack("<6Q", lookups, 0, lookups, 0, lookups, 0)
    footer += bytes(32) + struct.pack("<QQ", shard.created, 0) + bytes(48)
    footer += struct.pack("<QQQQ", on_disk, materialized, stored, len(out))
    return bytes(out + footer)


def encode_manifest(m: Manifest) -> bytes:
    """A manifest as shard file-info records (also the index's value format)."""
    flags = _HAS_VERIFICATION | _HAS_METADATA
    parts = [m.file_hash, struct.pack("<IIQ", flags, len(m.terms), 0)]
    for t in m.terms:
        parts.append(t.xorb_hash + struct.pack("<IIII", 0, t.size, t.first, t.end))
    for t in m.terms:
        parts.append(t.range_hash + bytes(16))
    # Xet stores the sha256 parsed as a Xet-hex hash (words byte-reversed).
    parts.append(from_xet_hex(m.sha256.hex()) + bytes(16))
    return b"".join(parts)


def _encode_xorb(x: ShardXorb) -> bytes:
    f = x.footer
    n = f.num_chunks
    parts = [f.xorb_hash, struct.pack("<IIII", f.layout, n, f.unpacked_ends[-1], x.stored_size)]
    start = 0
    for i in range(n):
        end = f.unpacked_ends[i]
        flags = _DELTA_CHUNK if i in x.deltas else 0
        parts.append(f.chunk_hashes[i] + struct.pack("<IIII", start, end - start, flags, f.serialized_ends[i]))
        start = end
    return b"".join(parts)


def decode_shard(data: bytes | memoryview, what: str) -> Shard:
    """Decode a shard, bounding every count and offset by the data's own length."""
    data = memoryview(data)
    if len(data) < 2 * _RECORD + _RECORD + FOOTER_SIZE:
        raise FormatError(what, "shard is truncated")
    if bytes(data[:32]) != SHARD_TAG:
        raise FormatError(what, "not a shard (bad magic)")
    version, fsize = struct.unpack_from("<QQ", data, 32)
    if version != SHARD_VERSION or fsize != FOOTER_SIZE:
        raise FormatError(what, f"shard version {version} is not supported")
    footer_at = len(data) - FOOTER_SIZE
    f = struct.unpack_from("<QQQ", data, footer_at)
    (footer_offset,) = struct.unpack_from("<Q", data, len(data) - 8)
    if f[0] != FOOTER_VERSION or f[1] != _RECORD or footer_offset != footer_at:
        raise FormatError(what, "bad shard footer")
    xorb_offset = f[2]
    if not _RECORD <= xorb_offset <= footer_at:
        raise FormatError(what, "shard xorb section offset out of range")
    (created,) = struct.unpack_from("<Q", data, footer_at + 104)
    manifests = _decode_files(data[:xorb_offset], what)
    xorbs = _decode_xorbs(data[:footer_at], xorb_offset, what)
    return Shard(tuple(manifests), tuple(xorbs), created)


def _record(data: memoryview, pos: int, what: str) -> memoryview:
    if pos + _RECORD > len(data):
        raise FormatError(what, f"shard record at {pos} runs past the section end")
    return data[pos : pos + _RECORD]


def _decode_files(data: memoryview, what: str) -> list[Manifest]:
    manifests: list[Manifest] = []
    pos = _RECORD
    while True:
        rec = _record(data, pos, what)
        if bytes(rec) == _BOOKEND:
            if pos + _RECORD != len(data):
                raise FormatError(what, "shard file section has bytes after its bookend")
            return manifests
        manifest, pos = _decode_manifest_at(data, pos, what)
        manifests.append(manifest)


def decode_manifest(data: bytes | memoryview, what: str) -> Manifest:
    """Inverse of encode_manifest."""
    data = memoryview(data)
    manifest, pos = _decode_manifest_at(data, 0, what)
    if pos != len(data):
        raise FormatError(what, "manifest has trailing bytes")
    return manifest


def _decode_manifest_at(data: memoryview, pos: int, what: str) -> tuple[Manifest, int]:
    rec = _record(data, pos, what)
    file_hash = bytes(rec[:32])
    flags, count, _ = struct.unpack_from("<IIQ", rec, 32)
    pos += _RECORD
    per_term = 2 if flags & _HAS_VERIFICATION else 1
    extra = 1 if flags & _HAS_METADATA else 0
    if pos + (count * per_term + extra) * _RECORD > len(data):
        raise FormatError(what, f"file {xet_hex(file_hash)} claims {count} terms past the section")
    terms = [_decode_term(_record(data, pos + k * _RECORD, what), what) for k in range(count)]
    pos += count * _RECORD
    if per_term == 2:
        hashes = [bytes(_record(data, pos + k * _RECORD, what)[:32]) for k in range(count)]
        terms = [Term(t.xorb_hash, t.first, t.end, t.size, h) for t, h in zip(terms, hashes)]
        pos += count * _RECORD
    sha = bytes(32)
    if extra:
        sha = bytes.fromhex(xet_hex(bytes(_record(data, pos, what)[:32])))
        pos += _RECORD
    if sum(t.size for t in terms) > _MAX_FILE_BYTES:
        raise FormatError(what, f"file {xet_hex(file_hash)} claims an impossible size")
    return Manifest(file_hash, sha, tuple(terms)), pos


def _decode_term(rec: memoryview, what: str) -> Term:
    _flags, size, first, end = struct.unpack_from("<IIII", rec, 32)
    if not first < end <= MAX_XORB_CHUNKS or not 0 < size <= (end - first) * MAX_CHUNK:
        raise FormatError(what, f"term [{first}, {end}) of {size} bytes is impossible")
    return Term(bytes(rec[:32]), first, end, size)


def _decode_xorbs(data: memoryview, pos: int, what: str) -> list[ShardXorb]:
    xorbs: list[ShardXorb] = []
    while True:
        rec = _record(data, pos, what)
        if bytes(rec) == _BOOKEND:
            return xorbs
        layout, count, _unpacked, stored = struct.unpack_from("<IIII", rec, 32)
        if not 0 < count <= MAX_XORB_CHUNKS or pos + (count + 1) * _RECORD > len(data):
            raise FormatError(what, f"xorb {xet_hex(bytes(rec[:32]))} claims {count} chunks")
        if layout > MAX_LAYOUT:
            raise FormatError(what, f"xorb {xet_hex(bytes(rec[:32]))} has an unknown layout {layout}")
        entries = [_record(data, pos + (k + 1) * _RECORD, what) for k in range(count)]
        xorbs.append(_decode_xorb_entry(bytes(rec[:32]), layout, entries, stored, what))
        pos += (count + 1) * _RECORD


def _decode_xorb_entry(
    xorb_hash: bytes, layout: int, entries: Sequence[memoryview], stored: int, what: str
) -> ShardXorb:
    hashes: list[bytes] = []
    unpacked: list[int] = []
    serialized: list[int] = []
    deltas: set[int] = set()
    for k, e in enumerate(entries):
        start, size, flags, serialized_end = struct.unpack_from("<IIII", e, 32)
        if flags & _DELTA_CHUNK:
            deltas.add(k)
        if start != (unpacked[-1] if unpacked else 0) or not 0 < size <= MAX_CHUNK:
            raise FormatError(what, f"xorb {xet_hex(xorb_hash)} has impossible chunk offsets or sizes")
        hashes.append(bytes(e[:32]))
        unpacked.append(start + size)
        serialized.append(serialized_end)
    footer = XorbFooter(xorb_hash, tuple(hashes), tuple(serialized), tuple(unpacked), layout)
    # Re-encode and decode: one place validates every bound of a chunk table.
    footer = XorbFooter.decode(footer.encode(), f"{what} xorb {xet_hex(xorb_hash)}")
    if stored != footer.serialized_ends[-1] + footer_length(footer.num_chunks) + 4:
        raise FormatError(what, f"xorb {xet_hex(xorb_hash)} has a wrong stored size")
    return ShardXorb(footer, stored, frozenset(deltas))
