"""Compression of chunk payloads: pure functions over bytes.

Scheme ids are those of the xorb chunk header. Xet's own ids (0-2) are kept;
xetstore adds zstd and byte-grouped (BG4) zstd, compressed as *frames* that may
cover several consecutive chunks (see docs/format.md, "Frames").
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import threading
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from .errors import DecompressionError
from .params import BG4_ZSTD_LEVEL, MAX_PAYLOAD

if TYPE_CHECKING:
    import numpy as np

# numpy and zstandard are imported on first use, not with this module: listing
# or opening a repository decodes shards and footers only, and a fresh process
# per command (the CLI, eight git-lfs agents) must not pay ~50 ms for numpy.

__all__ = [
    "Scheme",
    "compress_frame",
    "compress_as",
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
    CALLS_ZSTD = 7  # xetstore: as ZSTD, over the call-filtered frame bytes (docs/format.md §6.9)


_FRAME_STARTS = (Scheme.ZSTD, Scheme.BG4_ZSTD, Scheme.CALLS_ZSTD)
_KL_THRESHOLD = 0.02  # Xet's BG4 predictor threshold
_MIN_BG4_SAMPLE = 4096
_SAMPLE = 64 * 1024
_GROUPING_MARGIN = 1.05  # see _grouping_pays
_POPCOUNT_TABLE = bytes(bin(i).count("1") for i in range(256))
# A process that adds a little (one `xetstore add`, one git-lfs upload) must not pay
# ~60 ms to import numpy for the BG4 predictor: its first calls count histograms in
# pure Python (~1.4 ms more per 1 MiB frame), then numpy takes over, bounding the
# extra cost near one import's.
_PURE_CALLS = 48
_pure_calls = itertools.count()


class _PureBytes:
    """Bytes a pure-Python stand-in for numpy may still take in this process.

    Counted in bytes, not calls: a 64 KiB grouping sample or a small file's
    frame costs a sixteenth of a 1 MiB frame (a count of calls, where each
    frame also split two samples, ended after 16 frames). Threads race on it by
    design; a race only moves the moment numpy takes over by a call.
    """

    def __init__(self, limit: int) -> None:
        self._left = limit

    def take(self, n: int) -> bool:
        if "numpy" in sys.modules:
            return False
        self._left -= n
        return self._left >= 0


_split_budget = _PureBytes(_PURE_CALLS << 20)  # as many bytes as _PURE_CALLS 1 MiB frames


@functools.cache
def _popcount_bins() -> np.ndarray:
    """A 256 x 9 matrix: row v is one-hot at the popcount of byte value v."""
    import numpy as np

    bins = np.zeros((256, 9), dtype=np.int64)
    bins[np.arange(256), np.frombuffer(_POPCOUNT_TABLE, dtype=np.uint8)] = 1
    return bins


def _zstd() -> Any:
    import zstandard

    return zstandard


_contexts = threading.local()  # a zstd context serves one call at a time: one set per thread


def _compressor(level: int) -> Any:
    """This thread's compressor for `level`: making one costs ~10 us, a delta
    chunk's compression ~60 us."""
    by_level: dict[int, Any] = _contexts.__dict__.setdefault("compressors", {})
    c = by_level.get(level)
    if c is None:
        c = by_level[level] = _zstd().ZstdCompressor(level=level, write_checksum=False)
    return c


def _decompressor() -> Any:
    d = getattr(_contexts, "decompressor", None)
    if d is None:
        d = _contexts.decompressor = _zstd().ZstdDecompressor()
    return d


def bg4_split(data: bytes | bytearray | memoryview) -> bytes:
    """Byte grouping: bytes 0,4,8.. then 1,5,9.. then 2,.. then 3,.. (Xet's BG4).

    A process's first frames are split by extended slices, without numpy: 1.9 ms
    per MiB instead of 0.3 (measured), against ~60 ms to import numpy, which an
    `xetstore add` of a model version would otherwise pay while its compression
    threads wait on the import. Past _PURE_CALLS MiB (or once numpy is loaded
    anyway) numpy does it.
    """
    if _split_budget.take(len(data)):
        return _bg4_split_pure(data)
    return _bg4_split_numpy(data)


def _bg4_split_pure(data: bytes | bytearray | memoryview) -> bytes:
    whole = bytes(data)
    return b"".join([whole[k::4] for k in range(4)])


def _bg4_split_numpy(data: bytes | bytearray | memoryview) -> bytes:
    import numpy as np

    arr = np.frombuffer(data, dtype=np.uint8)
    q, r = divmod(len(arr), 4)
    lanes = arr[: 4 * q].reshape(q, 4).T  # one transposing copy beats four strided ones
    if r == 0:
        grouped: bytes = lanes.tobytes()
        return grouped
    tail = arr[4 * q :]
    return b"".join(lanes[k].tobytes() + (tail[k : k + 1].tobytes() if k < r else b"") for k in range(4))


def bg4_join(data: bytes | memoryview) -> memoryview:
    """Inverse of bg4_split.

    Extended-slice assignment into a bytearray, not numpy: a 1 MiB frame takes
    1.1 ms instead of 2.2 ms (measured), and reading a byte-grouped file does not
    import numpy. The lanes are views and the result is a view of the bytearray:
    copying both (slices of bytes, then bytes(out)) took half of that time.
    """
    q, r = divmod(len(data), 4)
    out = bytearray(len(data))
    lanes = memoryview(data)
    pos = 0
    for k in range(4):
        size = q + (1 if k < r else 0)
        out[k::4] = lanes[pos : pos + size]
        pos += size
    return memoryview(out)


def prefers_bg4(sample: bytes | memoryview) -> bool:
    """Xet's BG4 predictor: do the 4 byte lanes have different bit statistics?

    Builds a popcount histogram per byte position mod 4 and compares each with
    the pooled histogram (KL divergence); float tensors score high, text low.
    """
    if len(sample) < _MIN_BG4_SAMPLE:
        return False  # too few bytes for the lane statistics to mean anything
    if "numpy" in sys.modules or next(_pure_calls) >= _PURE_CALLS:
        lanes = _lane_histograms_numpy(sample)
    else:
        lanes = _lane_histograms_pure(sample)
    return _max_divergence(lanes) > _KL_THRESHOLD


def _lane_histograms_pure(sample: bytes | memoryview) -> list[list[int]]:
    """Per byte lane, how many bytes have 0..8 bits set; no numpy (5x slower than it)."""
    codes = bytes(sample[: len(sample) // 4 * 4]).translate(_POPCOUNT_TABLE)
    return [[lane.count(v) for v in range(9)] for lane in (codes[k::4] for k in range(4))]


def _lane_histograms_numpy(sample: bytes | memoryview) -> list[list[int]]:
    """The same histograms as _lane_histograms_pure, with numpy: each lane's byte values
    counted, then summed by popcount. A 64 KiB sample takes 0.13 ms; looking up every
    byte's popcount first took 0.30 ms, a quarter of the time to encode a 1 MiB frame
    of torch's CUDA library (mostly stored raw)."""
    import numpy as np

    arr = np.frombuffer(sample, dtype=np.uint8)[: len(sample) // 4 * 4]
    values = np.stack([np.bincount(arr[k::4], minlength=256) for k in range(4)])
    counts: list[list[int]] = (values @ _popcount_bins()).tolist()
    return counts


def _max_divergence(lanes: list[list[int]]) -> float:
    """The largest KL divergence of a lane's histogram from the pooled one (+1 smoothed)."""
    pooled = [sum(column) + 1.0 for column in zip(*lanes)]
    total = sum(pooled)
    q = [c / total for c in pooled]
    best = 0.0
    for lane in lanes:
        n = sum(lane)
        best = max(best, sum((c / n) * math.log((c / n) / qv) for c, qv in zip(lane, q) if c))
    return best


def compress_frame(data: bytes | memoryview, level: int, bg4: bool) -> tuple[Scheme, bytes]:
    """Compress one frame; return (NONE, b"") when compression does not shrink it.

    The caller stores the frame's chunks raw in that case.
    """
    trial: tuple[bytes, bytes] | None = None
    if bg4 and len(data) >= _MIN_BG4_SAMPLE:
        trial = _grouping_trial(data[:_SAMPLE])
        bg4 = _grouping_pays(*trial)
    scheme = Scheme.BG4_ZSTD if bg4 else Scheme.ZSTD
    level = BG4_ZSTD_LEVEL if bg4 else level
    if trial is not None and len(data) <= _SAMPLE and level == _TRIAL_LEVEL:
        payload = trial[0] if bg4 else trial[1]  # the trial compressed the whole frame already
    else:
        if len(data) >= 4 * _SAMPLE and _incompressible(_spread_sample(data), bg4):
            return Scheme.NONE, b""
        payload = _compressor(level).compress(bg4_split(data) if bg4 else data)
    if len(payload) >= len(data) or len(payload) > MAX_PAYLOAD:
        return Scheme.NONE, b""
    return scheme, payload


def compress_as(data: bytes | bytearray | memoryview, scheme: Scheme, level: int) -> bytes:
    """A frame's payload in a given scheme (ZSTD, BG4_ZSTD or CALLS_ZSTD) and level,
    with no choosing: compact tries schemes and levels itself."""
    if scheme == Scheme.BG4_ZSTD:
        data = bg4_split(data)
    elif scheme == Scheme.CALLS_ZSTD:
        from .call_filter import filter_calls

        data = filter_calls(data)
    payload: bytes = _compressor(level).compress(data)
    return payload


_TRIAL_LEVEL = 1


def _grouping_trial(sample: bytes | memoryview) -> tuple[bytes, bytes]:
    """The sample compressed at _TRIAL_LEVEL byte-grouped, and as it is."""
    compress = _compressor(_TRIAL_LEVEL).compress
    return compress(bg4_split(sample)), compress(sample)


def _grouping_pays(grouped: bytes, ungrouped: bytes) -> bool:
    """Does byte grouping keep the sample about as compressible (_grouping_trial) as it is?

    The predictor looks at bit statistics only: machine code and binary tables
    also have lanes that differ, but grouping them breaks the long matches zstd
    finds, and 10 of 57 frames of numpy's shared libraries were stored 7 % larger
    grouped. Float tensors compress as well or better grouped; their frames whose
    grouped sample came out up to 3 % larger still stored less grouped (the frame
    is then compressed at BG4_ZSTD_LEVEL), hence the 5 % margin (measured on the
    bench's model and the real-libs and real-releases workloads).
    """
    return len(grouped) < _GROUPING_MARGIN * len(ungrouped)


def _spread_sample(data: bytes | memoryview) -> bytes:
    """_SAMPLE bytes from four places in the frame, not only its start: frames of
    shared libraries often open with an incompressible stretch (torch's CUDA
    fatbins) and go on with code; judged by their first 64 KiB, 364 MB of two torch
    builds' libraries were stored raw that zstd level 3 makes 10 % smaller."""
    piece = _SAMPLE // 4 & ~3  # a multiple of 4: each piece's byte lanes line up for BG4
    step = (len(data) - piece) // 3 & ~3
    return b"".join(bytes(data[k * step : k * step + piece]) for k in range(4))


def _incompressible(sample: bytes | memoryview, bg4: bool) -> bool:
    # Compressing random data costs as much as compressible data; a fast pass
    # over a sample lets incompressible frames (media, encrypted, random) skip it.
    # The sample is grouped like the frame: a prefix of the grouped frame would
    # be one byte lane alone, the random mantissa bytes of a float tensor.
    plain = bg4_split(sample) if bg4 else sample
    return len(_compressor(1).compress(plain)) >= 0.98 * len(sample)


def decompress_frame(
    scheme: int, payload: bytes | memoryview, size: int, what: str, want: int | None = None
) -> bytes | memoryview:
    """Decompress a frame payload that must yield exactly `size` bytes; with `want`,
    a read needs only its first `want` bytes, and gets at least those.

    The size comes from the (bounded) xorb footer, never from the payload, so a
    forged frame header cannot make this allocate more than `size`.
    A zstd frame is then decoded no further than `want`: a version that shares a
    few chunks at the front of older versions' frames would decode each whole
    (restoring the bench's last release decoded 69 MB of frames for 20 MB, 25 MB
    this way). A byte-grouped frame needs all of its bytes to rebuild any.
    """
    if scheme == Scheme.NONE:
        if len(payload) != size:
            raise DecompressionError(what, f"raw payload is {len(payload)} bytes, expected {size}")
        return bytes(payload)
    if scheme not in _FRAME_STARTS:
        raise DecompressionError(what, f"compression scheme {scheme} is not supported")
    zstandard = _zstd()
    expected = want if want is not None and want < size and scheme != Scheme.BG4_ZSTD else size
    if scheme == Scheme.CALLS_ZSTD and expected < size:
        expected = min(size, expected + 4)  # a call's operand may reach past `want`
    try:
        declared = zstandard.frame_content_size(payload)
        if declared not in (-1, size):
            raise DecompressionError(what, f"frame declares {declared} bytes, expected {size}")
        if expected < size:
            plain = _decoded_prefix(payload, expected)
        else:
            plain = _decompressor().decompress(payload, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise DecompressionError(what, str(exc)) from None
    if len(plain) != expected:
        raise DecompressionError(what, f"got {len(plain)} bytes, expected {expected}")
    if scheme == Scheme.CALLS_ZSTD:
        return _unfiltered(plain, size, want)
    return bg4_join(plain) if scheme == Scheme.BG4_ZSTD else plain


def _unfiltered(plain: bytes, size: int, want: int | None) -> bytes | memoryview:
    """A call-filtered frame's bytes, or its first `want` plain bytes from a longer
    decoded prefix: the filter converts no call whose operand the prefix cuts, and a
    call at or past `want` changes only bytes past it."""
    from .call_filter import unfilter_calls

    whole = memoryview(unfilter_calls(plain))
    return whole if len(plain) == size or want is None else whole[:want]


def _decoded_prefix(payload: bytes | memoryview, want: int) -> bytes:
    """The first `want` plain bytes of a zstd frame, decoding no further than those."""
    parts: list[bytes] = []
    got = 0
    with _decompressor().stream_reader(payload) as reader:
        while got < want and (part := reader.read(want - got)):
            parts.append(part)
            got += len(part)
    return b"".join(parts)


def xor_residual(data: bytes | memoryview, base: bytes | memoryview) -> bytes:
    """data XOR base, byte by byte, with base zero-padded or cut to len(data).

    Its own inverse: xor_residual(xor_residual(d, b), b) == d. Bytes that a
    near-copy shares with its base become zeros, which compress to almost nothing.
    bitarray XORs in C: 0.006 ms per 64 KiB (measured) for a 3 ms import, where
    numpy costs ~90 ms to import and Python integers 0.18 ms per 64 KiB, which
    was a third of the time to restore a fine-tuned model made of delta chunks.
    """
    from bitarray import bitarray

    n = len(data)
    out, other = bitarray(endian="little"), bitarray(endian="little")
    # frombytes reads any buffer; bitarray's stub names only bytes and bytearray.
    out.frombytes(data)  # type: ignore[arg-type]
    other.frombytes(base[:n] if len(base) >= n else bytes(base).ljust(n, b"\0"))  # type: ignore[arg-type]
    out ^= other
    xored: bytes = out.tobytes()
    return xored


def zero_share(data: bytes | memoryview) -> float:
    """The share of zero bytes in `data` (0.0 when empty): a near-copy's residual is
    mostly zeros, an unrelated base's has about 1 in 256."""
    return bytes(data).count(0) / len(data) if len(data) else 0.0
