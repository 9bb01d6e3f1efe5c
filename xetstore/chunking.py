"""Content-defined chunking: where a byte stream is cut into chunks.

A chunker looks at a buffer that starts at a chunk boundary and returns the ends
of the chunks it can decide. A cut is decided once the bytes that could move it
have been seen, so the boundaries never depend on how the input was split into
reads (streaming invariance). Everything here is pure: bytes in, offsets out.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple, Protocol

from fastcdc.fastcdc_cy import fastcdc_cy

from .errors import ConfigError
from .params import AVG_CHUNK, CHUNKERS, MAX_CHUNK, MIN_CHUNK, READ_BLOCK

__all__ = ["Chunker", "FastCdcChunker", "Block", "make_chunker", "iter_blocks", "iter_chunks", "chunk_ends", "fill"]


class Chunker(Protocol):
    """Finds chunk boundaries in a buffer that starts at a chunk boundary."""

    name: str

    def cut_points(self, data: memoryview, final: bool) -> Iterable[int]:
        """Return the end offsets of the decided chunks of `data`, ascending.

        With `final` the buffer is the end of the stream, so every byte belongs
        to a returned chunk. Without it, the bytes after the last returned end
        are kept by the caller and given again, followed by more input; they
        are always fewer than MAX_CHUNK. The result may be lazy (the xet
        chunker yields each end as soon as it is known): the caller iterates it
        to the end before it changes `data`.
        """
        ...


class FastCdcChunker:
    """FastCDC from the `fastcdc` package with xetstore's explicit sizes.

    The package starts every chunk from a fresh state and looks at most
    MAX_CHUNK bytes ahead, so a cut is decided unless the chunk ran into the
    end of the buffer before reaching MAX_CHUNK.
    """

    name = "fastcdc"

    def cut_points(self, data: memoryview, final: bool) -> list[int]:
        size = len(data)
        ends: list[int] = []
        if size == 0:
            return ends
        for chunk in fastcdc_cy(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK):
            end = chunk.offset + chunk.length
            if end == size and not final and chunk.length < MAX_CHUNK:
                break
            ends.append(end)
        return ends


def make_chunker(name: str) -> Chunker:
    """The chunker a repository's config names."""
    if name == "fastcdc":
        return FastCdcChunker()
    if name == "xet":
        from .gear import XetChunker

        return XetChunker()
    raise ConfigError(f"unknown chunker {name!r}; choose one of {', '.join(CHUNKERS)}")


class Block(NamedTuple):
    """One read's worth of a stream, cut into chunks.

    `data` holds whole chunks only, ending at `ends` (offsets into `data`).
    Consecutive blocks' data are contiguous and disjoint: together, in order,
    they are the whole stream.
    """

    data: memoryview
    ends: list[int]


def iter_blocks(stream: BinaryIO, chunker: Chunker, block_size: int = READ_BLOCK) -> Iterator[Block]:
    """Yield a stream as blocks of whole chunks, reading `block_size` at a time.

    Two buffers alternate, so a block stays valid until the block after the
    next one is requested: a consumer may work on block N while block N+1 is
    cut. Memory stays at two blocks whatever the stream's size.
    """
    size = min(block_size, _remaining(stream)) + MAX_CHUNK
    buffers: list[memoryview] = []  # allocated as needed: a small file needs one small one
    carry = memoryview(b"")  # bytes after the last cut (always < MAX_CHUNK)
    which = 0
    while True:
        if len(buffers) <= which:
            buffers.append(memoryview(bytearray(size)))
        buf = buffers[which]
        held = len(carry)
        buf[:held] = carry
        filled = held + fill(stream, buf[held:])
        eof = filled < len(buf)
        ends = list(chunker.cut_points(buf[:filled], final=eof))
        last = ends[-1] if ends else 0
        if ends:
            yield Block(buf[:last], ends)
        if eof:
            return
        carry = buf[last:filled]  # undecided bytes start the next block
        which ^= 1


def iter_chunks(stream: BinaryIO, chunker: Chunker, block_size: int = READ_BLOCK) -> Iterator[memoryview]:
    """Yield the chunks of a binary stream in order (each valid for two blocks)."""
    for block in iter_blocks(stream, chunker, block_size):
        start = 0
        for end in block.ends:
            yield block.data[start:end]
            start = end


def _remaining(stream: BinaryIO) -> int:
    """Bytes left in a regular file (a bound for buffer sizes), or a large number."""
    try:
        st = os.fstat(stream.fileno())
        if stat.S_ISREG(st.st_mode):
            return max(0, st.st_size - stream.tell()) + 1
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return 1 << 62


def fill(stream: BinaryIO, target: memoryview) -> int:
    """Read until `target` is full or the stream ends; return the byte count."""
    readinto = getattr(stream, "readinto", None)
    total = 0
    while total < len(target):
        if readinto is not None:
            n = readinto(target[total:])
        else:
            piece = stream.read(len(target) - total)
            n = len(piece)
            target[total : total + n] = piece
        if not n:
            break
        total += n
    return total


def chunk_ends(data: bytes | memoryview, chunker: Chunker) -> list[int]:
    """All chunk end offsets of an in-memory buffer (the whole stream)."""
    return list(chunker.cut_points(memoryview(data), final=True))
