"""What a repository's backend holds, and which of it is live.

check and gc both start here, from the backend itself, never from the local
index (a cache must not decide what gets deleted). A file is live while some
shard holds a manifest of it that no deletion record covers; a xorb chunk is
live while a live manifest's term covers it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..backends import Backend, ObjectInfo
from ..keys import DELETES, SHARDS, XORBS, parse_xorb_key, xorb_key
from ..shard import Manifest, Shard, ShardXorb, newest_layouts
from ..snapshot import Snapshot
from ..trees import read_snapshots
from .deletes import DeleteRecord, read_delete_record
from .objects import Damaged, read_each, read_shard

__all__ = ["Inventory", "take_inventory"]


@dataclass
class Inventory:
    shards: dict[str, Shard] = field(default_factory=dict)
    shard_objects: dict[str, ObjectInfo] = field(default_factory=dict)
    records: dict[str, DeleteRecord] = field(default_factory=dict)
    record_objects: dict[str, ObjectInfo] = field(default_factory=dict)
    # Each xorb's object in the layout in use (shard.newest_layouts; if no shard
    # describes it, its highest stored one), and every object of each, by layout.
    xorb_objects: dict[bytes, ObjectInfo] = field(default_factory=dict)
    layout_objects: dict[bytes, dict[int, ObjectInfo]] = field(default_factory=dict)
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
        """The chunk table of every xorb some shard describes, in its highest layout."""
        out: dict[bytes, ShardXorb] = {}
        for s in self.shards.values():
            newest_layouts(s.xorbs, out)
        return out

    def key_of(self, xorb_hash: bytes) -> str:
        """The key of a xorb in the layout in use (named even when it is missing)."""
        obj = self.xorb_objects.get(xorb_hash)
        if obj is not None:
            return obj.key
        info = self.xorb_infos().get(xorb_hash)
        return info.footer.key if info is not None else xorb_key(xorb_hash)

    def spare_layouts(self) -> list[tuple[bytes, int, ObjectInfo]]:
        """(xorb hash, layout, object) of every stored layout that is not the one in use."""
        return [
            (h, layout, obj)
            for h, objs in self.layout_objects.items()
            for layout, obj in objs.items()
            if self.xorb_objects.get(h) is not obj
        ]

    def _choose_layouts(self) -> None:
        described = self.xorb_infos()
        for h, objs in self.layout_objects.items():
            info = described.get(h)
            layout = info.footer.layout if info is not None else max(objs)
            if layout in objs:
                self.xorb_objects[h] = objs[layout]

    def live_chunks(self) -> dict[bytes, set[int]]:
        """Chunk indices each xorb must keep for the live manifests."""
        out: dict[bytes, set[int]] = defaultdict(set)
        for _, m in self.live_pairs():
            for t in m.terms:
                out[t.xorb_hash].update(range(t.first, t.end))
        return out

    def files_losing(self, lost: dict[bytes, set[int]]) -> dict[bytes, Manifest]:
        """Live files a term of which covers a chunk in `lost` (xorb hash -> chunk indices)."""
        return {
            m.file_hash: m
            for _, m in self.live_pairs()
            if any(t.xorb_hash in lost and any(c in lost[t.xorb_hash] for c in range(t.first, t.end)) for t in m.terms)
        }

    def files_using(self, xorb_hashes: set[bytes], live_only: bool = True) -> dict[bytes, set[bytes]]:
        """xorb hash -> file hashes whose manifests have a term in it."""
        out: dict[bytes, set[bytes]] = defaultdict(set)
        pairs = self.live_pairs() if live_only else self.live_pairs() + self.dead_pairs()
        for _, m in pairs:
            for t in m.terms:
                if t.xorb_hash in xorb_hashes:
                    out[t.xorb_hash].add(m.file_hash)
        return out


def take_inventory(backend: Backend) -> Inventory:
    """List and decode everything; damaged shards and records are reported, not raised.

    Xorbs are listed before shards: an object written between the two listings
    then shows up as a referenced shard rather than as an orphan xorb.
    """
    inv = Inventory()
    for info in backend.list(XORBS):
        named = parse_xorb_key(info.key)
        if named is None:
            inv.damaged.append(Damaged(info.key, "not a xorb name (64 hex digits, then .LAYOUT for a later layout)"))
        else:
            inv.layout_objects.setdefault(named[0], {})[named[1]] = info
    listed = list(backend.list(SHARDS))
    for info, shard in read_each(backend, listed, read_shard, inv.damaged):
        inv.shards[info.key] = shard
    # a damaged shard is still an object the repository holds; a vanished one is not
    held = set(inv.shards) | {d.key for d in inv.damaged}
    inv.shard_objects = {i.key: i for i in listed if i.key in held}
    for info, record in read_each(backend, backend.list(DELETES), read_delete_record, inv.damaged):
        inv.records[info.key] = record
        inv.record_objects[info.key] = info
        for file_hash, shard_keys in record.entries:
            inv.dropped.update((file_hash, s) for s in shard_keys)
    _pin_snapshots(backend, inv)
    inv._choose_layouts()
    return inv


def _pin_snapshots(backend: Backend, inv: Inventory) -> None:
    """A file a snapshot names stays live even if a deletion record covers it
    (`rm` refuses such files; this also covers an rm racing an `add --tag`)."""
    inv.snapshots, damaged = read_snapshots(backend)
    inv.damaged += [Damaged(key, reason) for key, reason in damaged]
    inv.pinned = {e.file_hash for s in inv.snapshots for e in s.files()}
    inv.dropped = {(f, s) for f, s in inv.dropped if f not in inv.pinned}
