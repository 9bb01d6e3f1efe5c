"""Reading one stored object, checked against its name, and the loop every
listing of the backend shares.

check, gc, repair and the index sync all list shards or deletion records and
read each one. An object removed between the listing and the read is skipped
(a gc replaced it); one that cannot be decoded, or whose name is not its
content hash, is reported as `Damaged` and never raised: one bad object must
not hide all the others.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..backends import Backend, ObjectInfo
from ..errors import FormatError, HashMismatch, IntegrityError, NotFound
from ..hashing import shard_hash, xet_hex
from ..keys import SHARDS, name_in, xorb_key
from ..params import MAX_XORB_CHUNKS
from ..shard import Shard, ShardXorb, decode_shard
from ..xorb import XorbFooter, footer_length

__all__ = ["Damaged", "read_each", "read_shard", "read_xorb_footer"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Damaged:
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


def read_xorb_footer(backend: Backend, xorb_hash: bytes) -> ShardXorb:
    """A xorb's chunk table read from its own footer (two ranged reads, bounded)."""
    key = xorb_key(xorb_hash)
    size = backend.stat(key).size
    if size < 4:
        raise FormatError(key, f"xorb is truncated to {size} bytes")
    (length,) = struct.unpack("<I", backend.get(key, size - 4, size))
    if length > min(footer_length(MAX_XORB_CHUNKS), size - 4):
        raise FormatError(key, f"xorb footer length {length} is impossible for a {size}-byte xorb")
    footer = XorbFooter.decode(backend.get(key, size - 4 - length, size), key)
    if footer.xorb_hash != xorb_hash:
        raise HashMismatch(f"footer of {key}", xet_hex(xorb_hash), xet_hex(footer.xorb_hash))
    if footer.serialized_ends[-1] + length + 4 != size:
        raise FormatError(key, "xorb records do not end where the footer starts")
    return ShardXorb(footer, size)
