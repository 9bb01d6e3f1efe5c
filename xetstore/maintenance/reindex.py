"""Keeping the local index in step with the backend: sync, rebuild, recover.

The index is a cache of what shards and deletion records say (plus xorb
footers for xorbs no shard describes). `sync_index` merges what is new; when
shards have disappeared (gc or a repair replaced them) it rebuilds, because
what a removed shard said may no longer hold. A rebuild fills a new directory
and swaps it in: a crash midway leaves the old index in place.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

from ..backends import Backend, ObjectInfo
from ..errors import IndexUnusable, IntegrityError, NotFound
from ..faults import fault_point
from ..hashing import xet_hex
from ..index import Index
from ..keys import DELETES, SHARDS, xorb_key
from ..shard import Shard
from ..xorb import XorbFooter
from .binding import unbound_manifests
from .deletes import read_delete_record
from .leases import process_alive
from .objects import Damaged, read_each, read_newest_footer, read_shard

__all__ = ["open_index", "sync_index", "rebuild_index", "RebuildReport"]

log = logging.getLogger("xetstore")

_BATCH = 64  # shards merged per index transaction during a rebuild


class RebuildReport(NamedTuple):
    shards: int
    records: int
    footers: int  # xorbs described only by their own footer
    damaged: list[Damaged]


def open_index(path: Path) -> Index:
    """Open the index; if it cannot be read, set it aside and start an empty one.

    The caller's next sync fills the new index from the shards: the index is
    derived data, so an unreadable one costs a rebuild, never an outage.
    """
    try:
        return Index.open(path)
    except IndexUnusable as exc:
        log.warning("the index at %s is unusable (%s); rebuilding it from the repository", path, exc.reason)
    _remove_aside(path, "broken")
    return Index.open(path)


def sync_index(backend: Backend, index: Index) -> tuple[int, list[Damaged]]:
    """Merge shards and deletion records the index has not seen.

    Returns how many objects were merged and the damaged ones skipped.
    """
    listed = set(backend.keys(SHARDS))
    seen = index.shard_keys()
    if seen - listed:
        report = rebuild_index(backend, index)
        return report.shards + report.records, report.damaged
    damaged: list[Damaged] = []
    merged = 0
    tables = _ChunkTables(backend, index)
    unseen = [ObjectInfo(k, 0, 0.0) for k in sorted(listed - seen)]  # read_each needs their keys only
    for info, shard in read_each(backend, unseen, read_shard, damaged):
        index.add_shard(info.key, _bound(info.key, shard, tables, damaged))
        tables.merged()
        merged += 1
    merged += _merge_records(backend, index, index.delete_keys(), damaged)
    return merged, damaged


def rebuild_index(backend: Backend, index: Index) -> RebuildReport:
    """Build a complete new index from the backend, then swap it in."""
    _sweep_leftovers(index.path)
    built = index.path.with_name(f"{index.path.name}.new-{os.getpid()}-{time.monotonic_ns()}")
    try:
        with Index.open(built) as fresh:
            report = _fill(backend, fresh)
        fault_point("index.rebuild")
    except BaseException:
        _remove_tree(built)
        raise
    index.swap_in(built)
    return report


def _fill(backend: Backend, fresh: Index) -> RebuildReport:
    batch: list[tuple[str, Shard]] = []
    damaged: list[Damaged] = []
    shards = 0
    tables = _ChunkTables(backend, fresh)
    for info, shard in read_each(backend, backend.list(SHARDS), read_shard, damaged):
        batch.append((info.key, _bound(info.key, shard, tables, damaged)))
        if len(batch) >= _BATCH:
            fresh.add_shards(batch)
            shards += len(batch)
            batch = []
            tables.merged()
    fresh.add_shards(batch)
    shards += len(batch)
    records = _merge_records(backend, fresh, set(), damaged)
    return RebuildReport(shards, records, _describe_missing_xorbs(backend, fresh, damaged), damaged)


class _ChunkTables:
    """Xorb chunk tables for binding manifests (binding.py): from the shard being
    merged, the shards read for the same batch, the index, else the xorb's footer."""

    _FOOTERS = 64  # footers read from the backend, kept for the next manifests

    def __init__(self, backend: Backend, index: Index) -> None:
        self._backend = backend
        self._index = index
        self._pending: dict[bytes, XorbFooter] = {}
        self._read: OrderedDict[bytes, XorbFooter | None] = OrderedDict()

    def pending(self, shard: Shard) -> None:
        self._pending.update((x.footer.xorb_hash, x.footer) for x in shard.xorbs)

    def merged(self) -> None:
        self._pending.clear()  # the index holds them now

    def __call__(self, xorb_hash: bytes) -> XorbFooter | None:
        if xorb_hash in self._pending:
            return self._pending[xorb_hash]
        entry = self._index.xorb(xorb_hash)
        if entry is not None:
            return entry[0]
        if xorb_hash not in self._read:
            try:
                self._read[xorb_hash] = read_newest_footer(self._backend, xorb_hash).footer
            except (NotFound, IntegrityError):
                self._read[xorb_hash] = None  # unreadable anyway; `check` reports it
            if len(self._read) > self._FOOTERS:
                self._read.popitem(last=False)
        return self._read[xorb_hash]


def _bound(key: str, shard: Shard, tables: _ChunkTables, damaged: list[Damaged]) -> Shard:
    """The shard without the manifests whose terms do not rebuild their file hash:
    merged as is, `get` of such a file would return another file's bytes."""
    tables.pending(shard)
    refused = unbound_manifests(shard.manifests, tables)
    if not refused:
        return shard
    for fh, reason in refused.items():
        damaged.append(Damaged(key, f"its manifest of file {xet_hex(fh)} was refused: {reason}"))
    return shard._replace(manifests=tuple(m for m in shard.manifests if m.file_hash not in refused))


def _merge_records(backend: Backend, index: Index, seen: set[str], damaged: list[Damaged]) -> int:
    """Apply unseen deletion records, except to files a snapshot names (always live)."""
    merged, pinned = 0, None
    unseen = (i for i in backend.list(DELETES) if i.key not in seen)
    for info, record in read_each(backend, unseen, read_delete_record, damaged):
        if pinned is None:  # read snapshots only when there is a deletion to apply
            from ..trees import read_snapshots  # here: an index sync with no deletion needs no snapshot code

            pinned = {e.file_hash for s in read_snapshots(backend)[0] for e in s.files()}
        index.add_deletes(info.key, [(f, shards) for f, shards in record.entries if f not in pinned])
        merged += 1
    return merged


def _describe_missing_xorbs(backend: Backend, index: Index, damaged: list[Damaged]) -> int:
    """Index from their own footers the xorbs live manifests use but no shard describes."""
    wanted = {t.xorb_hash for m in index.manifests() for t in m.terms}
    missing = [h for h in wanted if index.xorb(h) is None]
    found = []
    for h in missing:
        try:
            found.append(read_newest_footer(backend, h))
        except NotFound:
            continue  # `xetstore check` reports the dangling reference
        except IntegrityError as exc:
            damaged.append(Damaged(xorb_key(h), str(exc)))
    index.add_xorbs(found)
    return len(found)


def _remove_aside(path: Path, tag: str) -> None:
    if not path.exists():
        return
    aside = path.with_name(f"{path.name}.{tag}-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(path, aside)
    _remove_tree(aside)


def _remove_tree(path: Path) -> None:
    import shutil  # here: opening an index removes nothing, and shutil loads bz2 and lzma

    shutil.rmtree(path, ignore_errors=True)


def _sweep_leftovers(path: Path) -> None:
    """Remove directories of rebuilds whose process died before the swap."""
    for other in path.parent.glob(f"{path.name}.*-*-*"):
        pid = other.name.split(".", 1)[1].split("-")[1]
        if pid.isdigit() and not process_alive(int(pid)):
            _remove_tree(other)
