"""Content-defined chunking: where a byte stream is cut into chunks.

A chunker looks at a buffer that starts at a chunk boundary and returns the ends
of the chunks it can decide. A cut is decided once the bytes that could move it
have been seen, so the boundaries never depend on how the input was split into
reads (streaming invariance). Everything here is pure: bytes in, offsets out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, Protocol

from fastcdc.fastcdc_cy import fastcdc_cy

from .errors import ConfigError
from .params import AVG_CHUNK, CHUNKERS, MAX_CHUNK, MIN_CHUNK, READ_BLOCK

__all__ = ["Chunker", "FastCdcChunker", "make_chunker", "iter_chunks", "chunk_ends", "OnRead"]

# Called with each newly read region of the stream; may return a function that the
# reader calls before it reuses that region (so the work may run on another thread).
OnRead = Callable[[memoryview], Callable[[], object] | None]


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


def iter_chunks(
    stream: BinaryIO, chunker: Chunker, block_size: int = READ_BLOCK, on_read: OnRead | None = None
) -> Iterator[memoryview]:
    """Yield the chunks of a binary stream in order, reading `block_size` at a time.

    Memory stays at about one block whatever the stream's size. Each chunk is a
    view into a reused buffer: it is valid until the next chunk is requested,
    so a consumer that keeps chunk bytes must copy them. `on_read` sees every
    byte of the stream once, in order, as it is read (e.g. to hash the whole
    stream on another thread while this one chunks).
    """
    buf = bytearray(block_size + MAX_CHUNK)
    view = memoryview(buf)
    held = 0  # bytes at the front of buf not cut yet (always < MAX_CHUNK)
    while True:
        filled = held + _fill(stream, view[held:])
        eof = filled < len(buf)
        wait = on_read(view[held:filled]) if on_read and filled > held else None
        start = 0
        for end in chunker.cut_points(view[:filled], final=eof):
            yield view[start:end]
            start = end
        if wait is not None:
            wait()
        if eof:
            return
        held = filled - start
        view[:held] = view[start:filled]


def _fill(stream: BinaryIO, target: memoryview) -> int:
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
