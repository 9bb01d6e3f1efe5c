"""The local index: an LMDB database derived from shards, rebuildable at any time.

Tables (LMDB named databases):
    chunks      chunk hash -> xorb hash (32) + chunk index (u32 LE)
    xorbs       xorb hash  -> stored size (u64 LE) + encoded xorb footer
    files       file hash  -> encoded manifest (live files only)
    sha256      sha256     -> file hash
    shards      shard key  -> merge time (u64 LE)
    fileshards  file hash + shard key -> b""   (which shards hold a manifest of the file)
    dropped     file hash + shard key -> deletion record key (that manifest is deleted)
    deletes     deletion record key -> merge time (u64 LE)
    meta        b"schema" -> schema version; a mismatch empties the index for a re-sync
"""

from .environment import SCHEMA
from .tables import ChunkLocation, Index

__all__ = ["Index", "ChunkLocation", "SCHEMA"]
