"""Compression of chunk payloads: pure functions over bytes.

Scheme ids are those of the xorb chunk header. Xet's own ids (0-2) are kept;
xetstore adds zstd and byte-grouped (BG4) zstd, compressed as *frames* that may
cover several consecutive chunks (see docs/format.md, "Frames").
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import zstandard

from .errors import DecompressionError
from .params import BG4_ZSTD_LEVEL

__all__ = [
    "Scheme",
    "compress_frame",
    "decompress_frame",
    "bg4_split",
    "bg4_join",
    "prefers_bg4",
    "xor_residual",
    "zero_share",
]


class Scheme(IntEnum):
    NONE = 0  # payload is the chunk's plain bytes
    LZ4 = 1  # Xet: LZ4 frame (read by Xet's clients; xetstore never writes it)
    BG4_LZ4 = 2  # Xet: byte-grouped, then LZ4 frame (likewise)
    ZSTD = 3  # xetstore: zstd frame of this chunk and the IN_FRAME chunks after it
    BG4_ZSTD = 4  # xetstore: as ZSTD, over the byte-grouped frame bytes
    IN_FRAME = 5  # xetstore: no payload; the bytes are in the frame that precedes
    DELTA = 6  # xetstore: one chunk as the XOR of its bytes with a base run's (docs/format.md §6.7)


_FRAME_STARTS = (Scheme.ZSTD, Scheme.BG4_ZSTD)
_KL_THRESHOLD = 0.02  # Xet's BG4 predictor threshold
_MIN_BG4_SAMPLE = 4096
_SAMPLE = 64 * 1024
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_LANE_OFFSETS = np.array([0, 9, 18, 27], dtype=np.uint8)  # one 9-bin histogram per lane


def bg4_split(data: bytes | memoryview) -> bytes:
    """Byte grouping: bytes 0,4,8.. then 1,5,9.. then 2,.. then 3,.. (Xet's BG4)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    q, r = divmod(len(arr), 4)
    lanes = arr[: 4 * q].reshape(q, 4).T  # one transposing copy beats four strided ones
    if r == 0:
        return lanes.tobytes()
    tail = arr[4 * q :]
    return b"".join(lanes[k].tobytes() + (tail[k : k + 1].tobytes() if k < r else b"") for k in range(4))


def bg4_join(data: bytes | memoryview) -> bytes:
    """Inverse of bg4_split."""
    arr = np.frombuffer(data, dtype=np.uint8)
    q, r = divmod(len(arr), 4)
    out = np.empty(len(arr), dtype=np.uint8)
    starts = [k * q + min(k, r) for k in range(4)]
    lanes = np.empty((4, q), dtype=np.uint8)
    for k in range(4):
        lanes[k] = arr[starts[k] : starts[k] + q]
        if k < r:
            out[4 * q + k] = arr[starts[k] + q]
    out[: 4 * q].reshape(q, 4)[:] = lanes.T
    return out.tobytes()


def prefers_bg4(sample: bytes | memoryview) -> bool:
    """Xet's BG4 predictor: do the 4 byte lanes have different bit statistics?

    Builds a popcount histogram per byte position mod 4 and compares each with
    the pooled histogram (KL divergence); float tensors score high, text low.
    """
    arr = np.frombuffer(sample, dtype=np.uint8)
    if len(arr) < _MIN_BG4_SAMPLE:
        return False  # too few bytes for the lane statistics to mean anything
    m = len(arr) // 4 * 4
    codes = (_POPCOUNT[arr[:m]].reshape(-1, 4) + _LANE_OFFSETS).ravel()
    lanes = np.bincount(codes, minlength=36).reshape(4, 9)
    pooled = lanes.sum(axis=0) + 1.0
    q = pooled / pooled.sum()
    best = 0.0
    for lane in lanes:
        p = lane / lane.sum()
        mask = p > 0
        best = max(best, float(np.sum(p[mask] * np.log(p[mask] / q[mask]))))
    return best > _KL_THRESHOLD


def compress_frame(data: bytes | memoryview, level: int, bg4: bool) -> tuple[Scheme, bytes]:
    """Compress one frame; return (NONE, b"") when compression does not shrink it.

    The caller stores the frame's chunks raw in that case.
    """
    scheme = Scheme.BG4_ZSTD if bg4 else Scheme.ZSTD
    plain = bg4_split(data) if bg4 else data
    level = BG4_ZSTD_LEVEL if bg4 else level
    if len(data) >= 4 * _SAMPLE and _incompressible(data[:_SAMPLE], bg4):
        return Scheme.NONE, b""
    payload = zstandard.ZstdCompressor(level=level, write_checksum=False).compress(plain)
    if len(payload) >= len(data):
        return Scheme.NONE, b""
    return scheme, payload


def _incompressible(sample: bytes | memoryview, bg4: bool) -> bool:
    # Compressing random data costs as much as compressible data; a fast pass
    # over a sample lets incompressible frames (media, encrypted, random) skip it.
    # The sample is grouped like the frame: a prefix of the grouped frame would
    # be one byte lane alone, the random mantissa bytes of a float tensor.
    plain = bg4_split(sample) if bg4 else sample
    return len(zstandard.ZstdCompressor(level=1).compress(plain)) >= 0.98 * len(sample)


def decompress_frame(scheme: int, payload: bytes | memoryview, size: int, what: str) -> bytes:
    """Decompress a frame payload that must yield exactly `size` bytes.

    The size comes from the (bounded) xorb footer, never from the payload, so a
    forged frame header cannot make this allocate more than `size`.
    """
    if scheme == Scheme.NONE:
        if len(payload) != size:
            raise DecompressionError(what, f"raw payload is {len(payload)} bytes, expected {size}")
        return bytes(payload)
    if scheme not in _FRAME_STARTS:
        raise DecompressionError(what, f"compression scheme {scheme} is not supported")
    try:
        declared = zstandard.frame_content_size(payload)
        if declared not in (-1, size):
            raise DecompressionError(what, f"frame declares {declared} bytes, expected {size}")
        plain = zstandard.ZstdDecompressor().decompress(payload, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise DecompressionError(what, str(exc)) from None
    if len(plain) != size:
        raise DecompressionError(what, f"got {len(plain)} bytes, expected {size}")
    return bg4_join(plain) if scheme == Scheme.BG4_ZSTD else plain


def xor_residual(data: bytes | memoryview, base: bytes | memoryview) -> bytes:
    """data XOR base, byte by byte, with base zero-padded or cut to len(data).

    Its own inverse: xor_residual(xor_residual(d, b), b) == d. Bytes that a
    near-copy shares with its base become zeros, which compress to almost nothing.
    """
    a = np.frombuffer(data, dtype=np.uint8)
    b = np.frombuffer(base, dtype=np.uint8)[: len(a)]
    out = a.copy()
    out[: len(b)] ^= b
    return out.tobytes()


def zero_share(data: bytes | memoryview) -> float:
    """The share of zero bytes in `data` (0.0 when empty): a near-copy's residual is
    mostly zeros, an unrelated base's has about 1 in 256."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return 1.0 - np.count_nonzero(arr) / len(arr) if len(arr) else 0.0
