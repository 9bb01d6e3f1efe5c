"""Xet's gear-hash chunker, vectorised with numpy: file hashes equal Hugging Face Xet's.

Xet (gearhash 0.1.3) rolls `h = (h << 1) + GEAR_TABLE[byte]` over the bytes and
cuts after a byte where the top 16 bits of h are zero. A byte's contribution is
shifted out of the 64-bit word after 64 steps, so h at an end offset e is the
windowed hash W(e) of the 64 bytes before e, whatever came earlier. Xet resets
h at each cut and skips a chunk's first 8127 bytes, but a match only counts
from 8192 bytes in, when h again covers 64 bytes of the chunk. So the rule is
stateless: the next cut after a chunk start s is the least e in
[s + MIN_CHUNK, s + MAX_CHUNK] with W(e) < 2**48, else s + MAX_CHUNK, else the
end of the stream. Boundaries therefore never depend on how input is read.

W is computed for every end offset at once, with numpy and no per-byte loop.
A 65536-entry pair table gives the hash of each quad's two 2-byte halves,
which combine into the hash of the quad; four shift-and-add doubling passes
widen those windows to 8, 16, 32 and 64 bytes, giving W at every offset that
is a multiple of 4. The three offsets in between roll on one byte at a time
(`(W << 1) + GEAR_TABLE[b]`, or `(W << 2) + pair hash`). A buffer is cut into
sub-blocks that are searched on a thread pool (numpy releases the GIL), and
the cut walk, which is sequential but touches only the rare matches, yields
each cut as soon as it is decided.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .params import MAX_CHUNK, MIN_CHUNK

__all__ = ["XetChunker", "GEAR_TABLE", "window_matches"]

# gearhash::DEFAULT_TABLE (gearhash 0.1.3, src/table.rs), indexed by byte value.
# fmt: off
GEAR_TABLE = np.array([
    0xb088d3a9e840f559, 0x5652c7f739ed20d6, 0x45b28969898972ab, 0x6b0a89d5b68ec777,
    0x368f573e8b7a31b7, 0x1dc636dce936d94b, 0x207a4c4e5554d5b6, 0xa474b34628239acb,
    0x3b06a83e1ca3b912, 0x90e78d6c2f02baf7, 0xe1c92df7150d9a8a, 0x8e95053a1086d3ad,
    0x5a2ef4f1b83a0722, 0xa50fac949f807fae, 0x0e7303eb80d8d681, 0x99b07edc1570ad0f,
    0x689d2fb555fd3076, 0x00005082119ea468, 0xc4b08306a88fcc28, 0x3eb0678af6374afd,
    0xf19f87ab86ad7436, 0xf2129fbfbe6bc736, 0x481149575c98a4ed, 0x0000010695477bc5,
    0x1fba37801a9ceacc, 0x3bf06fd663a49b6d, 0x99687e9782e3874b, 0x79a10673aa50d8e3,
    0xe4accf9e6211f420, 0x2520e71f87579071, 0x2bd5d3fd781a8a9b, 0x00de4dcddd11c873,
    0xeaa9311c5a87392f, 0xdb748eb617bc40ff, 0xaf579a8df620bf6f, 0x86a6e5da1b09c2b1,
    0xcc2fc30ac322a12e, 0x355e2afec1f74267, 0x2d99c8f4c021a47b, 0xbade4b4a9404cfc3,
    0xf7b518721d707d69, 0x3286b6587bf32c20, 0x0000b68886af270c, 0xa115d6e4db8a9079,
    0x484f7e9c97b2e199, 0xccca7bb75713e301, 0xbf2584a62bb0f160, 0xade7e813625dbcc8,
    0x000070940d87955a, 0x8ae69108139e626f, 0xbd776ad72fde38a2, 0xfb6b001fc2fcc0cf,
    0xc7a474b8e67bc427, 0xbaf6f11610eb5d58, 0x09cb1f5b6de770d1, 0xb0b219e6977d4c47,
    0x00ccbc386ea7ad4a, 0xcc849d0adf973f01, 0x73a3ef7d016af770, 0xc807d2d386bdbdfe,
    0x7f2ac9966c791730, 0xd037a86bc6c504da, 0xf3f17c661eaa609d, 0xaca626b04daae687,
    0x755a99374f4a5b07, 0x90837ee65b2caede, 0x6ee8ad93fd560785, 0x0000d9e11053edd8,
    0x9e063bb2d21cdbd7, 0x07ab77f12a01d2b2, 0xec550255e6641b44, 0x78fb94a8449c14c6,
    0xc7510e1bc6c0f5f5, 0x0000320b36e4cae3, 0x827c33262c8b1a2d, 0x14675f0b48ea4144,
    0x267bd3a6498deceb, 0xf1916ff982f5035e, 0x86221b7ff434fb88, 0x9dbecee7386f49d8,
    0xea58f8cac80f8f4a, 0x008d198692fc64d8, 0x6d38704fbabf9a36, 0xe032cb07d1e7be4c,
    0x228d21f6ad450890, 0x635cb1bfc02589a5, 0x4620a1739ca2ce71, 0xa7e7dfe3aae5fb58,
    0x0c10ca932b3c0deb, 0x2727fee884afed7b, 0xa2df1c6df9e2ab1f, 0x4dcdd1ac0774f523,
    0x000070ffad33e24e, 0xa2ace87bc5977816, 0x9892275ab4286049, 0xc2861181ddf18959,
    0xbb9972a042483e19, 0xef70cd3766513078, 0x00000513abfc9864, 0xc058b61858c94083,
    0x09e850859725e0de, 0x9197fb3bf83e7d94, 0x7e1e626d12b64bce, 0x520c54507f7b57d1,
    0xbee1797174e22416, 0x6fd9ac3222e95587, 0x0023957c9adfbf3e, 0xa01c7d7e234bbe15,
    0xaba2c758b8a38cbb, 0x0d1fa0ceec3e2b30, 0x0bb6a58b7e60b991, 0x4333dd5b9fa26635,
    0xc2fd3b7d4001c1a3, 0xfb41802454731127, 0x65a56185a50d18cb, 0xf67a02bd8784b54f,
    0x696f11dd67e65063, 0x00002022fca814ab, 0x8cd6be912db9d852, 0x695189b6e9ae8a57,
    0xee9453b50ada0c28, 0xd8fc5ea91a78845e, 0xab86bf191a4aa767, 0x0000c6b5c86415e5,
    0x267310178e08a22e, 0xed2d101b078bca25, 0x3b41ed84b226a8fb, 0x13e622120f28dc06,
    0xa315f5ebfb706d26, 0x8816c34e3301bace, 0xe9395b9cbb71fdae, 0x002ce9202e721648,
    0x4283db1d2bb3c91c, 0xd77d461ad2b1a6a5, 0xe2ec17e46eeb866b, 0xb8e0be4039fbc47c,
    0xdea160c4d5299d04, 0x7eec86c8d28c3634, 0x2119ad129f98a399, 0xa6ccf46b61a283ef,
    0x2c52cedef658c617, 0x2db4871169acdd83, 0x0000f0d6f39ecbe9, 0x3dd5d8c98d2f9489,
    0x8a1872a22b01f584, 0xf282a4c40e7b3cf2, 0x8020ec2ccb1ba196, 0x6693b6e09e59e313,
    0x0000ce19cc7c83eb, 0x20cb5735f6479c3b, 0x762ebf3759d75a5b, 0x207bfe823d693975,
    0xd77dc112339cd9d5, 0x9ba7834284627d03, 0x217dc513e95f51e9, 0xb27b1a29fc5e7816,
    0x00d5cd9831bb662d, 0x71e39b806d75734c, 0x7e572af006fb1a23, 0xa2734f2f6ae91f85,
    0xbf82c6b5022cddf2, 0x5c3beac60761a0de, 0xcdc893bb47416998, 0x6d1085615c187e01,
    0x77f8ae30ac277c5d, 0x917c6b81122a2c91, 0x5b75b699add16967, 0x0000cf6ae79a069b,
    0xf3c40afa60de1104, 0x2063127aa59167c3, 0x621de62269d1894d, 0xd188ac1de62b4726,
    0x107036e2154b673c, 0x0000b85f28553a1d, 0xf2ef4e4c18236f3d, 0xd9d6de6611b9f602,
    0xa1fc7955fb47911c, 0xeb85fd032f298dbd, 0xbe27502fb3befae1, 0xe3034251c4cd661e,
    0x441364d354071836, 0x0082b36c75f2983e, 0xb145910316fa66f0, 0x021c069c9847caf7,
    0x2910dfc75a4b5221, 0x735b353e1c57a8b5, 0xce44312ce98ed96c, 0xbc942e4506bdfa65,
    0xf05086a71257941b, 0xfec3b215d351cead, 0x00ae1055e0144202, 0xf54b40846f42e454,
    0x00007fd9c8bcbcc8, 0xbfbd9ef317de9bfe, 0xa804302ff2854e12, 0x39ce4957a5e5d8d4,
    0xffb9e2a45637ba84, 0x55b9ad1d9ea0818b, 0x00008acbf319178a, 0x48e2bfc8d0fbfb38,
    0x8be39841e848b5e8, 0x0e2712160696a08b, 0xd51096e84b44242a, 0x1101ba176792e13a,
    0xc22e770f4531689d, 0x1689eff272bbc56c, 0x00a92a197f5650ec, 0xbc765990bda1784e,
    0xc61441e392fcb8ae, 0x07e13a2ced31e4a0, 0x92cbe984234e9d4d, 0x8f4ff572bb7d8ac5,
    0x0b9670c00b963bd0, 0x62955a581a03eb01, 0x645f83e5ea000254, 0x41fce516cd88f299,
    0xbbda9748da7a98cf, 0x0000aab2fe4845fa, 0x19761b069bf56555, 0x8b8f5e8343b6ad56,
    0x3e5d1cfd144821d9, 0xec5c1e2ca2b0cd8f, 0xfaf7e0fea7fbb57f, 0x000000d3ba12961b,
    0xda3f90178401b18e, 0x70ff906de33a5feb, 0x0527d5a7c06970e7, 0x22d8e773607c13e9,
    0xc9ab70df643c3bac, 0xeda4c6dc8abe12e3, 0xecef1f410033e78a, 0x0024c2b274ac72cb,
    0x06740d954fa900b4, 0x1d7a299b323d6304, 0xb3c37cb298cbead5, 0xc986e3c76178739b,
    0x9fabea364b46f58a, 0x6da214c5af85cc56, 0x17a43ed8b7a38f84, 0x6eccec511d9adbeb,
    0xf9cab30913335afb, 0x4a5e60c5f415eed2, 0x00006967503672b4, 0x9da51d121454bb87,
    0x84321e13b9bbc816, 0xfb3d6fb6ab2fdd8d, 0x60305eed8e160a8d, 0xcbbf4b14e9946ce8,
    0x00004f63381b10c3, 0x07d5b7816fcc4e10, 0xe5a536726a6a8155, 0x57afb23447a07fdd,
    0x18f346f7abc9d394, 0x636dc655d61ad33d, 0xcc8bab4939f7f3f6, 0x63c7a906c1dd187b,
], dtype=np.uint64)
# fmt: on

WINDOW = 64  # bytes that determine the rolling hash
# Xet's mask 0xFFFF000000000000 (target 64 KiB): a match has its top 16 bits zero.
_MATCH_BELOW = np.uint64(1 << 48)


def _pair_table() -> np.ndarray:
    """Hash of every 2-byte window, indexed by the little-endian uint16 of the pair."""
    v = np.arange(1 << 16, dtype=np.uint32)
    table: np.ndarray = (GEAR_TABLE[v & 0xFF] << np.uint64(1)) + GEAR_TABLE[v >> 8]
    return table


_PAIR_TABLE = _pair_table()
# Bytes searched per task (measured best: larger sub-blocks spill the working
# arrays out of the caches, smaller ones pay more of numpy's per-call cost).
SUB_BLOCK = 512 * 1024

_FIRST_QUAD = WINDOW // 4 - 1  # first quad whose doubled window lies inside the segment
_U64_MASK = (1 << 64) - 1


class _Scratch(threading.local):
    """Per-thread working arrays, reused so that sub-blocks do not page fresh
    memory in: two of table indices, three of hashes."""

    def __init__(self) -> None:
        self.arrays: tuple[np.ndarray, ...] = ()

    def take(self, size: int) -> tuple[np.ndarray, ...]:
        if not self.arrays or len(self.arrays[0]) < size:
            kinds = (np.intp, np.intp, np.uint64, np.uint64, np.uint64)
            self.arrays = tuple(np.empty(size, kind) for kind in kinds)
        return tuple(a[:size] for a in self.arrays)


_scratch = _Scratch()


def window_matches(data: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Every end offset e in [lo, hi] of `data` (uint8) with W(e) < 2**48, ascending.

    Needs the WINDOW bytes before lo: WINDOW <= lo <= hi <= len(data).
    """
    base = lo - WINDOW  # seg[i] is data[base + i]
    seg = data[base:hi]
    quads = len(seg) // 4
    # np.take is fastest with intp indices: make them once, from each quad as a u32.
    low, high, first, h, spare = _scratch.take(quads)
    words = seg[: 4 * quads].view("<u4")
    np.bitwise_and(words, 0xFFFF, out=low)
    np.right_shift(words, 16, out=high)
    _quad_windows(low, high, first, h, spare)
    j0, j1 = _FIRST_QUAD, quads - 1  # quads whose next quad is whole
    found = [np.flatnonzero(h[j0:] < _MATCH_BELOW) * 4 + (base + 4 * j0 + 4)]
    # Windows ending 1..3 bytes into the next quad; the pair hash of that
    # quad's first two bytes saves a gather for the second.
    nxt, byte = spare[j0:j1], first[j0 + 1 : j1 + 1]
    np.left_shift(h[j0:j1], np.uint64(2), out=nxt)
    nxt += byte
    found.append(np.flatnonzero(nxt < _MATCH_BELOW) * 4 + (base + 4 * j0 + 6))
    high &= 0xFF  # now the quad's third byte
    np.take(GEAR_TABLE, high[j0 + 1 : j1 + 1], out=byte, mode="wrap")
    nxt <<= np.uint64(1)
    nxt += byte
    found.append(np.flatnonzero(nxt < _MATCH_BELOW) * 4 + (base + 4 * j0 + 7))
    low &= 0xFF  # now the quad's first byte
    np.take(GEAR_TABLE, low[j0 + 1 : j1 + 1], out=byte, mode="wrap")
    cur = h[j0:j1]
    cur <<= np.uint64(1)
    cur += byte
    found.append(np.flatnonzero(cur < _MATCH_BELOW) * 4 + (base + 4 * j0 + 5))
    found.append(_tail_matches(seg, int(h[j1]), quads, base))
    ends = np.concatenate(found)
    ends.sort(kind="stable")  # merges the four sorted runs
    return ends


def _quad_windows(low: np.ndarray, high: np.ndarray, first: np.ndarray, h: np.ndarray, spare: np.ndarray) -> None:
    """Set h[j] to W at the end of quad j, by doubling, from the pair indices of
    each quad; leave the hash of each quad's first pair in `first`."""
    np.take(_PAIR_TABLE, high, out=spare, mode="wrap")
    np.take(_PAIR_TABLE, low, out=first, mode="wrap")
    np.left_shift(first, np.uint64(2), out=h)
    h += spare
    for step in (1, 2, 4, 8):  # quads; windows grow from 4*step to 8*step bytes
        # Entries below `step` keep stale values: they only feed windows that
        # start before the segment, which are never reported.
        np.left_shift(h[:-step], np.uint64(4 * step), out=spare[step:])
        np.add(spare[step:], h[step:], out=spare[step:])
        h, spare = spare, h
    # Four levels (an even number) leave the result where it started.


def _tail_matches(seg: np.ndarray, w: int, quads: int, base: int) -> np.ndarray:
    """Matches among the (at most 3) windows ending after the last whole quad,
    rolled on from W at that quad's end."""
    ends = []
    for i in range(4 * quads, len(seg)):
        w = ((w << 1) + int(GEAR_TABLE[seg[i]])) & _U64_MASK
        if w < 1 << 48:
            ends.append(base + i + 1)
    return np.array(ends, dtype=np.int64)


_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (workers, pool)


def _forget_pool() -> None:
    """In a forked child: the inherited pool has no threads and would never run a
    task, and the lock may have been held by a thread that does not exist here."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers() -> int:
    """CPUs this process may run on (at most 8)."""
    try:
        return min(len(os.sched_getaffinity(0)), 8)
    except AttributeError:  # not on Linux
        return min(os.cpu_count() or 1, 8)


def _thread_pool(workers: int) -> ThreadPoolExecutor | None:
    """The shared pool that searches sub-blocks, or None on a single CPU. A new
    CPU count (the affinity changed) gets a new pool; the old one's threads end
    once nothing refers to it."""
    global _pool
    if workers < 2:
        return None
    with _pool_lock:
        if _pool is None or _pool[0] != workers:
            _pool = (workers, ThreadPoolExecutor(workers, thread_name_prefix="xet-gear"))
        return _pool[1]


def _match_blocks(data: np.ndarray, first: int) -> Iterator[tuple[int, np.ndarray]]:
    """(hi, matches in [lo, hi]) for consecutive sub-blocks from `first` to the end,
    in order; the pool searches up to `workers + 1` sub-blocks ahead of the consumer."""
    size = len(data)
    ranges = [(lo, min(lo + SUB_BLOCK - 1, size)) for lo in range(first, size + 1, SUB_BLOCK)]
    workers = _workers()
    pool = _thread_pool(workers) if len(ranges) > 1 else None
    if pool is None:
        for lo, hi in ranges:
            yield hi, window_matches(data, lo, hi)
        return
    ahead: deque[tuple[int, Future[np.ndarray]]] = deque()
    todo = iter(ranges)
    try:
        for lo, hi in todo:
            ahead.append((hi, pool.submit(window_matches, data, lo, hi)))
            if len(ahead) > workers:
                hi0, fut = ahead.popleft()
                yield hi0, fut.result()
        while ahead:
            hi0, fut = ahead.popleft()
            yield hi0, fut.result()
    finally:
        # The caller's buffer is reused after we return: no task may still read it.
        for _, fut in ahead:
            fut.cancel()
        for _, fut in ahead:
            if not fut.cancelled():
                fut.exception()


class XetChunker:
    """Xet's chunker: boundaries (hence file hashes) identical to hf_xet's."""

    name = "xet"

    def cut_points(self, data: memoryview, final: bool) -> Iterator[int]:
        """Yield the decided chunk ends of `data`, ascending, as soon as each is
        known, so that the caller hashes early chunks while later sub-blocks are
        still being searched on the pool."""
        size = len(data)
        start = 0
        if size >= MIN_CHUNK:
            array = np.frombuffer(data, dtype=np.uint8)
            pending = np.empty(0, np.int64)  # matches at or after start + MIN_CHUNK
            for hi, matches in _match_blocks(array, MIN_CHUNK):
                pending = np.concatenate((pending, matches)) if len(pending) else matches
                cuts, pending = _walk(pending, start, hi)
                yield from cuts
                start = cuts[-1] if cuts else start
        if final and start < size:
            yield size


def _walk(matches: np.ndarray, start: int, known: int) -> tuple[list[int], np.ndarray]:
    """The cuts after `start` that the matches known up to offset `known`
    decide, and the matches that may still matter for later cuts."""
    cuts: list[int] = []
    while True:
        i = int(np.searchsorted(matches, start + MIN_CHUNK))
        if i < len(matches) and matches[i] <= start + MAX_CHUNK:
            start = int(matches[i])
        elif known >= start + MAX_CHUNK:
            start += MAX_CHUNK
        else:
            return cuts, matches[i:]
        cuts.append(start)
