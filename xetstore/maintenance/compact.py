"""`xetstore compact`: each xorb's zstd frames recompressed harder, as a second layout.

An add compresses new frames at the repository's level (3 by default): fast
enough to keep pace with chunking, so `xetstore add` and the git-lfs agent
run at the speed users wait for. Compacting later writes every live xorb still
in its first layout again as layout 1 (docs/format.md §6.8): the same chunks in
the same order, so xorb hashes, terms and file hashes stay. Its zstd frames
are compressed at `level` (9 by default). Its byte-grouped frames were
compressed at level 1, which stores float tensors best (bf16 and f32: level 9
stores 1 % more), but other data that passes the grouping test may shrink a
lot at a higher level (`seq 1 400000`: 216 KB a MiB at level 1, 68 KB at level
3): a 128 KiB sample decides, grouped or not, at `level`. Raw and delta
chunks are copied. Measured on the bench's binaries (numpy's shared
libraries, a release, an SQLite database): level 9 stores 6-8 % less than
level 3 and runs at 50-85 MB/s a core; level 19 stores 13-17 % less at 3-6
MB/s.

Like an add, it only adds: layout objects first, every chunk verified on the
way (a damaged chunk stops that xorb, never reaches the new layout); then a
shard describing them; then the index. Readers use a new layout once they
sync, and gc removes the first one after the grace period.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ..backends import Backend
from ..call_filter import filtered_code
from ..compression import Scheme, bg4_split, compress_as, decompress_frame
from ..errors import HashMismatch
from ..faults import fault_point
from ..index import Index
from ..packing import frame_records
from ..params import BG4_ZSTD_LEVEL, CALL_FILTER_FROM, COMPACT_FRAME_BYTES, MAX_PAYLOAD
from ..shard import Shard, ShardXorb, encode_shard, shard_key
from ..smudge import PARTIAL_FROM, Reconstructor
from ..xorb import BaseReader, XorbFooter
from .leases import Lease
from .objects import read_xorb_footer
from .reframe import Frame, read_frames_of, reframed
from .reindex import sync_index

__all__ = ["CompactReport", "compact_repository", "COMPACT_LAYOUT"]

COMPACT_LAYOUT = 1
_BATCH_BYTES = 1 << 30  # a shard per GiB compacted: an interrupted compact keeps what it did
_M_ARENA_MAX = -8  # mallopt's parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MAPPED_FROM = 4 << 20  # buffers this large are mapped and unmapped, never kept in the heap
_IN_FLIGHT = 2  # frames waiting behind the one being written: bounds memory (peak RSS)
_SAMPLE = 128 * 1024  # of a byte-grouped frame, compressed three ways to choose
_WORTH = 0.95  # a byte-grouped frame is compressed again if its sample shrinks this much
_RAW_WORTH = 0.98  # raw chunks are compressed if level 3 shrinks them this much


@dataclass
class CompactReport:
    """What a compact wrote: xorbs in a new layout, and their sizes before and after."""

    level: int
    xorbs: int = 0
    skipped: int = 0  # live xorbs none of whose frames shrinks (tensors, random bytes): left as they are
    stored_before: int = 0
    stored_after: int = 0
    new_shards: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _How(NamedTuple):
    level: int  # zstd level
    frame_bytes: int  # consecutive zstd frames are cut anew into frames of about this many plain bytes
    cuts: dict[bytes, set[int]]  # xorb hash -> chunks where a live file's term starts
    large: dict[bytes, list[tuple[int, int]]]  # xorb hash -> chunks [first, end) of terms of files the filter may serve


def compact_repository(
    backend: Backend, index: Index, level: int, frame_bytes: int = COMPACT_FRAME_BYTES,
    spool_dir: str | None = None, progress: Callable[[int], None] | None = None,
) -> CompactReport:  # fmt: skip
    """Write layout 1 of every live xorb still in layout 0 (see the module docstring)."""
    report, started = CompactReport(level), time.monotonic()
    spool = backend.spool_dir() or spool_dir or tempfile.gettempdir()
    _one_heap()
    with Lease.writer(backend) as lease, ThreadPoolExecutor(2, thread_name_prefix="xetstore-compact") as pool:
        sync_index(backend, index)
        bases = Reconstructor(backend, index).base_run  # a delta chunk is verified against its base
        batch: list[ShardXorb] = []
        candidates, cuts, large = _candidates(index)
        how = _How(level, frame_bytes, cuts, large)
        for footer, stored in candidates:
            table = _compact_xorb(backend, footer, how, pool, bases, spool)
            if progress:
                progress(stored)
            if table is None:
                report.skipped += 1
                continue
            report.xorbs += 1
            report.stored_before += stored
            report.stored_after += table.stored_size
            batch.append(table)
            if sum(x.stored_size for x in batch) >= _BATCH_BYTES:
                report.new_shards.append(_publish(backend, index, lease, batch))
                batch = []
        if batch:
            report.new_shards.append(_publish(backend, index, lease, batch))
    report.seconds = time.monotonic() - started
    return report


def _one_heap() -> None:
    """Have the compressing threads share the main thread's malloc heap, and map the
    largest buffers apart from it (glibc only).

    Each thread's own heap keeps the multi-MiB buffers it freed: peak RSS of
    compacting torch's libraries varied 129-150 MB run to run with per-thread heaps,
    119-126 MB with one (the zstd contexts and frames are the same either way). glibc
    also raises its mmap threshold to the size of each mapped buffer freed, after which
    the next such buffers (reads of xorb windows) come from the heap and stay there;
    a fixed threshold of 4 MiB made it 110-116 MB in the same time (1 MiB: 103 MB, but
    15 % slower, every frame buffer mapped and zeroed anew).
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 1)
        libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM)
    except (OSError, AttributeError):
        pass  # not glibc: its allocator is left as it is


def _candidates(
    index: Index,
) -> tuple[list[tuple[XorbFooter, int]], dict[bytes, set[int]], dict[bytes, list[tuple[int, int]]]]:
    """Live xorbs (a live manifest uses them) in their first layout, by hash; the
    chunks of each where a term of a live file read by partial decoding starts (a
    smaller file decodes its frames whole, once, for its neighbours too); and the
    chunk ranges of each that files of CALL_FILTER_FROM bytes or more use."""
    cuts: dict[bytes, set[int]] = {}
    large: dict[bytes, list[tuple[int, int]]] = {}
    for m in index.manifests():
        for t in m.terms:
            cut = cuts.setdefault(t.xorb_hash, set())
            if m.size >= PARTIAL_FROM:
                cut.add(t.first)
            if m.size >= CALL_FILTER_FROM:
                large.setdefault(t.xorb_hash, []).append((t.first, t.end))
    found = [(f, size) for f, size in index.xorbs() if f.layout == 0 and f.xorb_hash in cuts]
    return sorted(found, key=lambda item: item[0].xorb_hash), cuts, large


def _publish(backend: Backend, index: Index, lease: Lease, tables: list[ShardXorb]) -> str:
    """The shard describing new layouts, durable, then merged: readers use them from then on."""
    shard = Shard((), tuple(tables), int(time.time()))
    data = encode_shard(shard)
    key = shard_key(data)
    lease.check()  # a lapsed lease: a gc may have swept meanwhile, so publish nothing
    backend.put(key, data)
    fault_point("compact.after_shard")
    index.add_shard(key, shard)
    return key


def _compact_xorb(
    backend: Backend, footer: XorbFooter, how: _How, pool: ThreadPoolExecutor, bases: BaseReader, spool_dir: str
) -> ShardXorb | None:
    """Write the xorb's next layout; its table, or None when no frame would shrink."""
    fd, spool = tempfile.mkstemp(prefix=".tmp-compact-", dir=spool_dir)
    try:
        with open(fd, "wb", buffering=1 << 20) as out:
            ends, deltas, recompressed = _write_frames(backend, footer, how, pool, bases, out)
            if not recompressed:
                return None
            new = footer._replace(serialized_ends=tuple(ends), layout=COMPACT_LAYOUT)
            out.write(new.encode())
            size = out.tell()
            if size >= footer.serialized_ends[-1] + len(new.encode()):  # new cuts cost more than level 9 saved
                return None
        fault_point("compact.before_xorb")
        if not backend.put(new.key, Path(spool)):  # written before: a compact that was interrupted
            return read_xorb_footer(backend, footer.xorb_hash, COMPACT_LAYOUT)._replace(deltas=frozenset(deltas))
        fault_point("compact.after_xorb")
        return ShardXorb(new, size, frozenset(deltas))
    finally:
        if os.path.exists(spool):
            os.unlink(spool)


def _write_frames(
    backend: Backend, footer: XorbFooter, how: _How, pool: ThreadPoolExecutor, bases: BaseReader, out: BinaryIO
) -> tuple[list[int], set[int], bool]:
    """Write the new records of every frame in order; (serialized ends, delta chunk
    indices, whether any frame came out smaller)."""
    ends: list[int] = []
    deltas: set[int] = set()
    pending: deque[tuple[Frame, Future[_Records | None] | None]] = deque()
    recompressed = False
    for frame in reframed(read_frames_of(backend, footer, bases), footer, how.cuts.get(footer.xorb_hash, set()), how.frame_bytes):
        if frame.scheme == Scheme.DELTA:
            deltas.add(frame.first)
        calls = any(first <= frame.first < end for first, end in how.large.get(footer.xorb_hash, ()))
        job = pool.submit(_recompress, frame, footer, how.level, calls) if frame.plain else None
        pending.append((frame, job))
        while len(pending) > _IN_FLIGHT:
            recompressed |= _emit(*pending.popleft(), out, ends)
    while pending:
        recompressed |= _emit(*pending.popleft(), out, ends)
    return ends, deltas, recompressed


def _emit(frame: Frame, job: Future[_Records | None] | None, out: BinaryIO, ends: list[int]) -> bool:
    """Write a frame's records (the recompressed ones if smaller) and their serialized
    ends; whether they are the recompressed ones."""
    records, sizes = frame.records, frame.record_sizes
    again = job.result() if job is not None else None
    smaller = again is not None and (not records or len(again[0]) < len(records))  # no records: a new frame
    if again is not None and smaller:
        records, sizes = again
    out.write(records)
    end = ends[-1] if ends else 0
    for size in sizes:
        end += size
        ends.append(end)
    return smaller


_Records = tuple[bytes, list[int]]  # a frame's records, and the size of each


def _recompress(frame: Frame, footer: XorbFooter, level: int, calls: bool) -> _Records | None:
    """The frame's chunks stored again at `level` (call-filtered if `calls` and that is
    smaller), checked by a round trip; None when a byte-grouped frame's sample says
    it would not shrink."""
    scheme = _scheme_for(frame, level)
    if scheme is None:
        return None
    scheme, payload = _compressed(frame.plain, scheme, level, calls)
    if len(payload) >= len(frame.plain) or len(payload) > MAX_PAYLOAD:
        scheme, payload = Scheme.NONE, b""  # incompressible, or too big for a record: its chunks raw
    what = f"compacted frame of chunks [{frame.first}, {frame.end})"
    if scheme != Scheme.NONE and bytes(decompress_frame(scheme, payload, len(frame.plain), what)) != frame.plain:
        raise HashMismatch(what, "the frame's bytes", "different bytes after a compression round trip")
    sizes = [footer.chunk_size(i) for i in range(frame.first, frame.end)]
    parts, record_sizes, _delta = frame_records(memoryview(frame.plain), sizes, scheme, payload)
    return b"".join(parts), record_sizes


def _compressed(plain: bytes, scheme: Scheme, level: int, calls: bool) -> tuple[Scheme, bytes]:
    """The frame's payload in `scheme` at `level`; with `calls`, a zstd frame that
    looks like machine code is also compressed call-filtered (docs/format.md §6.9),
    and the smaller kept: the filter's test is cheap, its misses cost one more
    compression."""
    if scheme == Scheme.NONE:
        return scheme, b""
    payload = compress_as(plain, scheme, level)
    code = filtered_code(plain) if calls and scheme == Scheme.ZSTD else None
    if code is not None:
        filtered = compress_as(code, Scheme.ZSTD, level)  # zstd over filtered bytes: a CALLS_ZSTD payload
        if len(filtered) < len(payload):
            return Scheme.CALLS_ZSTD, filtered
    return scheme, payload


def _scheme_for(frame: Frame, level: int) -> Scheme | None:
    """How to store a frame's chunks again: zstd frames as zstd; raw chunks as zstd
    if level 3 shrinks them enough (it judges fast: 2.6 GB/s on random bytes, where
    level 9 runs at 180 MB/s), else raw; byte-grouped frames by _grouped_choice."""
    if frame.scheme == Scheme.BG4_ZSTD:
        return _grouped_choice(frame.plain, level)
    if frame.scheme == Scheme.NONE and len(compress_as(frame.plain, Scheme.ZSTD, 3)) >= _RAW_WORTH * len(frame.plain):
        return Scheme.NONE
    return Scheme.ZSTD


def _grouped_choice(plain: bytes, level: int) -> Scheme | None:
    """How to store a byte-grouped frame at `level`: grouped, as it is, or (None)
    leave it, judged on a sample against how it is stored now (BG4_ZSTD_LEVEL)."""
    sample = plain[:_SAMPLE]
    lanes = bg4_split(sample)  # grouped once, compressed twice (ZSTD: as it is)
    now = len(compress_as(lanes, Scheme.ZSTD, BG4_ZSTD_LEVEL))
    grouped, flat = len(compress_as(lanes, Scheme.ZSTD, level)), len(compress_as(sample, Scheme.ZSTD, level))
    if min(grouped, flat) >= _WORTH * now:
        return None
    return Scheme.BG4_ZSTD if grouped <= flat else Scheme.ZSTD
