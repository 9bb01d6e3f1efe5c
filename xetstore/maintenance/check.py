"""`xetstore check`: is everything a live file needs present and intact?

Structure (always): the shards and deletion records decode and are named by
their content hash; every term of every live manifest names an existing xorb
and a valid chunk range of it; every xorb has the size its shard records; the
local index agrees with the shards. With read_data, every selected xorb is
fetched, decompressed and re-hashed chunk by chunk, so damage is pinned to
chunks and from them to the files that use them.

Orphans (xorbs no live file uses) are information, not damage: an interrupted
add leaves them and gc removes them (restic's lesson: do not alarm users).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..backends import Backend
from ..delta_bases import keep_bases
from ..errors import (
    EXIT_DAMAGED,
    EXIT_FAILURE,
    EXIT_OK,
    AccessDenied,
    BackendError,
    ConfigError,
    IndexUnusable,
    IntegrityError,
    NotFound,
)
from ..hashing import ZERO_HASH, hash_mod, range_hash, xet_hex
from ..index import Index
from ..keys import DELETES, SHARDS, SNAPSHOTS, layout_of
from ..shard import Manifest, ShardXorb
from ..smudge import Reconstructor
from ..xorb import BaseReader, XorbFooter
from .binding import unbound_reason
from .inventory import Inventory, take_inventory
from .leases import Lease
from .objects import damaged_chunks, read_xorb_footer
from .reindex import sync_index

__all__ = [
    "Problem",
    "CheckReport",
    "check_repository",
    "parse_subset",
    "DAMAGE",
    "INFO",
    "UNCHECKED",
]

DAMAGE, INFO, UNCHECKED = "damage", "info", "unchecked"
_FIX_INDEX = "run `xetstore repair index`"
_FIX_XORB = "run `xetstore repair xorbs` to see what can be saved, or put back a good copy of the object"


@dataclass(frozen=True, slots=True)
class Problem:
    severity: str  # DAMAGE, INFO or UNCHECKED
    key: str  # the object: a backend key, or "index"
    reason: str
    files: tuple[str, ...] = ()  # file hashes (Xet hex) of the live files affected
    hint: str = ""


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    shards: int = 0
    xorbs: int = 0
    files: int = 0
    xorbs_read: int = 0
    bytes_read: int = 0

    @property
    def damaged(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == DAMAGE]

    @property
    def exit_code(self) -> int:
        if self.damaged:
            return EXIT_DAMAGED
        return EXIT_FAILURE if any(p.severity == UNCHECKED for p in self.problems) else EXIT_OK

    def damaged_files(self) -> set[str]:
        return {f for p in self.damaged for f in p.files}

    def add(self, severity: str, key: str, reason: str, files: Iterable[bytes] = (), hint: str = "") -> None:
        self.problems.append(Problem(severity, key, reason, tuple(sorted(xet_hex(f) for f in files)), hint))


def parse_subset(text: str | None) -> Callable[[bytes], bool]:
    """`I/N` (the I-th of N disjoint groups, 1-based) or `P%` (a random sample)."""
    if not text:
        return lambda h: True
    group = re.fullmatch(r"(\d+)/(\d+)", text)
    if group and 1 <= int(group[1]) <= int(group[2]):
        i, n = int(group[1]), int(group[2])
        return lambda h: hash_mod(h, n) == i - 1
    percent = re.fullmatch(r"(\d+(?:\.\d+)?)%", text)
    if percent and 0 < float(percent[1]) <= 100:
        share = float(percent[1]) / 100
        pick = random.Random()
        return lambda h: pick.random() < share
    raise ConfigError(f"--subset {text!r}: use I/N (e.g. 1/5) or a percentage (e.g. 10%)")


def check_repository(
    backend: Backend,
    index: Index,
    read_data: bool = False,
    subset: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> CheckReport:
    """Check the repository; problems are collected, never raised.

    A check lease keeps gc from deleting what the check has listed; with
    read-only access there is none, and a concurrent gc may show up as
    missing objects (run the check again).
    """
    select = parse_subset(subset)
    try:
        lease: Lease | None = Lease.writer(backend, kind="check")
    except AccessDenied:
        lease = None
    try:
        return _check(backend, index, read_data, select, progress)
    finally:
        if lease is not None:
            lease.release()


def _check(
    backend: Backend, index: Index, read_data: bool, select: Callable[[bytes], bool],
    progress: Callable[[int], None] | None,
) -> CheckReport:  # fmt: skip
    report = CheckReport()
    inv = take_inventory(backend)
    report.shards, report.xorbs = len(inv.shard_objects), len(inv.xorb_objects)
    for d in inv.damaged:
        report.add(DAMAGE, d.key, d.reason, (), _hint_for_damaged(d.key))
    live = inv.live_files()
    report.files = len(live)
    infos = _xorb_tables(backend, inv, report)
    _check_terms(inv, infos, report)
    refused = _check_bindings(inv, infos, report)
    _check_sizes(inv, infos, report)
    _report_orphans(backend, inv, report)
    _check_snapshots(inv, live, report)
    _check_index(backend, index, inv, infos, report, refused)
    if read_data:
        # Delta chunks are checked after applying their base, read as a smudge does:
        # a damaged base makes its deltas (and the files that use them) damaged too.
        bases = Reconstructor(backend, index).base_run
        for h in sorted(inv.xorb_objects):
            if select(h):
                _read_xorb(backend, inv, infos.get(h), h, report, progress, bases)
    return report


def _hint_for_damaged(key: str) -> str:
    if key.startswith(SHARDS):
        return "the files this shard records cannot be listed; put back a good copy, or run `xetstore repair shards`"
    if key.startswith(DELETES):
        return "put back a good copy, or run `xetstore repair shards` to set it aside"
    if key.startswith(SNAPSHOTS):
        return "put back a good copy; until then gc deletes nothing"
    return "remove the stray object"


def _check_snapshots(inv: Inventory, live: dict[bytes, Manifest], report: CheckReport) -> None:
    """Every file a snapshot names must be held by some shard, or its tag cannot be restored."""
    for snap in inv.snapshots:
        lost = [e for e in snap.files() if e.file_hash not in live]
        if lost:
            shown = ", ".join(e.path for e in lost[:5]) + (" …" if len(lost) > 5 else "")
            report.add(DAMAGE, snap.key, f"tag {snap.tag} names {len(lost)} files no shard holds ({shown})",
                       [e.file_hash for e in lost], "re-add those files from a copy; the shard holding them is lost")  # fmt: skip


def _xorb_tables(backend: Backend, inv: Inventory, report: CheckReport) -> dict[bytes, ShardXorb]:
    """Chunk tables from the shards, or else from the footers of existing xorbs."""
    infos = inv.xorb_infos()
    used = inv.live_chunks()
    for h in used:
        if h in infos or h not in inv.xorb_objects:
            continue
        obj = inv.xorb_objects[h]
        try:
            infos[h] = read_xorb_footer(backend, h, layout_of(obj.key))
        except IntegrityError as exc:
            report.add(DAMAGE, obj.key, f"no shard describes it and its footer is bad: {exc}",
                       inv.files_using({h})[h], _FIX_XORB)  # fmt: skip
        except BackendError as exc:
            report.add(UNCHECKED, obj.key, f"could not read its footer: {exc}")
    return infos


def _check_terms(inv: Inventory, infos: dict[bytes, ShardXorb], report: CheckReport) -> None:
    missing: dict[bytes, set[bytes]] = defaultdict(set)
    bad: dict[tuple[bytes, str], set[bytes]] = defaultdict(set)
    for _, m in inv.live_pairs():
        for t in m.terms:
            if t.xorb_hash not in inv.xorb_objects:
                missing[t.xorb_hash].add(m.file_hash)
            elif t.xorb_hash in infos:
                reason = _term_problem(infos[t.xorb_hash].footer, t.first, t.end, t.size, t.range_hash)
                if reason:
                    bad[(t.xorb_hash, reason)].add(m.file_hash)
    for h, files in missing.items():
        report.add(DAMAGE, inv.key_of(h), "missing: live files refer to it", files, _FIX_XORB)
    for (h, reason), files in bad.items():
        report.add(DAMAGE, inv.key_of(h), reason, files, "the manifests disagree with the xorb; " + _FIX_XORB)


def _term_problem(footer: XorbFooter, first: int, end: int, size: int, expected: bytes) -> str:
    if end > footer.num_chunks:
        return f"a term names chunks [{first}, {end}) but the xorb has {footer.num_chunks}"
    start = footer.unpacked_ends[first - 1] if first else 0
    if footer.unpacked_ends[end - 1] - start != size:
        return f"a term of chunks [{first}, {end}) claims {size} bytes, the xorb holds a different size"
    if expected != ZERO_HASH and range_hash(footer.chunk_hashes[first:end]) != expected:
        return f"the verification hash of chunks [{first}, {end}) does not match"
    return ""


def _check_bindings(inv: Inventory, infos: dict[bytes, ShardXorb], report: CheckReport) -> set[tuple[str, bytes]]:
    """Each live manifest's terms must rebuild its file hash (binding.py); return the
    (shard, file) pairs that do not, which the index rightly leaves out."""
    refused: set[tuple[str, bytes]] = set()
    for key, m in inv.live_pairs():
        reason = unbound_reason(m, lambda h: infos[h].footer if h in infos else None)
        if reason:
            refused.add((key, m.file_hash))
            report.add(DAMAGE, key, f"its manifest of file {xet_hex(m.file_hash)} is false: {reason}", (m.file_hash,),
                       "the shard maps a file to chunks that are not its own; delete the shard or put back a good copy")  # fmt: skip
    return refused


def _check_sizes(inv: Inventory, infos: dict[bytes, ShardXorb], report: CheckReport) -> None:
    users = inv.files_using(set(inv.xorb_objects))
    for h, obj in inv.xorb_objects.items():
        info = infos.get(h)
        if info is not None and info.stored_size != obj.size:
            report.add(DAMAGE, obj.key, f"is {obj.size} bytes, its shard says {info.stored_size} (truncated?)",
                       users.get(h, ()), _FIX_XORB)  # fmt: skip


def _report_orphans(backend: Backend, inv: Inventory, report: CheckReport) -> None:
    used = inv.live_chunks()
    if any(h not in used for h in inv.xorb_objects):
        try:  # a xorb that a live delta chunk reads as its base is referenced (gc keeps it)
            keep_bases(backend, inv.xorb_infos(), used, set())
        except (IntegrityError, BackendError):
            pass  # an unreadable delta record: --read-data reports it as damage
    for h, obj in sorted(inv.xorb_objects.items()):
        if h not in used:
            report.add(INFO, obj.key, "unreferenced (left by an interrupted add or a deletion)",
                       hint="`xetstore gc` removes it after the grace period")  # fmt: skip
    for h, layout, obj in sorted(inv.spare_layouts(), key=lambda s: s[2].key):
        if h in inv.xorb_objects:
            report.add(INFO, obj.key, f"layout {layout}, not the one reads use ({inv.key_of(h)})",
                       hint="`xetstore gc` removes it after the grace period")  # fmt: skip


def _check_index(
    backend: Backend, index: Index, inv: Inventory, infos: dict[bytes, ShardXorb], report: CheckReport,
    refused: set[tuple[str, bytes]],
) -> None:  # fmt: skip
    """The index must say what the shards say (but for `refused` manifests), after merging anything new."""
    try:
        sync_index(backend, index)
        problems = list(_index_disagreements(index, inv, infos, refused))
    except IndexUnusable as exc:
        problems = [f"cannot be read: {exc.reason}"]
    except IntegrityError as exc:
        problems = [f"holds damaged data: {exc}"]
    for reason in problems[:10]:
        report.add(DAMAGE, "index", reason, hint=_FIX_INDEX)


def _index_disagreements(
    index: Index, inv: Inventory, infos: dict[bytes, ShardXorb], refused: set[tuple[str, bytes]]
) -> Iterable[str]:
    healthy = set(inv.shards)
    if index.shard_keys() & set(inv.shard_objects) != healthy:
        yield "its list of merged shards differs from the repository's"
    manifests: dict[bytes, list[Manifest]] = defaultdict(list)
    for key, m in inv.live_pairs():
        if (key, m.file_hash) not in refused:
            manifests[m.file_hash].append(m)
    indexed = {m.file_hash: m for m in index.manifests()}
    for fh in set(manifests) ^ set(indexed):
        yield f"file {xet_hex(fh)} is {'missing from' if fh in manifests else 'extra in'} the index"
    for fh, m in indexed.items():
        if fh in manifests and m not in manifests[fh]:
            yield f"file {xet_hex(fh)} has a manifest no shard holds"
    for h in {t.xorb_hash for ms in manifests.values() for m in ms for t in m.terms}:
        entry = index.xorb(h)
        if h in infos and (entry is None or entry[0] != infos[h].footer):
            yield f"the chunk table of xorb {xet_hex(h)} differs from its shard's"


def _read_xorb(
    backend: Backend, inv: Inventory, info: ShardXorb | None, h: bytes, report: CheckReport,
    progress: Callable[[int], None] | None, bases: BaseReader,
) -> None:  # fmt: skip
    key = inv.key_of(h)
    try:
        data = backend.get(key)
    except NotFound:
        return  # deleted since listing (gc); the structure check covers references
    except BackendError as exc:
        report.add(UNCHECKED, key, f"could not be read: {exc}")
        return
    report.xorbs_read += 1
    report.bytes_read += len(data)
    if progress:
        progress(len(data))
    bad, reason = damaged_chunks(data, info, h, key, bases)
    if reason:
        users = inv.files_using({h}).get(h, set())
        affected = set(inv.files_losing({h: bad})) if bad is not None else users
        if users:
            hint = _FIX_XORB if affected else "its chunks are intact; `xetstore repair xorbs --yes` rewrites it"
            report.add(DAMAGE, key, reason, affected, hint)
        else:
            report.add(INFO, key, reason, hint="no live file uses it; `xetstore gc` removes it")
