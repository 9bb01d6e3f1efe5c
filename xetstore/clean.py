"""Clean: files -> chunks -> deduplicated xorbs + manifests, in one add session.

A session dedups every chunk against the index and against the chunks it has
already packed, packs the new ones into xorbs (several files share xorbs) and
publishes each xorb as soon as it is sealed. `finish` returns the shard that
records the session's manifests and xorbs; the caller makes it durable and
only then commits it to the index (docs/format.md, "Write ordering").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from .backends import Backend
from .chunking import Chunker, chunk_ends
from .dedup_targets import DedupTargets
from .errors import HashMismatch
from .hashing import Sha256, chunk_hashes, file_hash, range_hash, xet_hex
from .index import ChunkLocation, Index
from .inputs import changed_since, open_input
from .intake import WholeFile, hashed_blocks, read_inputs
from .near_copies import delta_payload, delta_prospect
from .params import READ_BLOCK, RepositoryParams
from .shard import Manifest, Shard, Term
from .xorb_writer import SessionWorkers, XorbWriter

if TYPE_CHECKING:  # delta bases load with the first stream cleaned against an earlier version
    from .delta_bases import PositionBases

__all__ = ["CleanSession", "Cleaned", "Progress"]

log = logging.getLogger("xetstore")

# Copies of one repeated chunk (zeros, padding) a run stores before terms reuse
# them: each copy costs ~100 bytes of footer and shard, each reuse a ~48-byte term.
_RUN_COPIES = 64

Progress = Callable[[int], None]  # called with the bytes consumed since the last call
# (input number, its size) -> stored earlier versions of it, newest first
EarlierOf = Callable[[int, int], Sequence[Manifest]]

# A term refers to a sealed xorb by hash, or to the session's n-th xorb by int.
_XorbRef = bytes | int


class Cleaned(NamedTuple):
    """What cleaning one stream produced."""

    file_hash: bytes
    sha256: bytes
    size: int
    new_bytes: int  # plain bytes of chunks this session stored for the stream


class _OpenTerm:
    """A term still growing: `end` and `size` advance as the file's next chunks follow
    on in the same xorb. (A plain class: a dataclass costs an import and ~0.5 ms of
    every `xetstore add` to create.)"""

    __slots__ = ("xorb", "first", "end", "size", "chunk_from")

    def __init__(self, xorb: _XorbRef, first: int, end: int, size: int, chunk_from: int) -> None:
        self.xorb = xorb
        self.first = first
        self.end = end
        self.size = size
        self.chunk_from = chunk_from  # index of the term's first chunk in the file's chunk list


class CleanSession:
    """One add: any number of streams, shared xorbs, one shard at the end."""

    def __init__(
        self, backend: Backend, index: Index, params: RepositoryParams, chunker: Chunker, spool_dir: str | None = None,
        workers: SessionWorkers | None = None,
    ) -> None:  # fmt: skip
        self._backend = backend
        self._index = index
        self._params = params
        self._chunker = chunker
        self._owns_workers = workers is None  # else the caller's, for the sessions after this one
        self._workers = workers or SessionWorkers(backend, params)
        self._xorbs = XorbWriter(backend, params, self._workers, spool_dir)
        self._session_chunks: dict[bytes, tuple[_XorbRef, int]] = {}
        # Stored xorbs, each checked against its own footer before the session uses it.
        self._targets = DedupTargets(backend, index)
        self._manifests: dict[bytes, Manifest] = {}
        self._pending: list[tuple[bytes, bytes, list[_OpenTerm], list[tuple[bytes, int]]]] = []
        self._bases: PositionBases | None = None  # the stream's earlier version, if any
        self._pos = 0  # offset in the stream of the chunk being placed

    @property
    def uploaded_bytes(self) -> int:
        """Serialized xorb bytes this session wrote."""
        return self._xorbs.uploaded_bytes

    def close(self) -> None:
        self._xorbs.close()
        if self._owns_workers:
            self._workers.close()

    def __enter__(self) -> CleanSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_paths(
        self, paths: Sequence[str | os.PathLike[str]], stats: Sequence[os.stat_result], progress: Progress | None,
        earlier_of: EarlierOf,
    ) -> list[Cleaned]:  # fmt: skip
        """Read and clean files, each checked beforehand (`inputs.check_input` gave
        its `stats`): small ones whole, large ones streamed. A file that changed
        while it was read is stored as read, with a warning.

        `earlier_of` is asked for a file's earlier versions only when the repository
        stores delta chunks (it may scan the index)."""
        self._workers.cutter.expect(s.st_size for s in stats)
        cleaned = []
        for i, (path, whole) in enumerate(read_inputs(paths, open_input)):
            if whole is not None:
                c = self.add_whole(whole, progress)
            else:
                earlier = earlier_of(i, stats[i].st_size) if self._params.delta else ()
                with open_input(path) as f:
                    c = self.add_stream(f, progress=progress, earlier=earlier)
            if changed_since(path, stats[i], c.size):
                log.warning("%s changed while it was read; stored as read (file hash %s): "
                            "add it again once it is stable", os.fspath(path), xet_hex(c.file_hash))  # fmt: skip
            cleaned.append(c)
        return cleaned

    def add_stream(
        self,
        stream: BinaryIO,
        expected_sha256: bytes | None = None,
        progress: Progress | None = None,
        block_size: int = READ_BLOCK,
        earlier: Sequence[Manifest] = (),
    ) -> Cleaned:
        """Clean one stream; its manifest is final once `finish` has run.

        With `expected_sha256` the stream's sha256 is checked while it is read,
        and a mismatch raises HashMismatch before anything refers to it. With
        `earlier` (stored versions of the same file, newest first) and delta chunks on in the
        repository, new chunks are stored as deltas against it where that is smaller.
        """
        self._pos = 0
        self._bases = None
        if earlier and self._params.delta:
            from .delta_bases import PositionBases  # with snapshot.py: a plain add needs neither
            from .smudge import Reconstructor

            self._bases = PositionBases(earlier, Reconstructor(self._backend, self._index))
        sha = Sha256()
        chunks: list[tuple[bytes, int]] = []
        terms: list[_OpenTerm] = []
        new_bytes = 0
        blocks = self._workers.cutter.blocks(stream, self._chunker, block_size)
        for block, hashes in hashed_blocks(blocks, sha, self._workers.sha256):
            new_bytes += self._add_chunks(block.data, block.ends, hashes, chunks, terms)
            if progress:
                progress(len(block.data))
        digest = sha.digest()
        if expected_sha256 is not None and digest != expected_sha256:
            raise HashMismatch("input", expected_sha256.hex(), digest.hex(), "the file changed or is not the object named")
        return self._cleaned(digest, chunks, terms, new_bytes)

    def add_whole(self, whole: WholeFile, progress: Progress | None = None) -> Cleaned:
        """Clean a small file read whole (intake.read_inputs): one block, no hand-offs."""
        chunks: list[tuple[bytes, int]] = []
        terms: list[_OpenTerm] = []
        self._pos, self._bases = 0, None
        ends = chunk_ends(whole.data, self._chunker)
        new_bytes = 0
        if ends:
            new_bytes = self._add_chunks(memoryview(whole.data), ends, chunk_hashes(whole.data, ends), chunks, terms)
        if progress:
            progress(len(whole.data))
        return self._cleaned(whole.sha256, chunks, terms, new_bytes)

    def _add_chunks(
        self, data: memoryview, ends: list[int], hashes: Sequence[bytes], chunks: list[tuple[bytes, int]], terms: list[_OpenTerm]
    ) -> int:
        """Dedup and place one block's chunks, extending the stream's `chunks` and
        `terms`; return the bytes stored new."""
        # One index transaction per block: a transaction per chunk costs more than the lookup.
        stored = self._index.chunk_locations(hashes)
        start = new_bytes = 0
        for h, end, located in zip(hashes, ends, stored):
            ref, index, is_new = self._locate(terms, h, data[start:end], located)
            new_bytes += end - start if is_new else 0
            _extend_terms(terms, ref, index, end - start, len(chunks))
            chunks.append((h, end - start))
            self._pos += end - start
            start = end
        return new_bytes

    def _cleaned(self, digest: bytes, chunks: list[tuple[bytes, int]], terms: list[_OpenTerm], new_bytes: int) -> Cleaned:
        fh = file_hash(chunks)
        self._pending.append((fh, digest, terms, chunks))
        return Cleaned(fh, digest, sum(n for _, n in chunks), new_bytes)

    def _locate(
        self, terms: list[_OpenTerm], h: bytes, chunk: memoryview, located: ChunkLocation | None
    ) -> tuple[_XorbRef, int, bool]:
        """Where chunk h goes, preferring what keeps the stream's last term growing.

        A file is cheaper to describe in few long terms: if the xorb its last
        term reads holds h next, that is the place; and a chunk that repeats
        the one before (zeros, padding) gets another copy in the open xorb,
        which compresses to almost nothing, instead of a one-chunk term each.
        """
        last = terms[-1] if terms else None
        if last is not None:
            hashes = self._xorb_chunk_hashes(last.xorb)
            if last.end < len(hashes) and hashes[last.end] == h:
                return last.xorb, last.end, False
            if self._repeats(last, h, len(chunk)):
                return last.xorb, self._xorbs.builder.add(h, chunk), True
        return self._place(h, chunk, located)

    def _repeats(self, last: _OpenTerm, h: bytes, size: int) -> bool:
        """Whether h repeats the chunk that ends `last`, at the end of the open xorb,
        and the run of its copies there is still short of _RUN_COPIES.

        Past that, the run is read again from its start by a new term: a long
        run of zeros costs _RUN_COPIES copies plus one term per run length.
        """
        hashes, n = self._xorbs.builder.chunk_hashes, self._xorbs.builder.num_chunks
        return (
            last.xorb == len(self._xorbs.sealed)
            and last.end == n
            and hashes[-1] == h
            and not (n >= _RUN_COPIES and hashes[n - _RUN_COPIES] == h)
            and self._xorbs.builder.fits(size)
        )

    def _xorb_chunk_hashes(self, ref: _XorbRef) -> Sequence[bytes]:
        if isinstance(ref, int):
            if ref == len(self._xorbs.sealed):
                return self._xorbs.builder.chunk_hashes
            return self._xorbs.sealed[ref].footer.chunk_hashes
        return self._targets.chunk_hashes(ref)

    def _place(self, h: bytes, chunk: memoryview, located: ChunkLocation | None) -> tuple[_XorbRef, int, bool]:
        """Where chunk h lives: this session's copy, the index's `located`, or a new
        slot in the open xorb."""
        known = self._session_chunks.get(h)
        if known is not None:
            return known[0], known[1], False
        if located is not None and self._targets.holds(located, h):
            return located[0], located[1], False
        if not self._xorbs.builder.fits(len(chunk)):
            self._xorbs.seal()
        index = self._add_new(h, chunk)
        ref = len(self._xorbs.sealed)  # the open xorb becomes the session's next sealed one
        self._session_chunks[h] = (ref, index)
        return ref, index, True

    def _add_new(self, h: bytes, chunk: memoryview) -> int:
        """Append a new chunk to the open xorb: as a delta against the stream's
        earlier version when that stores less, else plain. Bases are in xorbs
        an earlier, finished session published, so they are durable already."""
        found = self._bases.base_for(self._pos, len(chunk)) if self._bases is not None else None
        if found is not None:
            base, run, share = found
            window = memoryview(run)[base.offset : base.offset + len(chunk)]
            prospect = delta_prospect(chunk, window, share)
            if prospect == "workers":
                return self._xorbs.builder.add_near_copy(h, chunk, base, window, share)
            if prospect == "here":
                payload = delta_payload(chunk, base, window, self._params.zstd_level, share)
                if payload is not None:
                    return self._xorbs.builder.add_delta(h, len(chunk), payload)
        return self._xorbs.builder.add(h, chunk)

    def knows_a_file(self) -> bool:
        """Whether the index holds a manifest of a file of this session: only then may
        `finish` leave one out as already stored."""
        return any(self._index.manifest(fh) is not None for fh, *_ in self._pending)

    def finish(self, created: int) -> Shard | None:
        """Seal the last xorb and start publishing it; return the session's shard,
        or None if every stream was already stored. The shard may only be
        published after `wait_durable`: its xorbs may still be publishing."""
        self._xorbs.seal()
        sealed = self._xorbs.sealed
        hashes = [x.footer.xorb_hash for x in sealed]
        for fh, digest, terms, chunks in self._pending:
            resolved = tuple(_resolve(t, hashes, chunks) for t in terms)
            self._manifests[fh] = Manifest(fh, digest, resolved)
        manifests = [m for m in self._manifests.values() if self._is_new(m)]
        if not manifests and not sealed:
            return None
        return Shard(tuple(manifests), tuple(sealed), created)

    def wait_durable(self) -> None:
        """Until every xorb of the session is durable; re-raises a publish's error."""
        self._xorbs.wait()

    def manifest(self, fh: bytes) -> Manifest:
        """A stream's final manifest (after `finish`)."""
        return self._manifests[fh]

    def _is_new(self, m: Manifest) -> bool:
        """Whether the shard must record `m`: the index has no manifest of the file,
        or that manifest names a xorb that is gone (the file is not stored then)."""
        old = self._index.manifest(m.file_hash)
        return old is None or not all(self._targets.exists(h) for h in {t.xorb_hash for t in old.terms})


def _extend_terms(terms: list[_OpenTerm], ref: _XorbRef, index: int, size: int, chunk_no: int) -> None:
    last = terms[-1] if terms else None
    if last is not None and last.xorb == ref and last.end == index:
        last.end += 1
        last.size += size
    else:
        terms.append(_OpenTerm(ref, index, index + 1, size, chunk_no))


def _resolve(t: _OpenTerm, sealed: list[bytes], chunks: list[tuple[bytes, int]]) -> Term:
    xorb = sealed[t.xorb] if isinstance(t.xorb, int) else t.xorb
    hashes = (h for h, _ in chunks[t.chunk_from : t.chunk_from + t.end - t.first])
    return Term(xorb, t.first, t.end, t.size, range_hash(hashes))
