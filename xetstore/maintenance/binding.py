"""A manifest is bound to its name: its terms' chunks must rebuild its file hash.

A shard is named by its own hash, which proves only that it was not changed
after it was written, not that what it says is true. A shard that maps file
hash A to the terms of file B would make `get A` return B's bytes, each chunk
verifying perfectly. The file hash is the merkle root of the file's chunk
hashes and sizes, and the xorbs' chunk tables hold those: recomputing it from
the terms binds the manifest to its name without reading any data.

(A manifest's sha256 cannot be bound this way; only the bytes can check it,
which the git-lfs agent does on every download, and an upload is skipped only
if the manifest's sha256 and size agree with the request.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..hashing import file_hash, xet_hex
from ..shard import Manifest
from ..xorb import XorbFooter

__all__ = ["ChunkTables", "unbound_reason", "unbound_manifests"]

# The chunk table of a xorb, or None if it is not known (the manifest then cannot be checked).
ChunkTables = Callable[[bytes], XorbFooter | None]


def unbound_reason(m: Manifest, tables: ChunkTables) -> str:
    """Why `m`'s terms do not rebuild its file hash; "" if they do or cannot be checked."""
    entries: list[tuple[bytes, int]] = []
    for n, t in enumerate(m.terms):
        footer = tables(t.xorb_hash)
        if footer is None:
            return ""  # a xorb nobody describes: reading fails loudly, `check` reports it
        if not 0 <= t.first < t.end <= footer.num_chunks:
            return f"its term {n} names chunks [{t.first}, {t.end}) of a xorb with {footer.num_chunks}"
        start = len(entries)
        entries.extend((footer.chunk_hashes[i], footer.chunk_size(i)) for i in range(t.first, t.end))
        if sum(size for _, size in entries[start:]) != t.size:
            return f"its term {n} claims {t.size} bytes, its chunks hold another size"
    actual = file_hash(entries)
    if actual != m.file_hash:
        return f"its terms rebuild file {xet_hex(actual)}, not {xet_hex(m.file_hash)}"
    return ""


def unbound_manifests(manifests: Iterable[Manifest], tables: ChunkTables) -> dict[bytes, str]:
    """file hash -> reason, for each manifest whose terms do not rebuild it."""
    out: dict[bytes, str] = {}
    for m in manifests:
        reason = unbound_reason(m, tables)
        if reason:
            out[m.file_hash] = reason
    return out
