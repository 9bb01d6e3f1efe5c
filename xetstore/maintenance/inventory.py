"""What a repository's backend holds, and which of it is live.

check and gc both start here, from the backend itself, never from the local
index (a cache must not decide what gets deleted). A file is live while some
shard holds a manifest of it that no deletion record covers; a xorb chunk is
live while a live manifest's term covers it.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, field

from ..backends import Backend, ObjectInfo
from ..errors import FormatError, HashMismatch, IntegrityError, NotFound
from ..hashing import shard_hash, xet_hex
from ..keys import DELETES, SHARDS, XORBS, hash_in, name_in, names_its_content, xorb_key
from ..params import MAX_XORB_CHUNKS
from ..shard import Manifest, Shard, ShardXorb, decode_shard
from ..snapshot import Snapshot
from ..trees import read_snapshots
from ..xorb import XorbFooter, footer_length
from .deletes import DeleteRecord, decode_delete_record

__all__ = ["Inventory", "Damaged", "take_inventory", "read_shard", "read_xorb_footer"]



@dataclass(frozen=True, slots=True)
class Damaged:
    """An object that could not be decoded or whose name is not its content hash."""

    key: str
    reason: str


@dataclass
class Inventory:
    shards: dict[str, Shard] = field(default_factory=dict)
    shard_objects: dict[str, ObjectInfo] = field(default_factory=dict)
    records: dict[str, DeleteRecord] = field(default_factory=dict)
    record_objects: dict[str, ObjectInfo] = field(default_factory=dict)
    xorb_objects: dict[bytes, ObjectInfo] = field(default_factory=dict)
    damaged: list[Damaged] = field(default_factory=list)
    dropped: set[tuple[bytes, str]] = field(default_factory=set)  # (file hash, shard key) deleted
    snapshots: list[Snapshot] = field(default_factory=list)
    pinned: set[bytes] = field(default_factory=set)  # file hashes some snapshot names: always live

    # -- derived views ---------------------------------------------------------

    def live_pairs(self) -> list[tuple[str, Manifest]]:
        """(shard key, manifest) for every manifest no deletion record covers."""
        return [
            (key, m) for key, s in self.shards.items() for m in s.manifests if (m.file_hash, key) not in self.dropped
        ]

    def live_files(self) -> dict[bytes, Manifest]:
        return {m.file_hash: m for _, m in self.live_pairs()}

    def dead_pairs(self) -> list[tuple[str, Manifest]]:
        return [(key, m) for key, s in self.shards.items() for m in s.manifests if (m.file_hash, key) in self.dropped]

    def xorb_infos(self) -> dict[bytes, ShardXorb]:
        """The chunk table of every xorb some shard describes."""
        out: dict[bytes, ShardXorb] = {}
        for s in self.shards.values():
            for x in s.xorbs:
                out.setdefault(x.footer.xorb_hash, x)
        return out

    def live_chunks(self) -> dict[bytes, set[int]]:
        """Chunk indices each xorb must keep for the live manifests."""
        out: dict[bytes, set[int]] = defaultdict(set)
        for _, m in self.live_pairs():
            for t in m.terms:
                out[t.xorb_hash].update(range(t.first, t.end))
        return out

    def files_using(self, xorb_hashes: set[bytes], live_only: bool = True) -> dict[bytes, set[bytes]]:
        """xorb hash -> file hashes whose manifests have a term in it."""
        out: dict[bytes, set[bytes]] = defaultdict(set)
        pairs = self.live_pairs() if live_only else self.live_pairs() + self.dead_pairs()
        for _, m in pairs:
            for t in m.terms:
                if t.xorb_hash in xorb_hashes:
                    out[t.xorb_hash].add(m.file_hash)
        return out


def take_inventory(backend: Backend, skip_shards: set[str] | None = None) -> Inventory:
    """List and decode everything; damaged shards and records are reported, not raised.

    Xorbs are listed before shards: an object written between the two listings
    then shows up as a referenced shard rather than as an orphan xorb.
    """
    inv = Inventory()
    for info in backend.list(XORBS):
        raw = hash_in(info.key, XORBS)
        if raw is None:
            inv.damaged.append(Damaged(info.key, "not a xorb name (64 hex digits)"))
        else:
            inv.xorb_objects[raw] = info
    for info in backend.list(SHARDS):
        inv.shard_objects[info.key] = info
        if skip_shards and info.key in skip_shards:
            continue
        try:
            inv.shards[info.key] = read_shard(backend, info.key)
        except NotFound:
            del inv.shard_objects[info.key]  # removed while we listed
        except IntegrityError as exc:
            inv.damaged.append(Damaged(info.key, str(exc)))
    _read_records(backend, inv)
    _pin_snapshots(backend, inv)
    return inv


def _pin_snapshots(backend: Backend, inv: Inventory) -> None:
    """A file a snapshot names stays live even if a deletion record covers it
    (`rm` refuses such files; this also covers an rm racing an `add --tag`)."""
    inv.snapshots, damaged = read_snapshots(backend)
    inv.damaged += [Damaged(key, reason) for key, reason in damaged]
    inv.pinned = {e.file_hash for s in inv.snapshots for e in s.files()}
    inv.dropped = {(f, s) for f, s in inv.dropped if f not in inv.pinned}


def read_shard(backend: Backend, key: str) -> Shard:
    data = backend.get(key)
    expected = name_in(key, SHARDS)
    actual = xet_hex(shard_hash(data))
    if actual != expected:
        raise HashMismatch(f"shard {key}", expected, actual, "the shard is damaged; run `xetstore check`")
    return decode_shard(data, key)


def read_delete_record(backend: Backend, key: str) -> DeleteRecord:
    """A deletion record, checked against its name; raises NotFound or IntegrityError."""
    data = backend.get(key)
    if not names_its_content(key, DELETES, data):
        raise IntegrityError(f"{key}: content does not match its name")
    return decode_delete_record(data, key)


def _read_records(backend: Backend, inv: Inventory) -> None:
    for info in backend.list(DELETES):
        try:
            record = read_delete_record(backend, info.key)
        except NotFound:
            continue
        except IntegrityError as exc:
            inv.damaged.append(Damaged(info.key, str(exc)))
            continue
        inv.records[info.key] = record
        inv.record_objects[info.key] = info
        for file_hash, shard_keys in record.entries:
            inv.dropped.update((file_hash, s) for s in shard_keys)


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
