"""The local index: an LMDB database derived from shards, rebuildable at any time.

Tables (LMDB named databases):
    chunks   chunk hash -> xorb hash (32) + chunk index (u32 LE)
    xorbs    xorb hash  -> stored size (u64 LE) + encoded xorb footer
    files    file hash  -> encoded manifest (shard file-info records)
    sha256   sha256     -> file hash
    shards   shard key  -> merge time (u64 LE)

LMDB rules: no writemap (a full disk would kill the process with SIGBUS), a
large sparse map grown on MapFull, short transactions, no environment carried
across fork(), one environment per path per process, never on a network
filesystem.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

import lmdb

from .errors import ConfigError, DiskFull, IndexUnusable
from .shard import Manifest, Shard, decode_manifest, encode_manifest
from .xorb import XorbFooter

__all__ = ["Index", "ChunkLocation"]

_INITIAL_MAP = 1 << 36  # 64 GiB of address space; the file grows only as used
_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "fuse.sshfs", "9p", "afs", "ceph")
_T = TypeVar("_T")

ChunkLocation = tuple[bytes, int]  # (xorb hash, chunk index)

# One environment per database per process (LMDB breaks its locks otherwise),
# keyed by the directory's device and inode so a deleted and recreated index is
# a new one; entries record the pid so a forked child never reuses its parent's.
_OPEN: dict[tuple[int, int], tuple[int, lmdb.Environment, int]] = {}


def _filesystem_type(path: Path) -> str:
    best, fstype = "", ""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        return ""
    return fstype


def _registry_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _acquire(path: Path) -> lmdb.Environment:
    if _filesystem_type(path) in _NETWORK_FS:
        raise ConfigError(f"the index at {path} is on a network filesystem; set XETSTORE_CACHE to a local disk")
    path.mkdir(parents=True, exist_ok=True)
    key = _registry_key(path)
    entry = _OPEN.get(key)
    if entry and entry[0] == os.getpid():
        _OPEN[key] = (entry[0], entry[1], entry[2] + 1)
        return entry[1]
    try:
        env = lmdb.open(
            str(path), map_size=_INITIAL_MAP, max_dbs=8, writemap=False, sync=True,
            metasync=True, lock=True, max_spare_txns=0, readahead=False,
        )  # fmt: skip
        env.reader_check()
    except lmdb.Error as exc:
        raise IndexUnusable(str(path), str(exc)) from None
    _OPEN[key] = (os.getpid(), env, 1)
    return env


def _release(path: Path, key: tuple[int, int]) -> None:
    entry = _OPEN.get(key)
    if not entry or entry[0] != os.getpid():
        return
    if entry[2] > 1:
        _OPEN[key] = (entry[0], entry[1], entry[2] - 1)
        return
    del _OPEN[key]
    entry[1].close()


class Index:
    """Typed access to the LMDB tables; every method runs its own short transaction."""

    def __init__(self, path: Path, env: lmdb.Environment) -> None:
        self.path = path
        self._key = _registry_key(path)
        self._env = env
        self._chunks = env.open_db(b"chunks")
        self._xorbs = env.open_db(b"xorbs")
        self._files = env.open_db(b"files")
        self._sha256 = env.open_db(b"sha256")
        self._shards = env.open_db(b"shards")

    @classmethod
    def open(cls, path: Path) -> Index:
        env = _acquire(path)
        try:
            return cls(path, env)
        except lmdb.Error as exc:
            _release(path, _registry_key(path))
            raise IndexUnusable(str(path), str(exc)) from None

    def close(self) -> None:
        _release(self.path, self._key)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------

    def _read(self, fn: Callable[[lmdb.Transaction], _T]) -> _T:
        try:
            with self._env.begin(buffers=False) as txn:
                return fn(txn)
        except lmdb.Error as exc:
            raise IndexUnusable(str(self.path), str(exc)) from None

    def chunk_locations(self, hashes: list[bytes]) -> list[ChunkLocation | None]:
        """Where each chunk is stored, or None; one transaction for the batch."""

        def lookup(txn: lmdb.Transaction) -> list[ChunkLocation | None]:
            out: list[ChunkLocation | None] = []
            for h in hashes:
                v = txn.get(h, db=self._chunks)
                out.append(None if v is None else (v[:32], struct.unpack_from("<I", v, 32)[0]))
            return out

        return self._read(lookup)

    def xorb(self, xorb_hash: bytes) -> tuple[XorbFooter, int] | None:
        """A xorb's chunk table and stored size, or None if no shard lists it."""
        v = self._read(lambda txn: txn.get(xorb_hash, db=self._xorbs))
        if v is None:
            return None
        return XorbFooter.decode(v[8:], f"index entry of xorb {xorb_hash.hex()}"), struct.unpack_from("<Q", v)[0]

    def manifest(self, file_hash: bytes) -> Manifest | None:
        v = self._read(lambda txn: txn.get(file_hash, db=self._files))
        return None if v is None else decode_manifest(v, "index manifest")

    def file_by_sha256(self, sha256: bytes) -> bytes | None:
        return self._read(lambda txn: txn.get(sha256, db=self._sha256))

    def has_shard(self, key: str) -> bool:
        return self._read(lambda txn: txn.get(key.encode(), db=self._shards)) is not None

    def shard_keys(self) -> set[str]:
        return self._read(lambda txn: {k.decode() for k in txn.cursor(db=self._shards).iternext(values=False)})

    def manifests(self) -> Iterator[Manifest]:
        """Every manifest, read in batches so no transaction stays open long."""
        for value in self._scan(self._files):
            yield decode_manifest(value, "index manifest")

    def xorbs(self) -> Iterator[tuple[XorbFooter, int]]:
        for value in self._scan(self._xorbs):
            yield XorbFooter.decode(value[8:], "index xorb entry"), struct.unpack_from("<Q", value)[0]

    def _scan(self, db: Any, batch: int = 512) -> Iterator[bytes]:
        after: bytes | None = None
        while True:
            rows = self._read(lambda txn: _page(txn, db, after, batch))
            yield from (v for _, v in rows)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    # -- writes --------------------------------------------------------------

    def add_shard(self, key: str, shard: Shard) -> None:
        """Record everything a shard says, in one transaction (idempotent)."""

        def write(txn: lmdb.Transaction) -> None:
            for x in shard.xorbs:
                f = x.footer
                txn.put(f.xorb_hash, struct.pack("<Q", x.stored_size) + f.encode(), db=self._xorbs)
                for i, h in enumerate(f.chunk_hashes):
                    txn.put(h, f.xorb_hash + struct.pack("<I", i), db=self._chunks, overwrite=False)
            for m in shard.manifests:
                txn.put(m.file_hash, encode_manifest(m), db=self._files)
                txn.put(m.sha256, m.file_hash, db=self._sha256)
            txn.put(key.encode(), struct.pack("<Q", int(time.time())), db=self._shards)

        self._write(write)

    def clear(self) -> None:
        """Drop every table's contents (before a rebuild)."""

        def drop(txn: lmdb.Transaction) -> None:
            for db in (self._chunks, self._xorbs, self._files, self._sha256, self._shards):
                txn.drop(db, delete=False)

        self._write(drop)

    def _write(self, fn: Callable[[lmdb.Transaction], None]) -> None:
        for _ in range(8):
            try:
                with self._env.begin(write=True) as txn:
                    fn(txn)
                return
            except lmdb.MapFullError:
                self._grow()
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)
            except lmdb.Error as exc:
                self._raise_write_error(exc)
        raise IndexUnusable(str(self.path), "the map could not be grown enough")

    def _grow(self) -> None:
        # Growing from several processes at once can corrupt LMDB: serialise it.
        with open(self.path / "grow.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def _raise_write_error(self, exc: lmdb.Error) -> None:
        stat = os.statvfs(self.path)
        if stat.f_bavail * stat.f_frsize < 1 << 20:
            raise DiskFull(str(self.path), str(exc)) from None
        raise IndexUnusable(str(self.path), str(exc)) from None


def _page(txn: lmdb.Transaction, db: Any, after: bytes | None, batch: int) -> list[tuple[bytes, bytes]]:
    cursor = txn.cursor(db=db)
    if after is None:
        positioned = cursor.first()
    else:
        positioned = cursor.set_range(after) and (cursor.key() != after or cursor.next())
    rows: list[tuple[bytes, bytes]] = []
    while positioned and len(rows) < batch:
        rows.append((cursor.key(), cursor.value()))
        positioned = cursor.next()
    return rows
