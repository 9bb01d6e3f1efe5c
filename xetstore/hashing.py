"""Xet's hashes: chunk hash, merkle aggregation, xorb hash, file hash, range hash.

Every hash is 32 raw bytes (the blake3 output). Its text form is Xet's hex form:
the bytes are reversed inside each 8-byte word before hex encoding, because Xet
keeps hashes as four little-endian u64 words and prints the words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NewType

import blake3

from .errors import FormatError

__all__ = [
    "Hash",
    "ChunkHash",
    "XorbHash",
    "FileHash",
    "ZERO_HASH",
    "DATA_KEY",
    "INTERNAL_NODE_KEY",
    "VERIFICATION_KEY",
    "FILE_HASH_KEY",
    "xet_hex",
    "from_xet_hex",
    "chunk_hash",
    "chunk_hashes",
    "merkle_root",
    "xorb_hash",
    "file_hash",
    "range_hash",
    "shard_hash",
    "Sha256",
    "hash_mod",
]

Hash = NewType("Hash", bytes)
ChunkHash = NewType("ChunkHash", bytes)
XorbHash = NewType("XorbHash", bytes)
FileHash = NewType("FileHash", bytes)

ZERO_HASH = Hash(bytes(32))

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
     157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)  # fmt: skip
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
     93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)  # fmt: skip
VERIFICATION_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
     164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)  # fmt: skip
FILE_HASH_KEY = bytes(32)

# Largest and smallest merkle group (Xet's next_merge_cut: mean branching factor 4).
_MAX_GROUP = 9
_MIN_GROUP = 3


def xet_hex(h: bytes) -> str:
    """Xet's text form of a hash: each 8-byte word byte-reversed, then hex."""
    return b"".join(h[i : i + 8][::-1] for i in (0, 8, 16, 24)).hex()


def from_xet_hex(text: str) -> Hash:
    """Parse Xet's hex form; raises FormatError for anything but 64 hex digits."""
    if len(text) != 64:
        raise FormatError(f"hash {text[:80]!r}", "must be 64 hex digits")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise FormatError(f"hash {text[:80]!r}", "must be 64 hex digits") from None
    return Hash(b"".join(raw[i : i + 8][::-1] for i in (0, 8, 16, 24)))


def hash_mod(h: bytes, n: int) -> int:
    """Xet's `hash % n`: the last 8 raw bytes as a little-endian u64, modulo n."""
    return int.from_bytes(h[24:32], "little") % n


def chunk_hash(data: bytes | memoryview) -> ChunkHash:
    """The chunk hash: blake3 keyed with DATA_KEY over the chunk's plain bytes."""
    return ChunkHash(blake3.blake3(data, key=DATA_KEY).digest())


def chunk_hashes(data: bytes | memoryview, ends: Sequence[int]) -> list[ChunkHash]:
    """Chunk hashes of the consecutive chunks of `data` that end at `ends`."""
    view = memoryview(data)
    out: list[ChunkHash] = []
    start = 0
    for end in ends:
        out.append(ChunkHash(blake3.blake3(view[start:end], key=DATA_KEY).digest()))
        start = end
    return out


def shard_hash(data: bytes | memoryview) -> Hash:
    """A shard's name hash: blake3 keyed with DATA_KEY over the whole shard."""
    return Hash(blake3.blake3(data, key=DATA_KEY).digest())


def _node_hash(children: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{xet_hex(h)} : {n}\n" for h, n in children)
    digest = blake3.blake3(text.encode("ascii"), key=INTERNAL_NODE_KEY).digest()
    return digest, sum(n for _, n in children)


def _group_end(level: Sequence[tuple[bytes, int]], start: int) -> int:
    remaining = len(level) - start
    if remaining <= 2:
        return len(level)
    last = start + min(_MAX_GROUP, remaining)
    for i in range(start + _MIN_GROUP - 1, last):
        if hash_mod(level[i][0], 4) == 0:
            return i + 1
    return last


def merkle_root(entries: Sequence[tuple[bytes, int]]) -> Hash:
    """Xet's aggregated node hash over (hash, length) pairs, in order."""
    if not entries:
        return ZERO_HASH
    level = list(entries)
    while len(level) > 1:
        upper = []
        start = 0
        while start < len(level):
            end = _group_end(level, start)
            upper.append(_node_hash(level[start:end]))
            start = end
        level = upper
    return Hash(level[0][0])


def xorb_hash(chunks: Sequence[tuple[bytes, int]]) -> XorbHash:
    """The xorb hash: merkle root of the xorb's (chunk hash, length) list."""
    return XorbHash(merkle_root(chunks))


def file_hash(chunks: Sequence[tuple[bytes, int]]) -> FileHash:
    """The file hash: merkle root of all the file's chunks, keyed with 32 zero bytes."""
    if not chunks:
        return FileHash(ZERO_HASH)
    root = merkle_root(chunks)
    return FileHash(blake3.blake3(root, key=FILE_HASH_KEY).digest())


def range_hash(chunk_hashes: Iterable[bytes]) -> Hash:
    """The term verification hash: blake3 keyed with VERIFICATION_KEY over raw hashes."""
    return Hash(blake3.blake3(b"".join(chunk_hashes), key=VERIFICATION_KEY).digest())  # one call, not one per hash


class Sha256:
    """A running sha256 (the git-lfs oid of a file)."""

    def __init__(self) -> None:
        import hashlib  # here: reading files never needs a sha256, and hashlib loads OpenSSL

        self._h = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def hexdigest(self) -> str:
        return self._h.hexdigest()
