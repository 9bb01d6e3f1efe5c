"""Rewriting for gc: repack sparse xorbs and replace shards, never in place.

A xorb whose live chunks are a small share of it is repacked: its live chunks
(read and verified) go into new xorbs. Every shard that must change (it holds
a deleted manifest, describes a xorb about to go, or refers to a repacked
one) is replaced by one new shard holding its live manifests, with terms
moved to the new xorbs, and the chunk tables of the xorbs that stay. The new
xorbs and the new shard are durable before the sweep deletes anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..backends import Backend
from ..delta_bases import base_reader
from ..errors import IntegrityError
from ..faults import fault_point
from ..hashing import ZERO_HASH, range_hash, xet_hex
from ..packing import SealedXorb, XorbBuilder
from ..params import RepositoryParams
from ..shard import Manifest, Shard, ShardXorb, Term, encode_shard, newest_layouts, shard_key
from ..xorb import BaseReader, XorbFooter, read_chunks, verify_xorb
from .inventory import Inventory

__all__ = ["Rewrite", "rewrite"]

_Place = tuple[bytes, int]  # (xorb hash, chunk index)


@dataclass
class Rewrite:
    """What the rewrite published; the sweep deletes what it replaces."""

    new_xorbs: list[ShardXorb] = field(default_factory=list)
    shard_key: str = ""
    manifests: dict[bytes, Manifest] = field(default_factory=dict)  # file hash -> its manifest in the new shard
    damaged: dict[bytes, str] = field(default_factory=dict)  # xorbs that could not be repacked


def rewrite(
    backend: Backend, params: RepositoryParams, inv: Inventory, repack: set[bytes], dirty: set[str],
    dead: set[bytes], salvage: dict[bytes, set[int]] | None = None,
) -> Rewrite:  # fmt: skip
    """Repack `repack` and publish the shard that replaces the `dirty` ones.

    `salvage` (repair) maps damaged xorbs to their chunks that are lost; the
    others are kept. Without it, a chunk that fails verification stops the
    rewrite before anything that replaces is published. A new xorb equal to
    one planned to go is taken out of `repack` / `dead`: it stays.
    """
    out = Rewrite()
    moved = _repack_xorbs(backend, params, inv, repack, out, salvage or {})
    if out.damaged:
        names = ", ".join(xet_hex(h) for h in out.damaged)
        raise IntegrityError(f"gc cannot repack damaged xorbs ({names}); run `xetstore check --read-data`")
    for x in out.new_xorbs:
        dead.discard(x.footer.xorb_hash)
        repack.discard(x.footer.xorb_hash)
    manifests, described = _live_manifests(inv, dirty, moved), _described_elsewhere(inv, dirty)
    kept = _kept_tables(inv, dirty, dead | repack)
    tables = {
        x.footer.xorb_hash: x for x in [*kept, *out.new_xorbs] if described.get(x.footer.xorb_hash, -1) < x.footer.layout
    }
    if manifests or tables:
        shard = Shard(tuple(manifests.values()), tuple(tables.values()), int(time.time()))
        data = encode_shard(shard)
        out.shard_key = shard_key(data)
        dirty.discard(out.shard_key)  # same bytes as a shard it replaces: that one stays
        backend.put(out.shard_key, data)
        out.manifests = manifests
        fault_point("gc.after_repack_shard")
    return out


def _repack_xorbs(
    backend: Backend, params: RepositoryParams, inv: Inventory, repack: set[bytes], out: Rewrite,
    salvage: dict[bytes, set[int]],
) -> dict[_Place, _Place]:  # fmt: skip
    used = inv.live_chunks()
    infos = inv.xorb_infos()
    moved: dict[_Place, _Place] = {}
    builder = _builder(params)
    pending: list[_Place] = []  # old places of the chunks in the open builder
    bases = base_reader(backend, infos)  # delta chunks are decoded and repacked plain
    for h in sorted(repack):
        chunks = _read_live(backend, h, infos[h], sorted(used[h]), salvage.get(h), out, bases)
        for i, data in chunks:
            if not builder.fits(len(data)):
                _seal(backend, builder, pending, moved, out)
                builder, pending = _builder(params), []
            builder.add(infos[h].footer.chunk_hashes[i], data)
            pending.append((h, i))
    _seal(backend, builder, pending, moved, out)
    return moved


def _builder(params: RepositoryParams) -> XorbBuilder:
    return XorbBuilder.for_params(params)


def _read_live(
    backend: Backend, h: bytes, info: ShardXorb, wanted: list[int], lost: set[int] | None, out: Rewrite,
    bases: BaseReader,
) -> list[tuple[int, bytes]]:  # fmt: skip
    """The wanted chunks of a xorb, each verified, frame by frame; with `lost`
    (salvage), those chunks are skipped and frames holding only them not read."""
    key = info.footer.key  # the layout in use
    data = memoryview(backend.get(key))
    footer, want = info.footer, set(wanted) - (lost or set())
    result: list[tuple[int, bytes]] = []
    i = 0
    while i < footer.num_chunks:
        end = footer.frame_end(i)
        here = [c for c in range(i, end) if c in want]
        if here:
            start, stop = footer.byte_range(i, end)
            try:
                chunks = read_chunks(data[start:stop], footer, i, end, key, bases)
            except IntegrityError as exc:
                out.damaged[h] = str(exc)
                return []
            result += [(c, bytes(chunks[c - i])) for c in here]  # a copy: a view would hold its whole frame
        i = end
    return result


def _seal(
    backend: Backend, builder: XorbBuilder, pending: list[_Place], moved: dict[_Place, _Place], out: Rewrite
) -> None:
    if builder.num_chunks == 0:
        return
    sealed: SealedXorb = builder.seal()
    data = sealed.kept_data()
    verify_xorb(data, f"repacked xorb {xet_hex(sealed.hash)}")
    backend.put(sealed.key, data)
    fault_point("gc.after_repack_xorb")
    out.new_xorbs.append(ShardXorb(sealed.footer, sealed.size))
    for new_index, old in enumerate(pending):
        moved[old] = (sealed.hash, new_index)


def _live_manifests(inv: Inventory, dirty: set[str], moved: dict[_Place, _Place]) -> dict[bytes, Manifest]:
    """Each live manifest of the dirty shards, once per file, terms moved; a
    manifest a shard that stays already holds (an interrupted gc wrote it) is
    not written again, so repeated runs converge."""
    out: dict[bytes, Manifest] = {}
    chunk_tables = {h: x.footer for h, x in inv.xorb_infos().items()}
    staying = {m for key, m in inv.live_pairs() if key not in dirty}
    for key, m in inv.live_pairs():
        if key in dirty and m.file_hash not in out:
            terms = [t2 for t in m.terms for t2 in _move_term(t, moved, chunk_tables)]
            out[m.file_hash] = Manifest(m.file_hash, m.sha256, tuple(terms))
    return {fh: m for fh, m in out.items() if m not in staying}


def _described_elsewhere(inv: Inventory, dirty: set[str]) -> dict[bytes, int]:
    """Xorbs whose chunk table a shard that stays already holds, and the highest
    layout it holds: a dirty shard's table of a higher layout must be carried
    over, or the layout reads use would lose its only description."""
    out: dict[bytes, int] = {}
    for key, s in inv.shards.items():
        if key not in dirty:
            for x in s.xorbs:
                out[x.footer.xorb_hash] = max(x.footer.layout, out.get(x.footer.xorb_hash, 0))
    return out


def _move_term(t: Term, moved: dict[_Place, _Place], tables: dict[bytes, XorbFooter]) -> Iterable[Term]:
    """A term in a repacked xorb becomes one term per run of its chunks' new places."""
    if (t.xorb_hash, t.first) not in moved:
        return [t]
    footer = tables[t.xorb_hash]
    runs: list[tuple[bytes, int, list[int]]] = []  # (new xorb, new first index, old chunk indices)
    for i in range(t.first, t.end):
        x, j = moved[(t.xorb_hash, i)]
        last = runs[-1] if runs else None
        if last is not None and last[0] == x and last[1] + len(last[2]) == j:
            last[2].append(i)
        else:
            runs.append((x, j, [i]))
    return [_term(x, j, old, footer, t.range_hash == ZERO_HASH) for x, j, old in runs]


def _term(x: bytes, first: int, old: list[int], footer: XorbFooter, unverified: bool) -> Term:
    size = sum(footer.chunk_size(i) for i in old)
    check = ZERO_HASH if unverified else range_hash(footer.chunk_hashes[i] for i in old)
    return Term(x, first, first + len(old), size, check)


def _kept_tables(inv: Inventory, dirty: set[str], gone: set[bytes]) -> list[ShardXorb]:
    """Chunk tables the dirty shards carry for xorbs that stay (the highest layout of each)."""
    out: dict[bytes, ShardXorb] = {}
    for key in dirty:
        newest_layouts((x for x in inv.shards[key].xorbs if x.footer.xorb_hash not in gone), out)
    return list(out.values())
