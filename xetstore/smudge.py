"""Smudge: manifests -> file bytes, fetching only the chunk ranges a read needs.

Every chunk is re-hashed against the xorb footer, and every term's chunk list
against the manifest's verification hash, before a byte is returned.
"""

from __future__ import annotations

import bisect
import fcntl
import io
import itertools
import os
import stat
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, TypeVar

from .backends import Backend
from .errors import FormatError, HashMismatch, MissingData, ObjectNotFound
from .frame_cache import FrameCache
from .grouped_bases import GroupedBases
from .hashing import ZERO_HASH, range_hash, xet_hex
from .index import Index
from .shard import Manifest, Term
from .xorb import HEADER_SIZE, DeltaBase, XorbFooter, read_frames

__all__ = ["Reconstructor", "Reach", "PARTIAL_FROM"]

_WINDOW = 4 * 1024 * 1024  # plain bytes fetched per request while streaming a file
# Windows fetched and verified at once, ahead of the one being written out.
READ_THREADS = 2
_FOOTER_CACHE = 64
_CHECKED_TERMS = 4096
_FRAME_CACHE_BYTES = 16 * 1024 * 1024  # decoded frames kept for reads that share them
# Files at least this big decode zstd frames only as far as they need them. Smaller
# ones share frames with their neighbours, which are read next: a frame decoded
# whole once and cached serves them all (real-releases: 8 % faster than working
# out each small file's reach).
PARTIAL_FROM = 1024 * 1024

_T = TypeVar("_T")
_R = TypeVar("_R")
_Window = tuple[bytes, int, int]  # xorb hash, first chunk, end chunk
Reach = dict[int, int]  # a frame's first chunk -> the chunk a read decodes it up to


class Reconstructor:
    """Reads chunk ranges of terms from a backend, verified."""

    def __init__(self, backend: Backend, index: Index) -> None:
        self._backend = backend
        self._index = index
        self._footers: OrderedDict[bytes, XorbFooter] = OrderedDict()
        self._footers_lock = threading.Lock()  # reader threads share the footer cache
        self._frames = FrameCache(_FRAME_CACHE_BYTES)
        self._frame_tables: dict[bytes, list[int]] = {}
        self._bases = _Bases(self.base_run, GroupedBases(backend, self.footer, self.frame_of))
        # Terms already checked against their footer: finding delta bases checks
        # an earlier version's term once per new chunk, and its range hash
        # covers the whole term.
        self._checked: set[tuple[bytes, int, int, int, bytes]] = set()

    def footer(self, xorb_hash: bytes, file: str = "") -> XorbFooter:
        with self._footers_lock:
            cached = self._footers.get(xorb_hash)
            if cached is not None:
                self._footers.move_to_end(xorb_hash)
                return cached
        entry = self._index.xorb(xorb_hash)
        if entry is None:
            raise MissingData(f"xorb {xet_hex(xorb_hash)}", file)
        with self._footers_lock:
            self._footers[xorb_hash] = entry[0]
            if len(self._footers) > _FOOTER_CACHE:
                self._footers.popitem(last=False)
        return entry[0]

    def forget_tables(self) -> None:
        """Drop the chunk tables read so far: the index may name newer layouts now."""
        with self._footers_lock:
            self._footers.clear()
        self._frame_tables.clear()

    def check_term(self, term: Term, file: str) -> XorbFooter:
        """The footer of a term's xorb, after checking the term against it."""
        footer = self.footer(term.xorb_hash, file)
        key = (term.xorb_hash, term.first, term.end, term.size, term.range_hash)
        if key in self._checked:  # xorbs never change: a term checked once stays good
            return footer
        what = f"file {file} term in xorb {xet_hex(term.xorb_hash)}"
        if term.end > footer.num_chunks:
            raise FormatError(what, f"chunks [{term.first}, {term.end}) past the xorb's {footer.num_chunks}")
        start = footer.unpacked_ends[term.first - 1] if term.first else 0
        if footer.unpacked_ends[term.end - 1] - start != term.size:
            raise FormatError(what, "term size disagrees with the xorb")
        if term.range_hash != ZERO_HASH:
            actual = range_hash(footer.chunk_hashes[term.first : term.end])
            if actual != term.range_hash:
                raise HashMismatch(what, xet_hex(term.range_hash), xet_hex(actual))
        if len(self._checked) >= _CHECKED_TERMS:
            self._checked.clear()
        self._checked.add(key)
        return footer

    def base_run(self, base: DeltaBase, what: str) -> bytes:
        """The plain bytes of a delta's base run, verified; a delta there is a FormatError."""
        footer = self.footer(base.xorb_hash, what)
        if base.end > footer.num_chunks or range_hash(footer.chunk_hashes[base.first : base.end]) != base.range_hash:
            raise HashMismatch(f"{what}: delta base in xorb {xet_hex(base.xorb_hash)}", xet_hex(base.range_hash), "other chunks")
        return b"".join(self.chunks(base.xorb_hash, base.first, base.end, what, plain_only=True))

    def chunks(
        self, xorb_hash: bytes, first: int, end: int, file: str = "", plain_only: bool = False, reach: Reach | None = None
    ) -> list[memoryview]:
        """Chunks [first, end) of a xorb, each verified against its hash; a delta
        chunk's base is read too, unless `plain_only` (reading a base).

        A frame only partly wanted (small files share frames) is kept, decoded,
        in a small cache: reading its neighbours does not decompress it again.
        With `reach` (reaches() of the file being read, for this xorb), zstd
        frames are decoded only as far as the file needs them.
        """
        footer = self.footer(xorb_hash, file)
        start = self.frame_of(xorb_hash, footer, first)[0]
        cached = self._frames.get((xorb_hash, start))
        if cached is not None and first - start >= len(cached):
            # Read again past the part decoded: small files sharing frames read them in
            # turn, so decode it whole this time rather than once more per file.
            reach = None
        elif cached is not None:
            stop = min(end, start + len(cached))
            head = cached[first - start : stop - start]
            return head + (self.chunks(xorb_hash, stop, end, file, plain_only, reach) if stop < end else [])
        # Two reader threads often want one frame (two terms of a file share it): the
        # second waits for the first's decode and takes it from the cache (restoring
        # the bench's last release decoded 53 MB of frames, 7 MB of them twice).
        # A delta's base read never waits: it runs inside a decode that holds a claim.
        busy = None if plain_only else self._frames.claim((xorb_hash, start))
        if busy is not None:
            busy.wait()
            return self.chunks(xorb_hash, first, end, file, plain_only, reach)
        out: list[memoryview] = []
        try:
            for at, frame in self._fetch(xorb_hash, footer, first, end, file, plain_only, reach):
                lo, hi = max(first, at), min(end, at + len(frame))
                # Kept if only partly wanted, or if another term may read it (a term starts
                # or ends there): a frame of several chunks, which would be decoded again.
                if hi - lo < len(frame) or (reach is not None and at in reach and len(frame) > 1):
                    self._frames.put((xorb_hash, at), frame)
                out += frame[lo - at : hi - at]
        finally:
            if not plain_only:
                self._frames.release((xorb_hash, start))
        return out

    def _fetch(
        self, xorb_hash: bytes, footer: XorbFooter, first: int, end: int, file: str, plain_only: bool, reach: Reach | None
    ) -> list[tuple[int, list[memoryview]]]:
        start, stop = footer.byte_range(first, end)
        key = footer.key  # the layout the index chose
        try:
            raw = self._backend.get(key, start, stop)
        except ObjectNotFound:
            raise MissingData(key, file) from None
        what = f"xorb {xet_hex(xorb_hash)}" + (f" (file {file})" if file else "")
        if len(raw) != stop - start:
            raise FormatError(what, f"xorb is truncated: got {len(raw)} of {stop - start} bytes at {start}")
        return read_frames(raw, footer, first, end, what, None if plain_only else self._bases, reach)

    def reaches(self, manifest: Manifest, file: str) -> dict[bytes, Reach] | None:
        """Xorb -> (frame's first chunk -> one past the last chunk the file reads
        from it), for the frames where a term starts or ends: decoding each only
        that far, once, serves every term that reads it (a version made of chunks
        from older versions' frames often needs only their first few). None for
        a small file: its frames decode whole."""
        if manifest.size < PARTIAL_FROM:
            return None
        out: dict[bytes, Reach] = {}
        for term in manifest.terms:
            footer = self.check_term(term, file)
            frames = out.setdefault(term.xorb_hash, {})
            for at, frame_end in {self.frame_of(term.xorb_hash, footer, i) for i in (term.first, term.end - 1)}:
                frames[at] = max(frames.get(at, 0), min(term.end, frame_end))
        return out

    def frame_of(self, xorb_hash: bytes, footer: XorbFooter, i: int) -> tuple[int, int]:
        """[first, end) chunks of the frame that holds chunk i. Each xorb's frame starts
        are listed once: footer.frame_start walks the frame's records, hundreds in a
        frame of small files, and every file read asks for several."""
        table = self._frame_tables.get(xorb_hash)
        if table is None:
            ends = footer.serialized_ends
            table = [0] + [k for k in range(1, footer.num_chunks) if ends[k] - ends[k - 1] != HEADER_SIZE]
            if len(self._frame_tables) >= _FOOTER_CACHE:
                self._frame_tables.clear()
            self._frame_tables[xorb_hash] = table
        k = bisect.bisect_right(table, i)
        return table[k - 1], table[k] if k < len(table) else footer.num_chunks

    def _file_windows(self, manifest: Manifest, file: str) -> Iterator[tuple[_Window, int]]:
        """Each window of chunks the file is read in, with its plain size."""
        for term in manifest.terms:
            footer = self.check_term(term, file)
            for first, end in _windows(footer, term.first, term.end):
                start = footer.unpacked_ends[first - 1] if first else 0
                yield (term.xorb_hash, first, end), footer.unpacked_ends[end - 1] - start

    def iter_file(self, manifest: Manifest) -> Iterator[memoryview]:
        """The file's bytes in order, fetched a window at a time, several windows at once."""
        file = xet_hex(manifest.file_hash)
        reach = self.reaches(manifest, file)
        windows = (w for w, _size in self._file_windows(manifest, file))
        for chunks in _prefetched(windows, lambda w: self.chunks(*w, file, reach=None if reach is None else reach[w[0]])):
            yield from chunks

    def write_file(
        self, manifest: Manifest, out: BinaryIO, progress: Callable[[int], None] | None = None, ahead: bool = True
    ) -> None:
        """The file into `out`; into a regular file, `ahead` reads READ_THREADS windows
        at once (file_batches.py reads several files at once without)."""
        fd = _regular_file(out)
        if fd is None:  # a pipe or an in-memory stream: in order
            for data in self.iter_file(manifest):
                out.write(data)
                if progress:
                    progress(len(data))
            return
        # A regular file: each reader thread writes its window at its offset.
        out.flush()
        file, base = xet_hex(manifest.file_hash), out.tell()
        reach = self.reaches(manifest, file)

        def place(item: tuple[_Window, int]) -> int:
            window, offset = item
            for chunk in self.chunks(*window, file, reach=None if reach is None else reach[window[0]]):
                _pwrite_all(fd, chunk, offset)
                offset += len(chunk)
            return offset - item[1]

        windows = _at_offsets(self._file_windows(manifest, file), base)
        for written in _prefetched(windows, place) if ahead else map(place, windows):
            if progress:
                progress(written)
        out.seek(base + manifest.size)


class _Bases:
    """What reads give read_frames for delta chunks: the verified plain base run, and
    the base window byte-grouped, which spares regrouping the base frames."""

    def __init__(self, run: Callable[[DeltaBase, str], bytes], grouped: GroupedBases) -> None:
        self._run = run
        self.grouped_window = grouped.grouped_window

    def __call__(self, base: DeltaBase, what: str) -> bytes:
        return self._run(base, what)


def _at_offsets(windows: Iterator[tuple[_Window, int]], base: int) -> Iterator[tuple[_Window, int]]:
    offset = base
    for window, size in windows:
        yield window, offset
        offset += size


def _regular_file(out: BinaryIO) -> int | None:
    """The descriptor of `out` if it is a seekable regular file, else None."""
    if not hasattr(os, "pwrite"):
        return None
    try:
        fd = out.fileno()
        appending = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND  # pwrite would append
        return fd if out.seekable() and not appending and stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _prefetched(items: Iterator[_T], fetch: Callable[[_T], _R]) -> Iterator[_R]:
    """fetch(item) for every item, in order, with up to READ_THREADS running ahead."""
    first = next(items, None)
    second = next(items, None)
    if first is None:
        return
    if second is None:  # one window (a small file): threads would only cost
        yield fetch(first)
        return
    items = itertools.chain((first, second), items)
    pending: deque[Future[_R]] = deque()
    pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="xetstore-read")
    try:
        for item in items:
            pending.append(pool.submit(fetch, item))
            if len(pending) > READ_THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # also when the reader stops early: no fetch outlives the file
        pool.shutdown(wait=True, cancel_futures=True)


def _windows(footer: XorbFooter, first: int, end: int) -> Iterator[tuple[int, int]]:
    """Split chunks [first, end) into runs of about _WINDOW bytes that end at frame ends."""
    start = first
    base = footer.unpacked_ends[first - 1] if first else 0
    for i in range(first, end - 1):
        next_is_frame = footer.serialized_ends[i + 1] - footer.serialized_ends[i] > HEADER_SIZE
        if next_is_frame and footer.unpacked_ends[i] - base >= _WINDOW:
            yield start, i + 1
            start, base = i + 1, footer.unpacked_ends[i]
    yield start, end
