"""Reading one stored object, checked against its name (and, for a xorb's
data, chunk by chunk), and the loop every listing of the backend shares.

check, gc, repair and the index sync all list shards or deletion records and
read each one. An object removed between the listing and the read is skipped
(a gc replaced it); one that cannot be decoded, or whose name is not its
content hash, is reported as `Damaged` and never raised: one bad object must
not hide all the others.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, TypeVar

from ..backends import Backend, ObjectInfo
from ..errors import FormatError, HashMismatch, IntegrityError, NotFound, ObjectNotFound
from ..hashing import shard_hash, xet_hex
from ..keys import SHARDS, name_in, parse_xorb_key, xorb_key
from ..params import MAX_XORB_CHUNKS
from ..shard import Shard, ShardXorb, decode_shard
from ..xorb import BaseReader, XorbFooter, footer_length, read_chunks, verify_xorb

__all__ = ["Damaged", "damaged_chunks", "read_each", "read_shard", "read_xorb_footer", "read_newest_footer"]

T = TypeVar("T")


class Damaged(NamedTuple):
    """An object that could not be decoded or whose name is not its content hash."""

    key: str
    reason: str


def read_each(
    backend: Backend, listed: Iterable[ObjectInfo], read: Callable[[Backend, str], T], damaged: list[Damaged]
) -> Iterator[tuple[ObjectInfo, T]]:
    """`read` every listed object; vanished ones are skipped, damaged ones reported."""
    for info in listed:
        try:
            obj = read(backend, info.key)
        except NotFound:
            continue  # removed since it was listed
        except IntegrityError as exc:
            damaged.append(Damaged(info.key, str(exc)))
            continue
        yield info, obj


def read_shard(backend: Backend, key: str) -> Shard:
    data = backend.get(key)
    expected = name_in(key, SHARDS)
    actual = xet_hex(shard_hash(data))
    if actual != expected:
        raise HashMismatch(f"shard {key}", expected, actual, "the shard is damaged; run `xetstore check`")
    return decode_shard(data, key)


def read_xorb_footer(backend: Backend, xorb_hash: bytes, layout: int = 0) -> ShardXorb:
    """A xorb's chunk table read from its own footer (two ranged reads, bounded)."""
    key = xorb_key(xorb_hash, layout)
    size = backend.stat(key).size
    if size < 4:
        raise FormatError(key, f"xorb is truncated to {size} bytes")
    (length,) = struct.unpack("<I", backend.get(key, size - 4, size))
    if length > min(footer_length(MAX_XORB_CHUNKS), size - 4):
        raise FormatError(key, f"xorb footer length {length} is impossible for a {size}-byte xorb")
    footer = XorbFooter.decode(backend.get(key, size - 4 - length, size), key)
    if footer.xorb_hash != xorb_hash:
        raise HashMismatch(f"footer of {key}", xet_hex(xorb_hash), xet_hex(footer.xorb_hash))
    if footer.layout != layout:
        raise FormatError(key, f"its footer says layout {footer.layout}, its name {layout}")
    if footer.serialized_ends[-1] + length + 4 != size:
        raise FormatError(key, "xorb records do not end where the footer starts")
    return ShardXorb(footer, size)


def read_newest_footer(backend: Backend, xorb_hash: bytes) -> ShardXorb:
    """The chunk table of a xorb no shard describes, from the footer of its highest
    stored layout (a listing finds them); NotFound if none is stored."""
    named = (parse_xorb_key(info.key) for info in backend.list(xorb_key(xorb_hash)))
    layouts = [n[1] for n in named if n is not None and n[0] == xorb_hash]
    if not layouts:
        raise ObjectNotFound(xorb_key(xorb_hash))
    return read_xorb_footer(backend, xorb_hash, max(layouts))


def damaged_chunks(
    data: bytes, info: ShardXorb | None, h: bytes, key: str, bases: BaseReader | None = None
) -> tuple[set[int] | None, str]:
    """(damaged chunk indices, reason), or (set(), "") when the xorb is intact.

    Chunks are judged with the chunk table the shard records (the xorb's own
    footer may be the damaged part); None means they cannot be judged at all.
    """
    own: XorbFooter | None = None
    try:
        own = verify_xorb(data, key, bases)
        reason = _footer_problem(data, own, info, h)
    except IntegrityError as exc:
        reason = str(exc)
    if not reason:
        return set(), ""
    table = info.footer if info is not None else own
    return (None if table is None else _bad_frames(data, table, key, bases)), reason


def _footer_problem(data: bytes, own: XorbFooter, info: ShardXorb | None, h: bytes) -> str:
    if own.xorb_hash != h:
        return f"its content is xorb {xet_hex(own.xorb_hash)}, not its name"
    if bytes(data[own.serialized_ends[-1] :]) != own.encode():
        return "its footer holds bytes that differ from the canonical encoding"
    if info is not None and own != info.footer:
        return "its footer disagrees with the chunk table its shard records"
    return ""


def _bad_frames(data: bytes, footer: XorbFooter, key: str, bases: BaseReader | None) -> set[int]:
    """Chunks that do not decode to their hashes, judged with `footer`.

    A frame that fails is retried chunk by chunk: a flipped byte inside a zstd
    frame may spoil one chunk and leave the others intact.
    """
    bad: set[int] = set()
    i = 0
    while i < footer.num_chunks:
        end = footer.frame_end(i)
        if not _decodes(data, footer, i, end, key, bases):
            bad.update(j for j in range(i, end) if not _decodes(data, footer, j, j + 1, key, bases))
        i = end
    return bad


def _decodes(data: bytes, footer: XorbFooter, first: int, end: int, key: str, bases: BaseReader | None) -> bool:
    start, stop = footer.byte_range(first, end)
    try:
        read_chunks(memoryview(data)[start:stop], footer, first, end, key, bases)
    except IntegrityError:
        return False
    return True
