"""Reading input for clean: blocks of a stream with their sha256, or a small file whole.

The chunking thread is the critical path of an add (fastcdc holds the GIL; files
of 16 MiB and more are cut by a helper process instead, cutting.py):

- a large stream is read in blocks; each block's sha256 update runs on one
  worker thread while the chunking thread hashes the block's chunks;
- a small file is read whole and hashed on the chunking thread itself. A
  hand-off would cost more than the work: a worker wakes in ~75 us, the
  sha256 of a 16 KiB file takes 9 us, and a reader thread running ahead
  must win the GIL back from the chunking thread for every file it opens
  (measured on 18,500 files of 1-64 KiB: 72 MB/s with a reader thread, 136
  MB/s without).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import BinaryIO, NamedTuple, TypeVar

from .chunking import Block, Chunker, iter_blocks, make_chunker
from .hashing import Sha256, chunk_hashes, file_hash, xet_hex
from .params import READ_BLOCK

__all__ = ["WHOLE_FILE", "StreamHash", "WholeFile", "hash_stream", "hashed_blocks", "read_inputs"]

# Files up to this size are read whole: below it, overlapping the sha256 with
# chunking saves less than the hand-off costs (sha256 runs at ~1.8 GB/s here).
WHOLE_FILE = 256 * 1024

P = TypeVar("P")


class WholeFile(NamedTuple):
    """A small file's bytes and their sha256, read in one piece."""

    data: bytes
    sha256: bytes


def read_inputs(paths: Iterable[P], open_input: Callable[[P], BinaryIO]) -> Iterator[tuple[P, WholeFile | None]]:
    """Each path with its whole content if it is small, else None (the caller streams it)."""
    for path in paths:
        yield path, _read_whole(path, open_input)


def _read_whole(path: P, open_input: Callable[[P], BinaryIO]) -> WholeFile | None:
    with open_input(path) as f:
        if os.fstat(f.fileno()).st_size > WHOLE_FILE:
            return None
        data = f.read(WHOLE_FILE + 1)
    if len(data) > WHOLE_FILE:  # it grew since: stream it like a large file
        return None
    sha = Sha256()
    sha.update(data)
    return WholeFile(data, sha.digest())


def hashed_blocks(blocks: Iterator[Block], sha: Sha256, sha_pool: Executor) -> Iterator[tuple[Block, Sequence[bytes]]]:
    """Each block with its chunk hashes, while `sha` consumes the stream on `sha_pool`.

    Chunk hashes are computed on this thread. blake3 releases the GIL for each
    chunk, and a worker that re-takes the GIL a hundred times a block must wait
    for the chunking thread every time (measured: a GIL convoy that made LMDB
    lookups 20x slower); the sha256 takes the GIL once a block. Before the
    reader reuses a buffer (two blocks on), its sha256 update has finished.
    """
    previous: Future[None] | None = None
    for block in blocks:
        if len(block.data) <= WHOLE_FILE and previous is None:
            # A small block (a small stream's only one) is hashed here: that costs less than
            # a hand-off. Once a block went to the worker, the rest follow it, in order.
            sha.update(block.data)
            yield block, chunk_hashes(block.data, block.ends)
            continue
        summing = sha_pool.submit(sha.update, block.data)
        yield block, chunk_hashes(block.data, block.ends)
        if previous is not None:
            previous.result()
        previous = summing
    if previous is not None:
        previous.result()


class StreamHash(NamedTuple):
    """What a stream would be stored as: its file hash and sha256 (hex) and size."""

    file_hash: str
    sha256: str
    size: int


def hash_stream(stream: BinaryIO, chunker: str | Chunker = "fastcdc", block_size: int = READ_BLOCK) -> StreamHash:
    """The file hash, sha256 and size of a stream, without storing anything."""
    if isinstance(chunker, str):
        chunker = make_chunker(chunker)
    sha = Sha256()
    entries: list[tuple[bytes, int]] = []
    with ThreadPoolExecutor(1) as sha_pool:
        for block, hashes in hashed_blocks(iter_blocks(stream, chunker, block_size), sha, sha_pool):
            start = 0
            for h, end in zip(hashes, block.ends):
                entries.append((h, end - start))
                start = end
    return StreamHash(xet_hex(file_hash(entries)), sha.hexdigest(), sum(n for _, n in entries))
