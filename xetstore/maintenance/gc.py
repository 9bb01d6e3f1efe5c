"""Deleting files (`rm`) and collecting garbage (`gc`).

rm writes a deletion record (deletes.py) under a writer lease; nothing is
removed from the backend. gc, under a gc lease (leases.py), drives the
mechanics it shares with repair (sweep.py):

1. mark: take an inventory of the backend; refuse to delete anything while a
   shard cannot be read, since its references are unknown.
2. plan: unreferenced xorbs older than the grace period are dead; referenced
   ones whose live share is below `repack_below` (and older than the grace
   period) are repacked; shards that hold deleted manifests or describe xorbs
   about to go are replaced; records of stale leases are removed.
3. rewrite and sweep (`execute`), then old temp files (the backend's own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..backends import Backend
from ..errors import FileNotInRepository, FormatError
from ..faults import fault_point
from ..hashing import from_xet_hex
from ..index import Index
from ..params import DEFAULT_GRACE, RepositoryParams
from ..shard import Manifest
from .deletes import DeleteRecord, put_delete_record
from .inventory import take_inventory
from .leases import Lease, stale_lease_records
from .reindex import sync_index
from .sweep import GcReport, Plan, execute, maintaining, refuse_if_damaged

__all__ = ["GcOptions", "GcReport", "collect_garbage", "remove_files", "DEFAULT_GRACE"]


@dataclass(frozen=True, slots=True)
class GcOptions:
    grace: float = DEFAULT_GRACE  # seconds an unreferenced object must have existed
    repack_below: float = 0.5  # repack xorbs whose live share of bytes is below this
    dry_run: bool = False
    wait: float = 600.0  # seconds to wait for active writers before giving up


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


# -- gc ----------------------------------------------------------------------


def collect_garbage(backend: Backend, index: Index, params: RepositoryParams, options: GcOptions) -> GcReport:
    report = GcReport(options.dry_run)
    with maintaining(backend, index, act=not options.dry_run) as lease:
        now = lease.reference_time if lease else time.time()
        inv = take_inventory(backend)
        refuse_if_damaged(inv)
        plan = Plan.of_garbage(backend, inv, now, options.grace, options.repack_below)
        fault_point("gc.after_mark")
        report.describe(plan, inv)
        if lease is None:
            return report
        plan.leftovers = stale_lease_records(backend, lease)
        if plan.gone or plan.dirty or plan.leftovers or plan.superseded:
            execute(backend, lease, params, inv, plan, report, options.wait)
        lease.check()
        # Ages count from the mark, as for every other object: a temp begun while
        # this gc ran belongs to a put still in progress, whatever the grace.
        report.deleted_other += backend.sweep_temp(older_than=options.grace + max(0.0, time.time() - now))
    return report
