"""Delta bases read in the byte-grouped domain.

A delta chunk's residual is stored byte-grouped (BG4). XORing the residual's
grouped bytes with the grouped bytes of its base window gives the chunk's own
grouped bytes, and those lanes can be cut straight from the base frames as
zstd decodes them: the base frames need no regrouping (bg4_join) and no chunk
hashes of their own, which were a third of reading a fine-tuned model made of
delta chunks. The delta chunk's hash covers the result; where it does not
match, the caller falls back to the verified plain base, which names a damaged
base (xorb.py, _apply_delta).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable

from .backends import Backend
from .compression import Scheme, decompress_frame
from .errors import FormatError, IntegrityError, ObjectNotFound
from .hashing import range_hash
from .xorb import HEADER_SIZE, ChunkHeader, DeltaBase, XorbFooter

__all__ = ["GroupedBases"]

_CAPACITY = 16 * 1024 * 1024  # decoded base frames kept: a base run spans one or two
# (is grouped, decoded bytes, the frame's plain size)
_Frame = tuple[bool, bytes, int]
# A piece of a window: its frame, where the piece starts in the frame's plain bytes, its length.
_Piece = tuple[_Frame, int, int]


class GroupedBases:
    """The grouped bytes of delta base windows, from frames decoded once and kept."""

    def __init__(
        self,
        backend: Backend,
        footer: Callable[[bytes, str], XorbFooter],
        frame_of: Callable[[bytes, XorbFooter, int], tuple[int, int]],
    ) -> None:
        self._backend = backend
        self._footer = footer
        self._frame_of = frame_of
        self._frames: OrderedDict[tuple[bytes, int], _Frame] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def grouped_window(self, base: DeltaBase, size: int, what: str) -> bytes | None:
        """bg4_split of the `size` bytes at base.offset of the base run, or None where
        only the verified plain run will do (a window past the run's end, a base
        frame that is a delta or damaged)."""
        footer = self._footer(base.xorb_hash, what)
        ends = footer.unpacked_ends
        if base.end > footer.num_chunks or range_hash(footer.chunk_hashes[base.first : base.end]) != base.range_hash:
            return None
        lo = (ends[base.first - 1] if base.first else 0) + base.offset
        hi = lo + size
        if hi > ends[base.end - 1]:
            return None  # the plain path zero-pads
        pieces: list[_Piece] = []
        chunk = bisect.bisect_right(ends, lo, base.first, base.end)
        while lo < hi:
            first, end = self._frame_of(base.xorb_hash, footer, chunk)
            frame = self._frame(base.xorb_hash, footer, first, end)
            if frame is None:
                return None
            start = ends[first - 1] if first else 0
            stop = min(hi, ends[end - 1])
            pieces.append((frame, lo - start, stop - lo))
            lo, chunk = stop, end
        return _window_lanes(pieces)

    def _frame(self, xorb_hash: bytes, footer: XorbFooter, first: int, end: int) -> _Frame | None:
        key = (xorb_hash, first)
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                return frame
        frame = self._decode(xorb_hash, footer, first, end)
        if frame is not None:
            with self._lock:
                self._frames[key] = frame
                self._size += len(frame[1])
                while self._size > _CAPACITY and len(self._frames) > 1:
                    self._size -= len(self._frames.popitem(last=False)[1][1])
        return frame

    def _decode(self, xorb_hash: bytes, footer: XorbFooter, first: int, end: int) -> _Frame | None:
        """A frame's bytes as zstd gives them (still grouped for BG4), unverified."""
        start, stop = footer.record_start(first), footer.serialized_ends[first]
        try:
            raw = memoryview(self._backend.get(footer.key, start, stop))
            header = ChunkHeader.decode(raw[:HEADER_SIZE], "delta base frame")
            size = footer.unpacked_ends[end - 1] - (footer.unpacked_ends[first - 1] if first else 0)
            if len(raw) != stop - start or header.size != footer.chunk_size(first):
                return None
            payload = raw[HEADER_SIZE:]
            if header.scheme == Scheme.BG4_ZSTD:  # a zstd frame of the grouped bytes
                # bytes() copies nothing here: only a BG4 frame decodes to a view
                return True, bytes(decompress_frame(Scheme.ZSTD, payload, size, "delta base frame")), size
            if header.scheme in (Scheme.ZSTD, Scheme.NONE):
                return False, bytes(decompress_frame(header.scheme, payload, size, "delta base frame")), size
        except (FormatError, IntegrityError, ObjectNotFound):
            pass  # the verified plain path reports it
        return None


def _window_lanes(pieces: list[_Piece]) -> bytes:
    """bg4_split of the window that `pieces` make, in order, cut from their frames.

    Lane j of the window is its bytes j, j+4, ...; within a piece they start at
    `phase` and are every fourth byte of the frame from there: one slice of one
    of a grouped frame's lanes (plain byte p is lane p % 4, index p // 4), or a
    strided slice of a plain frame.
    """
    lanes: list[bytes] = []
    for j in range(4):
        phase = j
        for (grouped, data, frame_size), start, length in pieces:
            if phase < length:
                count = (length - phase + 3) // 4
                p = start + phase
                if grouped:
                    q, r = divmod(frame_size, 4)
                    k = p % 4
                    at = k * q + min(k, r) + p // 4
                    lanes.append(data[at : at + count])
                else:
                    lanes.append(data[p : start + length : 4])
            phase = (phase - length) % 4
    return b"".join(lanes)
