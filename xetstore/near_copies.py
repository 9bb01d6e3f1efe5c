"""Near-copies: whether a new chunk with a base is stored as a delta against it,
where that is decided, and its scheme-6 payload (docs/format.md §6.7).

Pure: chunk and base bytes in, payloads out; packing.py puts them into xorbs
and clean.py picks the base (delta_bases.py).
"""

from __future__ import annotations

from .compression import Scheme, compress_frame, decompress_frame, xor_residual, zero_share
from .errors import HashMismatch
from .xorb import DELTA_HEADER, DeltaBase, encode_delta

__all__ = ["DELTA_MARGIN", "delta_prospect", "delta_payload", "near_copy"]

# A delta is kept only when it stores at most this share of what the chunk would otherwise.
DELTA_MARGIN = 0.9
# Residuals with fewer zero bytes are not compressed: a full fine-tune's residual has
# 0.47 (f32) or 0.93 (bf16) zero bytes, the same weights shifted by 100 bytes 0.05 or
# 0.10 (exponent bytes still meet), unrelated or shifted text about 0.004.
_MIN_ZERO_SHARE = 0.2
_NEAR_SAMPLE = 4096
# Near-copies of bases whose frames store less than this share of their size are
# decided on the chunking thread. Kept out of a 1 MiB frame, a chunk stores 9 % more
# on CSV (frames at 0.28 of its size), 5 % on SQLite pages (0.57) and 10-13 % on f32
# and bf16 weights (0.84, 0.68), but near-copies of weights almost always pay as deltas
# and are the bulk of a fine-tune's chunks (measured on the bench's workloads).
_CONTEXT_SHARE = 0.5


def delta_prospect(chunk: bytes | memoryview, window: bytes | memoryview, base_share: float) -> str:
    """Where a chunk with a base is decided: "plain" when its first 4 KiB XOR the
    base have few zero bytes (not a near-copy: shifted or rewritten bytes);
    "here", on the chunking thread (delta_payload), when the base compresses
    well, so that a chunk that does not pay stays in its frame; else "workers"
    (encode_near_copy on the compression threads, chunking going on)."""
    n = min(len(chunk), _NEAR_SAMPLE)
    if zero_share(xor_residual(chunk[:n], window[:n])) < _MIN_ZERO_SHARE:
        return "plain"
    return "here" if base_share < _CONTEXT_SHARE else "workers"


def _residual(chunk: bytes | memoryview, window: bytes | memoryview, level: int) -> tuple[Scheme, bytes, bytes]:
    """The chunk XOR its base window, compressed: (scheme, payload, the residual)."""
    residual = xor_residual(chunk, window)
    # Byte-grouped when grouping pays, without Xet's predictor: its lane
    # histograms cost more than the grouping trial itself at a chunk's size,
    # and a chunk's trial covers it whole, so it is also its compression.
    scheme, packed = compress_frame(residual, level, True)
    return scheme, packed, residual


def _delta(base: DeltaBase, scheme: Scheme, packed: bytes, residual: bytes, check: bool) -> bytes:
    what = "new delta chunk"
    if check and bytes(decompress_frame(scheme, packed, len(residual), what)) != residual:  # memcmp, not a view's item loop
        raise HashMismatch(what, "the chunk's residual", "different bytes after a compression round trip")
    return encode_delta(base, scheme, packed)


def delta_payload(
    chunk: bytes | memoryview, base: DeltaBase, window: bytes | memoryview, level: int, base_share: float, check: bool = True
) -> bytes | None:
    """The scheme-6 payload of a chunk against its base run's bytes at its
    position, or None when it would store more than DELTA_MARGIN of what the
    chunk would in a frame: `base_share` of its size, the share the base run's
    frames store (a near-copy compresses like its base). With `check`, the
    compression is round-tripped."""
    scheme, packed, residual = _residual(chunk, window, level)
    if scheme == Scheme.NONE or len(packed) + DELTA_HEADER > DELTA_MARGIN * base_share * len(chunk):
        return None
    return _delta(base, scheme, packed, residual, check)


def near_copy(
    chunk: bytes, base: DeltaBase, window: bytes, level: int, base_share: float, check: bool = True
) -> bytes | tuple[Scheme, bytes]:
    """What a near-copy stored as a frame of its own keeps: its scheme-6 payload,
    or (scheme, payload) of the chunk compressed alone (NONE: raw) when that
    stores less. A delta that beats the chunk in a frame (delta_payload's
    estimate) beats it alone too; only one that does not costs compressing the
    chunk to compare. Builders check the first delta of each xorb."""
    scheme, packed, residual = _residual(chunk, window, level)
    size = len(packed) + DELTA_HEADER if scheme != Scheme.NONE else len(chunk) + DELTA_HEADER
    if size > DELTA_MARGIN * base_share * len(chunk):
        alone_scheme, alone = compress_frame(chunk, level, True)
        if scheme == Scheme.NONE or size > DELTA_MARGIN * (len(alone) if alone_scheme != Scheme.NONE else len(chunk)):
            return alone_scheme, alone
    return _delta(base, scheme, packed, residual, check)
