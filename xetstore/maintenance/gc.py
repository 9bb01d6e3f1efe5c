"""Deleting files (`rm`) and collecting garbage (`gc`).

rm writes a deletion record (deletes.py) under a writer lease; nothing is
removed from the backend. gc, under a gc lease (leases.py):

1. mark: list xorbs, then read every shard and deletion record from the
   backend (never from the local index); refuse to delete anything while a
   shard cannot be read, since its references are unknown.
2. plan: unreferenced xorbs older than the grace period are dead; referenced
   ones whose live share is below `repack_below` (and older than the grace
   period) are repacked; shards that hold deleted manifests or describe xorbs
   about to go are replaced.
3. rewrite (repack.py): new xorbs, then the replacing shard, durable.
4. sweep: enter phase sweep (writers wait; those already active are waited
   for), re-list shards and deletion records: a xorb a new shard refers to is
   rescued, a new deletion of a file the replacing shard holds is carried
   over to it. Then delete replaced shards, then dead and repacked xorbs, then
   obsolete deletion records, stale leases and old temp files, checking the
   lease before each delete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..backends import Backend
from ..delta_bases import keep_bases, rescued_bases
from ..errors import FileNotInRepository, FormatError, IntegrityError, NotFound
from ..faults import fault_point
from ..hashing import from_xet_hex
from ..index import Index
from ..keys import DELETES, LOCKS, SHARDS, SNAPSHOTS, lease_session, quarantine_key, xorb_key
from ..params import DEFAULT_GRACE, RepositoryParams
from ..shard import Manifest
from ..xorb import XorbFooter
from .deletes import DeleteRecord, decode_delete_record, delete_record_key, encode_delete_record
from .inventory import Inventory, read_shard, take_inventory
from .leases import Lease, live_leases
from .reindex import sync_index
from .repack import Rewrite, rewrite

__all__ = [
    "GcOptions",
    "GcReport",
    "Plan",
    "collect_garbage",
    "remove_files",
    "put_delete_record",
    "execute",
    "dirty_shards",
    "refuse_if_damaged",
    "DEFAULT_GRACE",
]



@dataclass(frozen=True, slots=True)
class GcOptions:
    grace: float = DEFAULT_GRACE  # seconds an unreferenced object must have existed
    repack_below: float = 0.5  # repack xorbs whose live share of bytes is below this
    dry_run: bool = False
    wait: float = 600.0  # seconds to wait for active writers before giving up


@dataclass
class GcReport:
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


@dataclass
class Plan:
    """What a gc (or a repair) removes; see the module docstring."""

    dead: set[bytes] = field(default_factory=set)
    repack: set[bytes] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)
    young: set[bytes] = field(default_factory=set)
    quarantine: set[bytes] = field(default_factory=set)  # copied to quarantine/ before removal
    leftovers: list[str] = field(default_factory=list)  # records of stale leases

    @property
    def gone(self) -> set[bytes]:
        return self.dead | self.repack


# -- rm ----------------------------------------------------------------------


def remove_files(backend: Backend, index: Index, file_hashes: list[str]) -> list[Manifest]:
    """Delete files by recording a deletion; returns their manifests.

    All file hashes are checked before anything is written.
    """
    with Lease.writer(backend) as lease:
        sync_index(backend, index)
        entries, removed = [], []
        for text in dict.fromkeys(file_hashes):
            raw = _parse(text)
            shards, manifest = index.shards_of(raw), index.manifest(raw)
            if not shards or manifest is None:
                raise FileNotInRepository(text)
            entries.append((raw, tuple(sorted(shards))))
            removed.append(manifest)
        if entries:
            key = put_delete_record(backend, lease, DeleteRecord(tuple(entries), int(time.time())))
            fault_point("rm.after_record")
            index.add_deletes(key, entries)
    return removed


def _parse(text: str) -> bytes:
    try:
        return from_xet_hex(text)
    except FormatError:
        raise FileNotInRepository(text, "a file hash is 64 hex digits, as `xetstore ls` prints") from None


def put_delete_record(backend: Backend, lease: Lease, record: DeleteRecord) -> str:
    data = encode_delete_record(record)
    key = delete_record_key(data)
    lease.check()
    backend.put(key, data)
    return key


# -- gc ----------------------------------------------------------------------


def collect_garbage(backend: Backend, index: Index, params: RepositoryParams, options: GcOptions) -> GcReport:
    report = GcReport(options.dry_run)
    lease = None if options.dry_run else Lease.gc(backend)
    try:
        now = lease.reference_time if lease else time.time()
        inv = take_inventory(backend)
        refuse_if_damaged(inv)
        plan = _plan(backend, inv, now, options)
        fault_point("gc.after_mark")
        _describe(plan, inv, report)
        if lease is None:
            return report
        plan.leftovers = _stale_leases(backend, lease)
        if plan.gone or plan.dirty or plan.leftovers:
            execute(backend, lease, params, inv, plan, report, options)
        lease.check()
        # Ages count from the mark, as for every other object: a temp begun while
        # this gc ran belongs to a put still in progress, whatever the grace.
        report.deleted_other += backend.sweep_temp(older_than=options.grace + max(0.0, time.time() - now))
    finally:
        if lease is not None:
            lease.release()
    if not options.dry_run:
        sync_index(backend, index)
    return report


def execute(
    backend: Backend, lease: Lease, params: RepositoryParams, inv: Inventory, plan: Plan, report: GcReport,
    options: GcOptions, salvage: dict[bytes, set[int]] | None = None,
) -> None:  # fmt: skip
    """Rewrite, then sweep under the exclusive phase of `lease`."""
    done = rewrite(backend, params, inv, plan.repack, plan.dirty, plan.dead, salvage)
    report.new_xorbs = [xorb_key(x.footer.xorb_hash) for x in done.new_xorbs]
    report.new_shards = [done.shard_key] if done.shard_key else []
    lease.enter_sweep(options.wait)
    _sweep(backend, lease, inv, plan, done, report)


def refuse_if_damaged(inv: Inventory) -> None:
    bad = [d for d in inv.damaged if d.key.startswith((SHARDS, SNAPSHOTS))]
    if bad:
        raise IntegrityError(
            f"gc deletes nothing while {bad[0].key} cannot be read ({bad[0].reason}): the data it refers to "
            "is unknown; run `xetstore check`, then put back a good copy or run `xetstore repair shards`"
        )


def _plan(backend: Backend, inv: Inventory, now: float, options: GcOptions) -> Plan:
    plan = Plan()
    used = inv.live_chunks()
    infos = inv.xorb_infos()
    young = {h for h, obj in inv.xorb_objects.items() if h not in used and now - obj.mtime < options.grace}
    pinned = keep_bases(backend, infos, used, young)
    for h, obj in inv.xorb_objects.items():
        old = now - obj.mtime >= options.grace
        if h not in used:
            (plan.dead if old else plan.young).add(h)
        elif old and h in infos and h not in pinned and _live_share(infos[h].footer, used[h]) < options.repack_below:
            plan.repack.add(h)
    plan.dirty = dirty_shards(inv, plan)
    return plan


def _live_share(footer: XorbFooter, live: set[int]) -> float:
    return sum(footer.chunk_size(i) for i in live if i < footer.num_chunks) / footer.unpacked_ends[-1]


def dirty_shards(inv: Inventory, plan: Plan) -> set[str]:
    gone = plan.gone
    dirty = set()
    for key, shard in inv.shards.items():
        holds_deleted = any((m.file_hash, key) in inv.dropped for m in shard.manifests)
        describes_gone = any(x.footer.xorb_hash in gone for x in shard.xorbs)
        uses_repacked = any(
            t.xorb_hash in plan.repack
            for m in shard.manifests
            if (m.file_hash, key) not in inv.dropped
            for t in m.terms
        )
        if holds_deleted or describes_gone or uses_repacked:
            dirty.add(key)
    return dirty


def _describe(plan: Plan, inv: Inventory, report: GcReport) -> None:
    """What the plan will do (all a dry run reports)."""
    report.live_files = len(inv.live_files())
    report.deleted_xorbs = sorted(xorb_key(h) for h in plan.gone)
    report.repacked_xorbs = sorted(xorb_key(h) for h in plan.repack)
    report.deleted_shards = sorted(plan.dirty)
    report.deleted_records = sorted(_obsolete_records(inv, plan.dirty))
    report.young = sorted(xorb_key(h) for h in plan.young)
    report.freed_bytes = sum(inv.xorb_objects[h].size for h in plan.gone)


def _obsolete_records(inv: Inventory, removed_shards: set[str]) -> list[str]:
    """Deletion records all of whose shards are gone once `removed_shards` are."""
    present = set(inv.shard_objects) - removed_shards
    return [k for k, rec in inv.records.items() if not any(s in present for _, shards in rec.entries for s in shards)]


def _sweep(backend: Backend, lease: Lease, inv: Inventory, plan: Plan, done: Rewrite, report: GcReport) -> None:
    rescued = _recheck(backend, lease, inv, plan, done)
    keep = {k for k in plan.dirty if any(x.footer.xorb_hash in rescued for x in inv.shards[k].xorbs)}
    removed_shards = plan.dirty - keep - {done.shard_key}  # never delete what was just written
    for key in sorted(removed_shards):
        _delete(backend, lease, key)
        fault_point("gc.during_sweep")
    fault_point("gc.after_shard_sweep")
    doomed = sorted(plan.gone - rescued - {x.footer.xorb_hash for x in done.new_xorbs})
    for h in doomed:
        if h in plan.quarantine:
            _set_aside(backend, lease, xorb_key(h))
        _delete(backend, lease, xorb_key(h))
    records = _obsolete_records(inv, removed_shards)
    for key in sorted(records):
        _delete(backend, lease, key)
    report.deleted_shards = sorted(removed_shards)
    report.deleted_xorbs = [xorb_key(h) for h in doomed]
    report.deleted_records = sorted(records)
    report.rescued = sorted(xorb_key(h) for h in rescued)
    report.freed_bytes = sum(inv.xorb_objects[h].size for h in doomed if h in inv.xorb_objects)
    report.deleted_other = _sweep_leftovers(backend, lease, plan.leftovers)


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
        record = decode_delete_record(backend.get(key), key)
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


def _set_aside(backend: Backend, lease: Lease, key: str) -> None:
    """Copy a damaged object to quarantine/ (never read again, kept for forensics)."""
    lease.check()
    try:
        backend.put(quarantine_key(key), backend.get(key))
    except NotFound:
        pass


def _stale_leases(backend: Backend, lease: Lease) -> list[str]:
    """Records of leases whose sessions are gone (temp files are the backend's to sweep)."""
    live = {i.session for i in live_leases(backend, lease)} | {lease.session}
    return [
        info.key
        for info in backend.list(LOCKS)
        if (lease_session(info.key) or ("", ""))[1] not in live
    ]


def _sweep_leftovers(backend: Backend, lease: Lease, leftovers: list[str]) -> list[str]:
    removed = []
    for item in leftovers:
        lease.check()
        backend.delete(item)
        removed.append(item)
    return removed
