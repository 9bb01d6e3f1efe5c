"""The index's tables: typed reads and writes, each in its own short transaction."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import lmdb

from ..errors import IndexUnusable, IntegrityError
from ..keys import xorb_key
from ..shard import Manifest, Shard, ShardXorb, decode_manifest, encode_manifest
from ..xorb import XorbFooter
from .environment import INITIAL_MAP, SCHEMA, TABLES, SharedEnv, acquire, inode, lmdb_error, open_env, release

__all__ = ["Index", "ChunkLocation"]

_T = TypeVar("_T")

ChunkLocation = tuple[bytes, int]  # (xorb hash, chunk index)


class Index:
    """Typed access to the LMDB tables; every method runs its own short transaction."""

    def __init__(self, path: Path, shared: SharedEnv, map_size: int) -> None:
        self.path = path
        self._shared = shared
        self._map_size = map_size
        self._closed = False

    @classmethod
    def open(cls, path: Path, map_size: int = INITIAL_MAP) -> Index:
        """Open (or create) the index at `path`; IndexUnusable if it cannot be read."""
        return cls(path, acquire(path, map_size), map_size)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            release(self._shared)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stale_readers_cleared(self) -> int:
        """Reader slots of dead processes that opening this index released."""
        return self._shared.stale_readers_cleared

    def _env(self) -> SharedEnv:
        if self._shared.pid != os.getpid():  # after fork(): open our own environment
            self._shared = acquire(self.path, self._map_size)
        return self._shared

    # -- reads ---------------------------------------------------------------

    def _read(self, fn: Callable[[lmdb.Transaction, dict[bytes, Any]], _T]) -> _T:
        shared = self._env()
        for _ in range(3):
            try:
                with shared.env.begin(buffers=False) as txn:
                    return fn(txn, shared.dbs)
            except lmdb.MapResizedError:
                shared.env.set_mapsize(0)  # another process grew the map: adopt its size
            except lmdb.Error as exc:
                raise IndexUnusable(str(self.path), str(exc)) from None
        raise IndexUnusable(str(self.path), "the map keeps being resized by other processes")

    def chunk_locations(self, hashes: Sequence[bytes]) -> list[ChunkLocation | None]:
        """Where each chunk is stored, or None; one transaction for the batch."""

        def lookup(txn: lmdb.Transaction, dbs: dict[bytes, Any]) -> list[ChunkLocation | None]:
            out: list[ChunkLocation | None] = []
            for h in hashes:
                v = _get(txn, h, dbs[b"chunks"])
                out.append(None if v is None or len(v) != 36 else (v[:32], struct.unpack_from("<I", v, 32)[0]))
            return out

        return self._read(lookup)

    def xorb(self, xorb_hash: bytes) -> tuple[XorbFooter, int] | None:
        """A xorb's chunk table and stored size, or None if no shard lists it."""
        v = self._read(lambda txn, dbs: _get(txn, xorb_hash, dbs[b"xorbs"]))
        return None if v is None else self._decode_xorb(v)

    def xorb_key(self, xorb_hash: bytes) -> str:
        """The key of the xorb in the layout reads use (its first one if unknown)."""
        entry = self.xorb(xorb_hash)
        return entry[0].key if entry is not None else xorb_key(xorb_hash)

    def _decode_xorb(self, v: bytes) -> tuple[XorbFooter, int]:
        try:
            return XorbFooter.decode(v[8:], "index xorb entry"), struct.unpack_from("<Q", v)[0]
        except (IntegrityError, struct.error) as exc:
            raise IndexUnusable(str(self.path), f"a xorb entry is damaged ({exc})") from None

    def manifest(self, file_hash: bytes) -> Manifest | None:
        v = self._read(lambda txn, dbs: _get(txn, file_hash, dbs[b"files"]))
        return None if v is None else self._decode_manifest(v)

    def _decode_manifest(self, v: bytes) -> Manifest:
        try:
            return decode_manifest(v, "index manifest")
        except IntegrityError as exc:
            raise IndexUnusable(str(self.path), f"a manifest entry is damaged ({exc})") from None

    def file_by_sha256(self, sha256: bytes) -> bytes | None:
        return self._read(lambda txn, dbs: _get(txn, sha256, dbs[b"sha256"]))

    def has_shard(self, key: str) -> bool:
        return self._read(lambda txn, dbs: txn.get(key.encode(), db=dbs[b"shards"])) is not None

    def shard_keys(self) -> set[str]:
        return self._keys(b"shards")

    def delete_keys(self) -> set[str]:
        """Keys of the deletion records merged so far."""
        return self._keys(b"deletes")

    def _keys(self, table: bytes) -> set[str]:
        return self._read(lambda txn, dbs: {bytes(k).decode() for k in txn.cursor(db=dbs[table]).iternext(values=False)})

    def shards_of(self, file_hash: bytes) -> list[str]:
        """Keys of the shards whose manifest of this file is not deleted."""

        def scan(txn: lmdb.Transaction, dbs: dict[bytes, Any]) -> list[str]:
            return [k[32:].decode() for k in _live_pairs(txn, dbs, file_hash)]

        return self._read(scan)

    def merged_at(self, file_hash: bytes) -> int:
        """When the newest live shard holding the file was merged (seconds; 0 if none)."""

        def newest(txn: lmdb.Transaction, dbs: dict[bytes, Any]) -> int:
            times = [txn.get(k[32:], db=dbs[b"shards"]) for k in _live_pairs(txn, dbs, file_hash)]
            return max((struct.unpack("<Q", t)[0] for t in times if t is not None), default=0)

        return self._read(newest)

    def manifests(self) -> Iterator[Manifest]:
        """Every live manifest, read in batches so no transaction stays open long."""
        for value in self._scan(b"files"):
            yield self._decode_manifest(value)

    def xorbs(self) -> Iterator[tuple[XorbFooter, int]]:
        for value in self._scan(b"xorbs"):
            yield self._decode_xorb(value)

    def _scan(self, table: bytes, batch: int = 512) -> Iterator[bytes]:
        after: bytes | None = None
        while True:
            rows = self._read(lambda txn, dbs: _page(txn, dbs[table], after, batch))  # noqa: B023 (called at once)
            yield from (v for _, v in rows)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    # -- writes --------------------------------------------------------------

    def add_shard(self, key: str, shard: Shard) -> None:
        """Record everything a shard says, in one transaction (idempotent).

        A manifest whose (file, shard) pair a merged deletion record covers
        stays deleted, whichever of the two was merged first.
        """
        self._write(lambda txn, dbs: _put_shard(txn, dbs, key, shard))

    def add_shards(self, shards: Iterable[tuple[str, Shard]]) -> None:
        """Several shards in one transaction (a rebuild)."""

        def write(txn: lmdb.Transaction, dbs: dict[bytes, Any]) -> None:
            for key, shard in shards:
                _put_shard(txn, dbs, key, shard)

        self._write(write)

    def add_xorbs(self, xorbs: Iterable[ShardXorb]) -> None:
        """Chunk tables read from xorb footers (a rebuild fills gaps shards left)."""
        self._write(lambda txn, dbs: _put_xorbs(txn, dbs, xorbs))

    def add_deletes(self, key: str, entries: Iterable[tuple[bytes, Iterable[str]]]) -> None:
        """Merge a deletion record: (file hash, shard keys whose manifest it deletes)."""
        self._write(lambda txn, dbs: _put_deletes(txn, dbs, key, entries))

    def clear(self) -> None:
        """Drop every table's contents (before a rebuild)."""

        def drop(txn: lmdb.Transaction, dbs: dict[bytes, Any]) -> None:
            for name in TABLES:
                txn.drop(dbs[name], delete=False)
            txn.put(b"schema", SCHEMA, db=dbs[b"meta"])

        self._write(drop)

    def _write(self, fn: Callable[[lmdb.Transaction, dict[bytes, Any]], None]) -> None:
        shared = self._env()
        for _ in range(16):
            try:
                with shared.env.begin(write=True) as txn:
                    fn(txn, shared.dbs)
                return
            except lmdb.MapFullError:
                self._grow()
            except lmdb.MapResizedError:
                shared.env.set_mapsize(0)
            except lmdb.Error as exc:
                raise lmdb_error(str(self.path), exc) from None
        raise IndexUnusable(str(self.path), "the map could not be grown enough")

    def _grow(self) -> None:
        # Growing from several processes at once can corrupt LMDB: serialise it.
        env = self._shared.env
        with open(self.path / "grow.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            env.set_mapsize(0)  # adopt a size another process may have set
            env.set_mapsize(env.info()["map_size"] * 2)

    # -- replacing the whole index -------------------------------------------

    def swap_in(self, built: Path) -> None:
        """Replace this index's directory by the complete index at `built`.

        The old directory stays usable until the rename: a crash while `built`
        was filled leaves the old index in place. Every Index of this path in
        this process moves to the new environment.
        """
        import shutil  # here: only a rebuild needs it, and `ls` would load it (with bz2, lzma)

        shared = self._env()
        shared.env.close()
        aside = self.path.with_name(f"{self.path.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        try:
            _rename_if_there(self.path, aside)
            try:
                os.rename(built, self.path)
            except OSError as exc:  # another process swapped its own rebuild in first: use that
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(built, ignore_errors=True)
        finally:
            shared.env, shared.dbs, _ = open_env(self.path, self._map_size)
            shared.inode = inode(self.path)
        shutil.rmtree(aside, ignore_errors=True)


def _rename_if_there(path: Path, to: Path) -> None:
    try:
        os.rename(path, to)
    except FileNotFoundError:
        pass


def _put_xorbs(txn: lmdb.Transaction, dbs: dict[bytes, Any], xorbs: Iterable[ShardXorb]) -> None:
    for x in xorbs:
        f = x.footer
        have = txn.get(f.xorb_hash, db=dbs[b"xorbs"])
        # The highest layout wins, as everywhere (shard.newest_layouts), whatever the merge order.
        if have is None or _layout_of(have) < f.layout:
            txn.put(f.xorb_hash, struct.pack("<Q", x.stored_size) + f.encode(), db=dbs[b"xorbs"])
        for i, h in enumerate(f.chunk_hashes):
            txn.put(h, f.xorb_hash + struct.pack("<I", i), db=dbs[b"chunks"], overwrite=False)


def _layout_of(entry: bytes | memoryview) -> int:
    """The layout of an index xorb entry (stored size u64 + footer): the footer's
    reserved u32, 16 bytes before its trailing length (xorb.XorbFooter.encode)."""
    return int.from_bytes(bytes(entry[-20:-16]), "little") if len(entry) >= 28 else -1


def _put_shard(txn: lmdb.Transaction, dbs: dict[bytes, Any], key: str, shard: Shard) -> None:
    skey = key.encode()
    _put_xorbs(txn, dbs, shard.xorbs)
    for m in shard.manifests:
        pair = m.file_hash + skey
        txn.put(pair, b"", db=dbs[b"fileshards"])
        if txn.get(pair, db=dbs[b"dropped"]) is None:
            txn.put(m.file_hash, encode_manifest(m), db=dbs[b"files"])
            txn.put(m.sha256, m.file_hash, db=dbs[b"sha256"])
    txn.put(skey, struct.pack("<Q", int(time.time())), db=dbs[b"shards"])


def _put_deletes(
    txn: lmdb.Transaction, dbs: dict[bytes, Any], key: str, entries: Iterable[tuple[bytes, Iterable[str]]]
) -> None:
    for file_hash, shard_keys in entries:
        for s in shard_keys:
            txn.put(file_hash + s.encode(), key.encode(), db=dbs[b"dropped"])
        if not _live_pairs(txn, dbs, file_hash):
            _forget_file(txn, dbs, file_hash)
    txn.put(key.encode(), struct.pack("<Q", int(time.time())), db=dbs[b"deletes"])


def _live_pairs(txn: lmdb.Transaction, dbs: dict[bytes, Any], file_hash: bytes) -> list[bytes]:
    """(file, shard) keys of the file's manifests that no deletion record covers."""
    cursor = txn.cursor(db=dbs[b"fileshards"])
    out: list[bytes] = []
    positioned = cursor.set_range(file_hash)
    while positioned and cursor.key()[:32] == file_hash:
        if txn.get(cursor.key(), db=dbs[b"dropped"]) is None:
            out.append(cast(bytes, cursor.key()))
        positioned = cursor.next()
    return out


def _forget_file(txn: lmdb.Transaction, dbs: dict[bytes, Any], file_hash: bytes) -> None:
    value = txn.get(file_hash, db=dbs[b"files"])
    if value is None:
        return
    txn.delete(file_hash, db=dbs[b"files"])
    try:
        sha = decode_manifest(value, "index manifest").sha256
    except IntegrityError:
        return
    if txn.get(sha, db=dbs[b"sha256"]) == file_hash:
        txn.delete(sha, db=dbs[b"sha256"])


def _page(txn: lmdb.Transaction, db: Any, after: bytes | None, batch: int) -> list[tuple[bytes, bytes]]:
    cursor = txn.cursor(db=db)
    if after is None:
        positioned = cursor.first()
    else:
        positioned = cursor.set_range(after) and (cursor.key() != after or cursor.next())
    rows: list[tuple[bytes, bytes]] = []
    while positioned and len(rows) < batch:
        rows.append((cast(bytes, cursor.key()), cast(bytes, cursor.value())))
        positioned = cursor.next()
    return rows


def _get(txn: lmdb.Transaction, key: bytes, db: Any) -> bytes | None:
    # Every transaction here is begun with buffers=False, so lmdb returns bytes.
    return cast("bytes | None", txn.get(key, db=db))
