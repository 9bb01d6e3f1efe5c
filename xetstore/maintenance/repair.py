"""`xetstore repair xorbs|shards`: the safe answer to damaged objects.

Nothing is ever zero-filled or guessed. Without confirmation a repair only
reports: the damaged objects and every file that can no longer be read. With
confirmation, `repair xorbs` records the lost files as deleted, moves each
damaged xorb's intact chunks that surviving files use into new xorbs (a gc
restricted to the damaged xorbs), and sets the damaged xorbs aside under
`quarantine/`. `repair shards` sets aside shards and deletion records that
cannot be decoded; the files only they recorded cannot be listed any more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..backends import Backend
from ..delta_bases import base_reader, bases_needed
from ..errors import IntegrityError, NotFound, Refused
from ..faults import fault_point
from ..hashing import xet_hex
from ..index import Index
from ..keys import XORBS, layout_of, parse_xorb_key, quarantine_key, staged_key
from ..params import MAX_XORB_CHUNKS, RepositoryParams
from ..shard import Manifest, ShardXorb
from ..xorb import BaseReader, verify_xorb
from .deletes import DeleteRecord, put_delete_record
from .inventory import Inventory, take_inventory
from .leases import Lease
from .objects import damaged_chunks, read_xorb_footer
from .sweep import GcReport, Plan, execute, maintaining, refuse_if_damaged, set_aside

__all__ = ["XorbRepair", "ShardRepair", "repair_xorbs", "repair_shards"]

_WAIT = 600.0  # seconds a confirmed repair waits for active writers, as gc does by default


@dataclass
class XorbRepair:
    confirmed: bool
    damaged: dict[str, str] = field(default_factory=dict)  # xorb key -> reason
    lost_files: list[Manifest] = field(default_factory=list)
    salvaged_xorbs: list[str] = field(default_factory=list)  # damaged xorbs whose good chunks were kept
    gc: GcReport | None = None


@dataclass
class ShardRepair:
    confirmed: bool
    damaged: dict[str, str] = field(default_factory=dict)  # key -> reason


def repair_xorbs(backend: Backend, index: Index, params: RepositoryParams, confirm: bool) -> XorbRepair:
    """Find damaged or missing xorbs and the files they cost; with `confirm`, act."""
    with maintaining(backend, index, confirm) as lease:
        inv = take_inventory(backend)
        refuse_if_damaged(inv)
        lost_chunks, out = _scan(backend, inv, confirm)
        lost = inv.files_losing(lost_chunks)
        out.lost_files = sorted(lost.values(), key=lambda m: m.file_hash)
        if lease is not None and lost_chunks:
            _salvage(backend, lease, params, inv, lost_chunks, list(lost), out)
    return out


def _salvage(
    backend: Backend, lease: Lease, params: RepositoryParams, inv: Inventory, lost_chunks: dict[bytes, set[int]],
    lost_files: list[bytes], out: XorbRepair,
) -> None:  # fmt: skip
    """Rewrite xorbs whose chunks are all intact; record the lost files as deleted;
    move the intact chunks of the others into new xorbs and set them aside."""
    for h in [h for h, bad in lost_chunks.items() if not bad and h in inv.xorb_objects]:
        infos = inv.xorb_infos()
        _rewrite_whole(backend, lease, inv.key_of(h), infos[h], base_reader(backend, infos))  # every chunk is intact
        out.salvaged_xorbs.append(inv.key_of(h))
        del lost_chunks[h]
    if not lost_chunks:
        return
    _refuse_if_a_base(backend, inv, set(lost_chunks))
    if lost_files:
        pairs = inv.live_pairs()
        entries = tuple((fh, tuple(sorted(k for k, m in pairs if m.file_hash == fh))) for fh in lost_files)
        put_delete_record(backend, lease, DeleteRecord(entries, int(time.time())))
        inv = take_inventory(backend)
    plan = Plan.of_damage(inv, lost_chunks)
    out.salvaged_xorbs = sorted(out.salvaged_xorbs + [inv.key_of(h) for h in plan.repack])
    out.gc = GcReport(dry_run=False)
    execute(backend, lease, params, inv, plan, out.gc, _WAIT, salvage=lost_chunks)


def _scan(backend: Backend, inv: Inventory, confirm: bool) -> tuple[dict[bytes, set[int]], XorbRepair]:
    """Damaged chunks of every xorb a live file uses (all of them if it is missing)."""
    out = XorbRepair(confirm)
    lost: dict[bytes, set[int]] = {}
    infos = inv.xorb_infos()
    bases = base_reader(backend, infos)  # a delta chunk is intact if it decodes against its base
    for h in inv.live_chunks():
        key = inv.key_of(h)
        info = infos.get(h)
        try:
            data = backend.get(key)
            if info is None:
                info = read_xorb_footer(backend, h, layout_of(key))
        except NotFound:
            if _restore_staged(backend, key, info, confirm):
                continue
            data, reason = b"", "missing"
        except IntegrityError as exc:  # no shard describes it and its footer is bad
            data, reason = b"", str(exc)
        if data and info is not None:
            bad, reason = damaged_chunks(data, info, h, key, bases)
            if not reason:
                continue
            lost[h] = set(range(info.footer.num_chunks)) if bad is None else bad
        else:
            lost[h] = set(range(info.footer.num_chunks if info is not None else MAX_XORB_CHUNKS))
        out.damaged[key] = reason
    return lost, out


def _refuse_if_a_base(backend: Backend, inv: Inventory, damaged: set[bytes]) -> None:
    """Salvage moves chunks to new xorbs, but a delta names its base's location:
    refuse (before anything changes) while another xorb's deltas read a damaged one."""
    infos = inv.xorb_infos()
    others = {h: set(x.deltas) for h, x in infos.items() if x.deltas and h not in damaged}
    blocked = sorted(set(bases_needed(backend, infos, others)) & damaged)
    if blocked:
        raise Refused(
            f"repair cannot set aside xorbs/{xet_hex(blocked[0])}: delta chunks in other xorbs read their "
            "bases from it; put back a good copy of it, or remove the files `xetstore check --read-data` "
            "names and run `xetstore gc` first"
        )


def _rewrite_whole(backend: Backend, lease: Lease, key: str, info: ShardXorb, bases: BaseReader) -> None:
    """Replace a xorb whose chunks are intact but whose other bytes are not.

    Every chunk decoded with the shard's chunk table, so the records are intact:
    the rewrite is those records and the footer the shard records, which is the
    layout the shard describes whatever encoder or level wrote it. It has the
    same name, so the good copy is staged in quarantine/ first: a crash between
    the delete and the put leaves it there, and the next `repair xorbs` puts it back.
    """
    damaged = backend.get(key)
    good = bytes(damaged[: info.footer.serialized_ends[-1]]) + info.footer.encode()
    verify_xorb(good, f"rewritten {key}", bases)
    lease.check()
    backend.put(staged_key(key), good)
    backend.put(quarantine_key(key), damaged)
    backend.delete(key)
    fault_point("repair.after_delete")
    backend.put(key, good)
    backend.delete(staged_key(key))


def _restore_staged(backend: Backend, key: str, info: ShardXorb | None, confirm: bool) -> bool:
    """Put back the good copy an interrupted rewrite staged; whether one exists."""
    h = parse_xorb_key(key)
    try:
        data = backend.get(staged_key(key))
    except NotFound:
        return False
    footer = verify_xorb(data, staged_key(key))
    if h is None or (footer.xorb_hash, footer.layout) != h or (info is not None and footer != info.footer):
        return False
    if confirm:
        backend.put(key, data)
        backend.delete(staged_key(key))
    return True


def repair_shards(backend: Backend, index: Index, confirm: bool) -> ShardRepair:
    """Set aside shards and deletion records that cannot be decoded."""
    out = ShardRepair(confirm)
    with maintaining(backend, index, confirm) as lease:
        inv = take_inventory(backend)
        bad = [d for d in inv.damaged if not d.key.startswith(XORBS)]
        out.damaged = {d.key: d.reason for d in bad}
        if lease is not None and bad:
            lease.enter_sweep()
            for d in bad:
                if set_aside(backend, lease, d.key):
                    backend.delete(d.key)
    return out
