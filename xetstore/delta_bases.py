"""Finding the base of a delta chunk: the same offset in an earlier version of the file.

benchmarks/delta_probe.py measured the two ways to find a base for fine-tuned
weights: the bytes at the same offset in the previous version made 100 % of new
chunks smaller (f32 full fine-tune 0.56 of the chunk against 0.94 for BG4 + zstd
alone; bf16 0.10 against 0.77), while min-hash sketches over the high half-words
found a useful base for under 10 %. So a stream is cleaned against the manifest
of its earlier versions by position: the file at the same snapshot path in
earlier snapshots, or a name the caller gives, or else the stored files of
exactly its size (full fine-tunes and changed layers keep the size).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence

from .backends import Backend
from .compression import Scheme
from .errors import FormatError, HashMismatch, MissingData, NotFound
from .hashing import range_hash, xet_hex
from .index import Index
from .shard import Manifest, ShardXorb, Term
from .smudge import Reconstructor
from .snapshot import FILE, Snapshot
from .xorb import (
    DELTA_HEADER,
    HEADER_SIZE,
    MAX_DELTA_BASE_CHUNKS,
    BaseReader,
    ChunkHeader,
    DeltaBase,
    XorbFooter,
    decode_delta,
    read_chunks,
)  # fmt: skip

__all__ = ["MAX_EARLIER", "PositionBases", "SameSize", "by_path", "bases_needed", "base_reader", "keep_bases", "rescued_bases"]


# Earlier versions a new one is cleaned against: the newest first, older ones for
# the chunks of the newest that are deltas themselves. Each one a chunk tries costs
# a range read, so a long chain of versions is not walked to its start.
MAX_EARLIER = 3


def by_path(snapshots: Sequence[Snapshot], path: str, limit: int = MAX_EARLIER) -> list[bytes]:
    """File hashes at `path` in `snapshots` (newest first), each once, newest first."""
    found: list[bytes] = []
    for snap in snapshots:
        e = snap.entry(path)
        if e is not None and e.kind == FILE and e.file_hash not in found:
            found.append(e.file_hash)
    return found[:limit]


class SameSize:
    """Stored files of a given size, most recently merged into the index first:
    full fine-tunes and changed layers keep a file's size. The index has no table
    by size, so the first question reads every manifest once; later ones in the
    same add session reuse what it found."""

    def __init__(self, index: Index, limit: int = MAX_EARLIER) -> None:
        self._index = index
        self._limit = limit
        self._by_size: dict[int, list[bytes]] | None = None

    def __call__(self, size: int) -> list[Manifest]:
        if size == 0:
            return []
        if self._by_size is None:
            self._by_size = defaultdict(list)
            for m in self._index.manifests():
                self._by_size[m.size].append(m.file_hash)
        hashes = sorted(self._by_size.get(size, ()), key=self._index.merged_at, reverse=True)
        found = [self._index.manifest(h) for h in hashes[: self._limit]]
        return [m for m in found if m is not None]


class PositionBases:
    """Base runs for the chunks of a new version, taken from earlier versions'
    manifests: the first of them (newest first) whose bytes at the position are
    plain. Chunks of the newest version are often deltas themselves (a chain of
    fine-tunes), and a delta is never a base, so the older ones stand in."""

    def __init__(self, earlier: Sequence[Manifest], reconstructor: Reconstructor) -> None:
        self._versions = [(m.terms, _starts(m)) for m in earlier]
        self._rec = reconstructor

    def base_for(self, pos: int, size: int) -> tuple[DeltaBase, bytes, float] | None:
        """A base run for [pos, pos + size), its bytes, and the share of their
        plain size its frames store (what the new chunk alone would store, about:
        a near-copy compresses like its base), or None."""
        for terms, starts in self._versions:
            found = self._base_in(terms, starts, pos, size)
            if found is not None:
                return found
        return None

    def _base_in(
        self, terms: Sequence[Term], starts: list[int], pos: int, size: int
    ) -> tuple[DeltaBase, bytes, float] | None:
        """The run of one version's chunks covering [pos, pos + size) within one
        term (so one xorb, one range read), and its bytes; None past its end or
        when the run cannot be read as plain chunks."""
        t = bisect.bisect_right(starts, pos) - 1
        if not 0 <= t < len(terms):
            return None
        term = terms[t]
        try:
            footer = self._rec.check_term(term, "delta base")
            skip = footer.unpacked_ends[term.first - 1] if term.first else 0
            at = pos - starts[t] + skip  # offset of pos within the xorb's plain bytes
            first = bisect.bisect_right(footer.unpacked_ends, at, term.first, term.end)
            last = bisect.bisect_left(footer.unpacked_ends, at + size, first, term.end)
            end = min(last + 1, term.end, first + MAX_DELTA_BASE_CHUNKS)
            run_start = footer.unpacked_ends[first - 1] if first else 0
            base = DeltaBase(term.xorb_hash, first, end, at - run_start, range_hash(footer.chunk_hashes[first:end]))
            return base, self._rec.base_run(base, "delta base"), _stored_share(footer, first, end)
        except (FormatError, HashMismatch, MissingData):
            return None  # damaged, gone or a delta: try an older version, else store it whole


def _stored_share(footer: XorbFooter, first: int, end: int) -> float:
    """Serialized bytes over plain bytes of the frames holding chunks [first, end)."""
    lo, hi = footer.frame_start(first), footer.frame_end(end - 1)
    plain = footer.unpacked_ends[hi - 1] - (footer.unpacked_ends[lo - 1] if lo else 0)
    return (footer.serialized_ends[hi - 1] - footer.record_start(lo)) / plain


def _starts(m: Manifest) -> list[int]:
    starts = [0]
    for t in m.terms:
        starts.append(starts[-1] + t.size)
    return starts


def bases_needed(
    backend: Backend, infos: Mapping[bytes, ShardXorb], chunks: Mapping[bytes, set[int]]
) -> dict[bytes, set[int]]:
    """Base xorb -> the chunk indices that the delta chunks among `chunks` (xorb ->
    chunk indices) read. Only the first 85 bytes of each delta record are fetched;
    the shard's chunk flags say which records those are."""
    out: dict[bytes, set[int]] = defaultdict(set)
    for h, wanted in chunks.items():
        info = infos.get(h)
        if info is None:
            continue
        for i in sorted(wanted & info.deltas):
            base = _delta_base(backend, info, i)
            if base is not None:
                out[base.xorb_hash].update(range(base.first, base.end))
    return out


def base_reader(backend: Backend, infos: Mapping[bytes, ShardXorb]) -> BaseReader:
    """Reads delta bases straight from the backend with the chunk tables shards
    record (gc, repack and repair work from those, not from the index)."""

    def read(base: DeltaBase, what: str) -> bytes:
        info = infos.get(base.xorb_hash)
        if info is None:
            raise MissingData(f"xorb {xet_hex(base.xorb_hash)}", what)
        footer = info.footer
        if base.end > footer.num_chunks or range_hash(footer.chunk_hashes[base.first : base.end]) != base.range_hash:
            raise HashMismatch(f"{what}: delta base in xorb {xet_hex(base.xorb_hash)}", xet_hex(base.range_hash), "other chunks")
        key = footer.key
        start, stop = footer.byte_range(base.first, base.end)
        try:
            raw = backend.get(key, start, stop)
        except NotFound:
            raise MissingData(key, what) from None
        return b"".join(read_chunks(raw, footer, base.first, base.end, f"{key} (delta base of {what})"))

    return read


def _delta_base(backend: Backend, info: ShardXorb, i: int) -> DeltaBase | None:
    key = info.footer.key
    what = f"{key} chunk {i}"
    start = info.footer.record_start(i)
    try:
        raw = backend.get(key, start, start + HEADER_SIZE + DELTA_HEADER)
    except NotFound:
        raise MissingData(key, "") from None
    if ChunkHeader.decode(raw[:HEADER_SIZE], what).scheme != Scheme.DELTA:
        return None  # rewritten plain since (repair): it needs no base
    return decode_delta(raw[HEADER_SIZE:], what)[0]


def keep_bases(backend: Backend, infos: dict[bytes, ShardXorb], used: dict[bytes, set[int]], young: set[bytes]) -> set[bytes]:
    """Mark the base chunks of every delta chunk in a xorb that stays as used, and
    return the xorbs that must not be repacked: a delta names its base by location.

    A xorb that stays keeps all its chunks (an add may dedup against any), so all
    its deltas need their bases; a xorb kept only as a base may hold deltas too.
    """
    pinned: set[bytes] = set()
    todo = {h for h in (set(used) | young) if h in infos and infos[h].deltas}
    while todo:
        pinned |= todo
        bases = bases_needed(backend, infos, {h: set(infos[h].deltas) for h in todo})
        for h, chunks in bases.items():
            used[h] |= chunks
        pinned |= set(bases)
        todo = {h for h in bases if h in infos and infos[h].deltas} - pinned
    return pinned


def rescued_bases(backend: Backend, infos: dict[bytes, ShardXorb], staying: set[bytes], gone: set[bytes]) -> set[bytes]:
    """Xorbs in `gone` that a delta chunk of a staying xorb reads (and so on, for
    a rescued base that holds deltas itself)."""
    rescued: set[bytes] = set()
    todo = {h for h in staying if h in infos and infos[h].deltas}
    seen = set(todo)
    while todo:
        bases = bases_needed(backend, infos, {h: set(infos[h].deltas) for h in todo})
        found = {h for h in bases if h in gone} - rescued
        rescued |= found
        todo = {h for h in found if h in infos and infos[h].deltas} - seen
        seen |= todo
    return rescued
