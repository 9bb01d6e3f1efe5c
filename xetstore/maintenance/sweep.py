"""The mechanics gc and repair share: inventory → plan → rewrite → sweep.

Both start from `take_inventory` (the backend, never the local index) and
refuse while a shard or snapshot cannot be read, since its references are
unknown. A `Plan` names what goes: dead xorbs, xorbs to repack (their live
chunks move to new xorbs), the shards that must be replaced, and the xorbs
to set aside in quarantine/ first. gc plans from liveness and age
(`Plan.of_garbage`), repair from damage (`Plan.of_damage`).

`execute` then rewrites (repack.py: new xorbs, then the replacing shard,
durable) and sweeps under the exclusive phase of the gc lease: writers wait,
and those already active are waited for. The sweep re-lists shards and
deletion records: a xorb a new shard refers to is rescued, and a new deletion
of a file the replacing shard holds is carried over to it. Then it deletes
replaced shards, dead and repacked xorbs, obsolete deletion records and
stale lease records, checking the lease before each delete.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..backends import Backend
from ..delta_bases import keep_bases, rescued_bases
from ..errors import IntegrityError, NotFound
from ..faults import fault_point
from ..index import Index
from ..keys import DELETES, SHARDS, SNAPSHOTS, quarantine_key
from ..params import RepositoryParams
from ..shard import ShardXorb
from ..xorb import XorbFooter
from .deletes import DeleteRecord, put_delete_record, read_delete_record
from .inventory import Inventory
from .leases import Lease
from .objects import read_shard
from .reindex import sync_index
from .repack import Rewrite, rewrite

__all__ = ["GcReport", "Plan", "execute", "maintaining", "refuse_if_damaged", "set_aside"]


@contextmanager
def maintaining(backend: Backend, index: Index, act: bool) -> Iterator[Lease | None]:
    """A gc lease while the body acts (None when it only reports), then, once it
    acted without error, the index synced with what it changed."""
    lease = Lease.gc(backend) if act else None
    try:
        yield lease
    finally:
        if lease is not None:
            lease.release()
    if act:
        sync_index(backend, index)


@dataclass
class GcReport:
    """What a collection did (or, dry, would do); repair's salvage reports one too."""

    dry_run: bool
    live_files: int = 0
    deleted_xorbs: list[str] = field(default_factory=list)
    deleted_shards: list[str] = field(default_factory=list)
    deleted_records: list[str] = field(default_factory=list)
    deleted_other: list[str] = field(default_factory=list)  # stale leases, old temp files
    repacked_xorbs: list[str] = field(default_factory=list)
    new_xorbs: list[str] = field(default_factory=list)
    new_shards: list[str] = field(default_factory=list)
    young: list[str] = field(default_factory=list)  # unreferenced, inside the grace period: kept
    rescued: list[str] = field(default_factory=list)  # used by a shard written during gc: kept
    freed_bytes: int = 0

    def describe(self, plan: Plan, inv: Inventory) -> None:
        """What `plan` will do (all a dry run reports)."""
        self.live_files = len(inv.live_files())
        self.deleted_xorbs = sorted([inv.key_of(h) for h in plan.gone] + list(plan.superseded))
        self.repacked_xorbs = sorted(inv.key_of(h) for h in plan.repack)
        self.deleted_shards = sorted(plan.dirty)
        self.deleted_records = sorted(obsolete_records(inv, plan.dirty))
        self.young = sorted(inv.key_of(h) for h in plan.young)
        self.freed_bytes = sum(o.size for h in plan.gone for o in inv.layout_objects.get(h, {}).values())
        self.freed_bytes += sum(plan.superseded.values())


@dataclass
class Plan:
    """What a gc or a repair removes; see the module docstring."""

    dead: set[bytes] = field(default_factory=set)
    repack: set[bytes] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)
    young: set[bytes] = field(default_factory=set)
    quarantine: set[bytes] = field(default_factory=set)  # copied to quarantine/ before removal
    superseded: dict[str, int] = field(default_factory=dict)  # key -> size of layouts reads no longer use
    leftovers: list[str] = field(default_factory=list)  # records of stale leases

    @property
    def gone(self) -> set[bytes]:
        return self.dead | self.repack

    @classmethod
    def of_garbage(
        cls, backend: Backend, inv: Inventory, now: float, grace: float, repack_below: float
    ) -> Plan:
        """Unreferenced xorbs older than `grace` go; sparse old ones (live share
        below `repack_below`) are repacked unless a live delta reads its base there."""
        plan = cls()
        used = inv.live_chunks()
        infos = inv.xorb_infos()
        young = {h for h, obj in inv.xorb_objects.items() if h not in used and now - obj.mtime < grace}
        pinned = keep_bases(backend, infos, used, young)
        for h, obj in inv.xorb_objects.items():
            old = now - obj.mtime >= grace
            if h not in used:
                (plan.dead if old else plan.young).add(h)
            elif old and h in infos and h not in pinned and _live_share(infos[h].footer, used[h]) < repack_below:
                plan.repack.add(h)
        plan.superseded = _superseded(inv, infos, now, grace)
        plan.dirty = _dirty_shards(inv, plan)
        return plan

    @classmethod
    def of_damage(cls, inv: Inventory, lost: dict[bytes, set[int]]) -> Plan:
        """Damaged xorbs still used (by their intact chunks) are repacked, the
        others go; all are set aside in quarantine/ first."""
        used = inv.live_chunks()
        plan = cls()
        for h in lost:
            if h in inv.xorb_objects:
                (plan.repack if h in used else plan.dead).add(h)
        plan.quarantine = set(plan.dead | plan.repack)
        plan.dirty = _dirty_shards(inv, plan)
        return plan


def refuse_if_damaged(inv: Inventory) -> None:
    bad = [d for d in inv.damaged if d.key.startswith((SHARDS, SNAPSHOTS))]
    if bad:
        raise IntegrityError(
            f"gc deletes nothing while {bad[0].key} cannot be read ({bad[0].reason}): the data it refers to "
            "is unknown; run `xetstore check`, then put back a good copy or run `xetstore repair shards`"
        )


def execute(
    backend: Backend, lease: Lease, params: RepositoryParams, inv: Inventory, plan: Plan, report: GcReport,
    wait: float, salvage: dict[bytes, set[int]] | None = None,
) -> None:  # fmt: skip
    """Rewrite, then sweep under the exclusive phase of `lease` (entered within `wait` seconds)."""
    done = rewrite(backend, params, inv, plan.repack, plan.dirty, plan.dead, salvage)
    report.new_xorbs = [x.footer.key for x in done.new_xorbs]
    report.new_shards = [done.shard_key] if done.shard_key else []
    lease.enter_sweep(wait)
    _sweep(backend, lease, inv, plan, done, report)


def set_aside(backend: Backend, lease: Lease, key: str) -> bool:
    """Copy a damaged object to quarantine/ (never read again, kept for forensics).

    Returns whether it was there to copy."""
    lease.check()
    try:
        backend.put(quarantine_key(key), backend.get(key))
    except NotFound:
        return False
    return True


def obsolete_records(inv: Inventory, removed_shards: set[str]) -> list[str]:
    """Deletion records all of whose shards are gone once `removed_shards` are."""
    present = set(inv.shard_objects) - removed_shards
    return [k for k, rec in inv.records.items() if not any(s in present for _, shards in rec.entries for s in shards)]


def _live_share(footer: XorbFooter, live: set[int]) -> float:
    return sum(footer.chunk_size(i) for i in live if i < footer.num_chunks) / footer.unpacked_ends[-1]


def _superseded(inv: Inventory, infos: dict[bytes, ShardXorb], now: float, grace: float) -> dict[str, int]:
    """Stored layouts of a xorb other than the one in use, which may go: a lower one
    once every shard describing the layout in use is older than `grace` (a reader
    that chose the lower layout before has had that long to finish), a higher one
    no shard describes (an interrupted compact) once it is older than `grace`.
    Never while the layout in use is missing: the lower one may be all there is."""
    described_since: dict[tuple[bytes, int], float] = {}
    for key, shard in inv.shards.items():
        mtime = inv.shard_objects[key].mtime
        for x in shard.xorbs:
            at = (x.footer.xorb_hash, x.footer.layout)
            described_since[at] = min(mtime, described_since.get(at, mtime))
    out = {}
    for h, layout, obj in inv.spare_layouts():
        in_use = infos.get(h)
        if h not in inv.xorb_objects or in_use is None:
            continue
        since = described_since[(h, in_use.footer.layout)]
        if layout < in_use.footer.layout and now - since >= grace or layout > in_use.footer.layout and now - obj.mtime >= grace:
            out[obj.key] = obj.size
    return out


def _dirty_shards(inv: Inventory, plan: Plan) -> set[str]:
    """Shards to replace: they hold a deleted manifest, describe a xorb that
    goes or a layout that is gone, or have a live manifest using a repacked one."""
    gone, infos = plan.gone, inv.xorb_infos()
    dirty = set()
    for key, shard in inv.shards.items():
        holds_deleted = any((m.file_hash, key) in inv.dropped for m in shard.manifests)
        describes_gone = any(x.footer.xorb_hash in gone or _stale(inv, plan, infos, x) for x in shard.xorbs)
        uses_repacked = any(
            t.xorb_hash in plan.repack
            for m in shard.manifests
            if (m.file_hash, key) not in inv.dropped
            for t in m.terms
        )
        if holds_deleted or describes_gone or uses_repacked:
            dirty.add(key)
    return dirty


def _stale(inv: Inventory, plan: Plan, infos: dict[bytes, ShardXorb], table: ShardXorb) -> bool:
    """Whether `table` describes a layout below the one in use that goes now or is
    gone, while the one in use exists: its shard is rewritten without it, or a
    compacted repository would keep two chunk tables of every xorb (48 bytes a chunk)."""
    h, layout = table.footer.xorb_hash, table.footer.layout
    in_use = infos.get(h)
    if in_use is None or layout >= in_use.footer.layout or h not in inv.xorb_objects:
        return False
    return table.footer.key in plan.superseded or layout not in inv.layout_objects.get(h, {})


def _sweep(backend: Backend, lease: Lease, inv: Inventory, plan: Plan, done: Rewrite, report: GcReport) -> None:
    rescued = _recheck(backend, lease, inv, plan, done)
    keep = {k for k in plan.dirty if any(x.footer.xorb_hash in rescued for x in inv.shards[k].xorbs)}
    removed_shards = plan.dirty - keep - {done.shard_key}  # never delete what was just written
    for key in sorted(removed_shards):
        _delete(backend, lease, key)
        fault_point("gc.during_sweep")
    fault_point("gc.after_shard_sweep")
    doomed = sorted(plan.gone - rescued - {x.footer.xorb_hash for x in done.new_xorbs})
    deleted = []
    for h in doomed:
        if h in plan.quarantine:
            set_aside(backend, lease, inv.key_of(h))
        for obj in inv.layout_objects.get(h, {}).values() or [None]:
            deleted.append(obj.key if obj else inv.key_of(h))
            _delete(backend, lease, deleted[-1])
    for key in sorted(plan.superseded):
        if key not in deleted:
            _delete(backend, lease, key)
            deleted.append(key)
    records = obsolete_records(inv, removed_shards)
    for key in sorted(records):
        _delete(backend, lease, key)
    report.deleted_shards = sorted(removed_shards)
    report.deleted_xorbs = sorted(deleted)
    report.deleted_records = sorted(records)
    report.rescued = sorted(inv.key_of(h) for h in rescued)
    sizes = {o.key: o.size for objs in inv.layout_objects.values() for o in objs.values()}
    report.freed_bytes = sum(sizes.get(key, 0) for key in deleted)
    for key in plan.leftovers:
        _delete(backend, lease, key)
    report.deleted_other = list(plan.leftovers)


def _recheck(backend: Backend, lease: Lease, inv: Inventory, plan: Plan, done: Rewrite) -> set[bytes]:
    """Under the sweep lease: what appeared since the mark. Returns rescued xorbs."""
    gone, rescued = plan.gone, set[bytes]()
    infos = inv.xorb_infos()
    for info in backend.list(SHARDS):
        if info.key in inv.shard_objects or info.key == done.shard_key:
            continue
        shard = read_shard(backend, info.key)  # a damaged new shard aborts the sweep
        for m in shard.manifests:
            rescued.update(t.xorb_hash for t in m.terms if t.xorb_hash in gone)
        infos.update((x.footer.xorb_hash, x) for x in shard.xorbs)
        rescued |= rescued_bases(backend, infos, {x.footer.xorb_hash for x in shard.xorbs} | rescued, gone)
    for info in backend.list(DELETES):
        if info.key not in inv.records and done.shard_key:
            _carry_over(backend, lease, info.key, plan.dirty, done)
    return rescued


def _carry_over(backend: Backend, lease: Lease, key: str, dirty: set[str], done: Rewrite) -> None:
    """A deletion written during gc that names a replaced shard also covers its replacement."""
    try:
        record = read_delete_record(backend, key)
    except NotFound:
        return
    entries = tuple(
        (fh, (done.shard_key,)) for fh, shards in record.entries if fh in done.manifests and set(shards) & dirty
    )
    if entries:
        put_delete_record(backend, lease, DeleteRecord(entries, record.created))


def _delete(backend: Backend, lease: Lease, key: str) -> None:
    lease.check()
    backend.delete(key)
