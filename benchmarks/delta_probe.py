"""How much delta compression of near-duplicate chunks could save, and how to find the base.

    python -m benchmarks.delta_probe [--mib 16] [--chunker fastcdc]

Builds a float32 and a bf16 weights file (a safetensors-like run of tensors) and four
fine-tune versions of each: every weight moved by ~1e-3 of its magnitude ("full"), two
layers retrained ("layers"), embedding rows added at the front ("vocab"), a layer inserted
in the middle ("insert"). For every new chunk of a version (no exact match in v1) it
reports, in stored bytes as a share of the chunk bytes:

- bg4: BG4 + zstd of the chunk alone (what xetstore stores today, per 1 MiB frame);
- position: XOR against the v1 bytes at the same file offset, then BG4 + zstd, with the
  base taken as the run of v1 chunks that covers that range (a term-like base);
- sketch: the v1 chunk found by resemblance sketches (min-hash super-features over the
  high 16 bits of each 32-bit word), aligned at the offset where its first words are found,
  XOR, BG4 + zstd.

Also: how often chunk i of a version covers exactly the byte range of some v1 chunk (CDC
boundaries move when every byte changes), and the hit rate of each base-finding method
(a hit = a base that makes the chunk at least 10 % smaller than bg4 alone).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from xetstore.chunking import chunk_ends, make_chunker
from xetstore.compression import bg4_split
from xetstore.hashing import chunk_hashes

_FEATURES = 12  # min-hashes per chunk, grouped into super-features
_PER_SUPER = 2
_FRAME = 1 << 20


def _tensors(rng: np.random.Generator, n_layers: int, width: int) -> list[np.ndarray]:
    out = [rng.standard_normal((8 * width, width), dtype=np.float32) * 0.02]  # embedding
    for _ in range(n_layers):
        out.append(rng.standard_normal((width, 4 * width), dtype=np.float32) * np.float32(0.02 * (0.5 + rng.random())))
    return out


def _bytes(tensors: list[np.ndarray], dtype: str) -> bytes:
    if dtype == "f32":
        return b"".join(t.astype("<f4").tobytes() for t in tensors)
    parts = []
    for t in tensors:
        bits = np.ascontiguousarray(t, dtype="<f4").view("<u4")
        parts.append(((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes())
    return b"".join(parts)


def versions(mib: int, seed: int = 7) -> dict[str, list[np.ndarray]]:
    """v1 and its four fine-tunes, as float32 tensors."""
    rng = np.random.default_rng(seed)
    width = 256
    n_layers = max(2, mib * (1 << 20) // (4 * width * width * 4))
    v1 = _tensors(rng, n_layers, width)
    nudge = np.random.default_rng(seed + 1)
    full = [t + nudge.standard_normal(t.shape, dtype=np.float32) * np.float32(1e-3) * np.abs(t) for t in v1]
    layers = list(v1)
    for i in (3, 4):
        layers[i] = v1[i] + nudge.standard_normal(v1[i].shape, dtype=np.float32) * np.float32(0.002)
    vocab = [np.concatenate([nudge.standard_normal((64, width), dtype=np.float32) * 0.02, v1[0]])] + v1[1:]
    insert = v1[: len(v1) // 2] + [_tensors(nudge, 1, width)[1]] + v1[len(v1) // 2 :]
    return {"v1": v1, "full": full, "layers": layers, "vocab": vocab, "insert": insert}


def sketch(chunk: bytes | memoryview) -> tuple[int, ...]:
    """Super-features: min-hashes of 3-grams of the high 16 bits of each 32-bit word."""
    n = len(chunk) // 4
    if n < 16:
        return ()
    words = np.frombuffer(chunk, dtype="<u4", count=n) >> np.uint32(16)
    w = words.astype(np.uint64)
    grams = (w[:-2] << np.uint64(32)) | (w[1:-1] << np.uint64(16)) | w[2:]
    mins = []
    for k in range(_FEATURES):
        a = np.uint64((0x9E3779B97F4A7C15 * (2 * k + 1)) & 0xFFFFFFFFFFFFFFFF | 1)
        mins.append(int(((grams * a) >> np.uint64(32)).min()))
    return tuple(hash(tuple(mins[i : i + _PER_SUPER])) for i in range(0, _FEATURES, _PER_SUPER))


def _zstd(data: bytes) -> int:
    import zstandard

    return len(zstandard.ZstdCompressor(level=1).compress(bg4_split(data)))


def _xor(chunk: bytes, base: bytes) -> bytes:
    a = np.frombuffer(chunk, dtype=np.uint8)
    b = np.zeros(len(a), dtype=np.uint8)
    b[: min(len(a), len(base))] = np.frombuffer(base, dtype=np.uint8)[: len(a)]
    return (a ^ b).tobytes()


def _align(chunk: bytes, base_region: bytes) -> int:
    """Offset in base_region where chunk's first 16 high half-words appear (0 if nowhere)."""
    head = np.frombuffer(chunk, dtype="<u4", count=16) >> np.uint32(16)
    words = np.frombuffer(base_region[: len(base_region) // 4 * 4], dtype="<u4") >> np.uint32(16)
    for shift in range(4):  # the chunk may start at any byte of a 32-bit word
        w = np.frombuffer(base_region[shift : shift + (len(base_region) - shift) // 4 * 4], dtype="<u4") >> np.uint32(16)
        hits = np.flatnonzero(w[: len(w) - 15] == head[0]) if len(w) > 16 else np.array([], dtype=np.int64)
        for h in hits[:64]:
            if np.count_nonzero(w[h : h + 16] == head) >= 12:
                return int(shift + 4 * h)
    del words
    return 0


@dataclass
class Result:
    new_chunks: int = 0
    new_bytes: int = 0
    same_range: int = 0
    bg4: int = 0
    position: int = 0
    position_hits: int = 0
    sketch: int = 0
    sketch_hits: int = 0


def probe(v1: bytes, v2: bytes, chunker_name: str) -> Result:
    chunker = make_chunker(chunker_name)
    e1, e2 = chunk_ends(v1, chunker), chunk_ends(v2, chunker)
    s1 = [0] + e1[:-1]
    ranges1 = set(zip(s1, e1))
    known = set(chunk_hashes(v1, e1))
    index: dict[int, int] = {}
    for i, (a, b) in enumerate(zip(s1, e1)):
        for f in sketch(memoryview(v1)[a:b]):
            index.setdefault(f, i)
    r = Result()
    start = 0
    for h, end in zip(chunk_hashes(v2, e2), e2):
        chunk = v2[start:end]
        if h in known:
            start = end
            continue
        r.new_chunks += 1
        r.new_bytes += len(chunk)
        r.same_range += (start, end) in ranges1
        plain = _zstd(chunk)
        r.bg4 += plain
        pos = _zstd(_xor(chunk, v1[start:end])) if start < len(v1) else plain
        r.position += min(pos, plain)
        r.position_hits += pos < 0.9 * plain
        found = next((index[f] for f in sketch(chunk) if f in index), None)
        best = plain
        if found is not None:
            lo = s1[found]
            region = v1[max(0, lo - 4096) : e1[min(found + 1, len(e1) - 1)]]
            at = max(0, lo - 4096) + _align(chunk, region)
            best = min(plain, _zstd(_xor(chunk, v1[at : at + len(chunk)])))
        r.sketch += best
        r.sketch_hits += best < 0.9 * plain
        start = end
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=16, help="size of v1 in float32 MiB")
    ap.add_argument("--chunker", default="fastcdc", choices=("fastcdc", "xet"))
    args = ap.parse_args()
    vs = versions(args.mib)
    print(f"{'dtype':5} {'version':7} {'new':>6} {'same range':>10} {'bg4':>6} {'position':>9} {'hits':>6} {'sketch':>7} {'hits':>6}")
    for dtype in ("f32", "bf16"):
        v1 = _bytes(vs["v1"], dtype)
        for name in ("full", "layers", "vocab", "insert"):
            r = probe(v1, _bytes(vs[name], dtype), args.chunker)
            n, b = max(r.new_chunks, 1), max(r.new_bytes, 1)
            print(
                f"{dtype:5} {name:7} {r.new_chunks:6d} {r.same_range / n:10.2f} {r.bg4 / b:6.3f} "
                f"{r.position / b:9.3f} {r.position_hits / n:6.2f} {r.sketch / b:7.3f} {r.sketch_hits / n:6.2f}"
            )


if __name__ == "__main__":
    main()
