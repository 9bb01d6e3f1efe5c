"""The LMDB environment behind an index: opening, schema, sharing, fork and errors.

LMDB rules: no writemap (a full disk would kill the process with SIGBUS), a
small map doubled on MapFull (a large one fails under `ulimit -v`), short
transactions, no environment carried across fork(), one environment per path
per process, never on a network filesystem.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import lmdb

from ..errors import ConfigError, DiskFull, IndexUnusable

__all__ = ["SCHEMA", "TABLES", "INITIAL_MAP", "SharedEnv", "acquire", "release", "open_env", "lmdb_error", "inode"]

SCHEMA = b"2"
INITIAL_MAP = 1 << 26  # 64 MiB to start: a large map fails under `ulimit -v`; _grow doubles it
_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "fuse.sshfs", "9p", "afs", "ceph")
TABLES = (b"chunks", b"xorbs", b"files", b"sha256", b"shards", b"fileshards", b"dropped", b"deletes", b"meta")
_LOW_SPACE = 16 << 20  # an EIO on commit with less free space than this is a full disk


class SharedEnv:
    """One open LMDB environment, shared by every Index of its path in this process.

    Index objects hold this, not the environment, so a rebuild that swaps the
    directory reaches all of them at once.
    """

    def __init__(self, path: Path, map_size: int) -> None:
        self.path = path
        self.pid = os.getpid()
        self.refs = 0
        self.env, self.dbs, self.stale_readers_cleared = open_env(path, map_size)
        self.inode = inode(path)

    def close(self) -> None:
        self.env.close()


def _check_schema(txn: lmdb.Transaction, dbs: dict[bytes, Any]) -> None:
    """Empty an index of another schema: the next sync merges every shard again."""
    if txn.get(b"schema", db=dbs[b"meta"]) == SCHEMA:
        return
    for name in TABLES:
        txn.drop(dbs[name], delete=False)
    txn.put(b"schema", SCHEMA, db=dbs[b"meta"])


# One environment per path per process (LMDB breaks its locks otherwise);
# entries record the pid so a forked child never reuses its parent's handle.
_OPEN: dict[str, SharedEnv] = {}


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


def open_env(path: Path, map_size: int) -> tuple[lmdb.Environment, dict[bytes, Any], int]:
    key = str(path)
    if _filesystem_type(path) in _NETWORK_FS:
        raise ConfigError(f"the index at {path} is on a network filesystem; set XETSTORE_CACHE to a local disk")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(key, exc) from None
    env = None
    try:
        # metasync=False: one sync per commit, not two. A system crash may then undo
        # the last commit but never breaks the database (LMDB keeps ACI), and the index
        # holds nothing the shards and deletion records do not: the next sync merges it again.
        env = lmdb.open(
            key, map_size=map_size, max_dbs=16, writemap=False, sync=True,
            metasync=False, lock=True, max_spare_txns=0, readahead=False,
        )  # fmt: skip
        cleared = env.reader_check()  # slots of readers that died without closing
        dbs = _open_tables(env)
    except lmdb.Error as exc:
        if env is not None:
            env.close()
        raise lmdb_error(key, exc) from None
    return env, dbs, cleared


def _open_tables(env: lmdb.Environment) -> dict[bytes, Any]:
    for _ in range(8):
        try:
            dbs = {name: env.open_db(name) for name in TABLES}
            with env.begin(write=True) as txn:
                _check_schema(txn, dbs)
            return dbs
        except lmdb.MapResizedError:
            env.set_mapsize(0)  # another process grew the map: adopt its size
    raise lmdb.MapResizedError("the map keeps being resized by other processes")


def _os_error(key: str, exc: OSError) -> Exception:
    if exc.errno == errno.ENOSPC:
        return DiskFull(key, "no space left for the index")
    return IndexUnusable(key, exc.strerror or str(exc))


def lmdb_error(key: str, exc: lmdb.Error) -> Exception:
    text = str(exc)
    if "Cannot allocate memory" in text:  # the map does not fit the address-space limit
        return ConfigError(
            f"the index at {key} cannot be mapped into memory ({text}); "
            "raise the address-space limit (`ulimit -v`) or free memory, and run the command again"
        )
    if "No space left" in text:
        return DiskFull(key, "no space left for the index")
    if isinstance(exc, lmdb.DiskError) or "Input/output error" in text:
        try:
            stat = os.statvfs(key)
            if stat.f_bavail * stat.f_frsize < _LOW_SPACE:
                return DiskFull(key, f"the index could not be written ({text})")
        except OSError:
            pass
    return IndexUnusable(key, text)


def inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except OSError:
        return -1


def acquire(path: Path, map_size: int) -> SharedEnv:
    shared = _OPEN.get(str(path))
    if shared is not None and shared.pid != os.getpid():
        _drop_inherited(shared)
        shared = None
    if shared is not None and shared.inode != inode(path):
        shared = None  # deleted and recreated behind our back: a new index (holders keep the old)
    if shared is None:
        shared = SharedEnv(path, map_size)
        _OPEN[str(path)] = shared
    shared.refs += 1
    return shared


def _drop_inherited(shared: SharedEnv) -> None:
    """After fork(): close the parent's handle in this process only.

    Closing unmaps our copy and drops our file descriptors; the parent's fcntl
    locks and reader slots belong to the parent and are untouched. Without
    this, py-lmdb refuses to open the same files again in the child.
    """
    try:
        shared.env.close()
    except lmdb.Error:
        pass


def release(shared: SharedEnv) -> None:
    if shared.pid != os.getpid():
        return  # inherited across fork(): never touch the parent's environment
    shared.refs -= 1
    if shared.refs <= 0 and _OPEN.get(str(shared.path)) is shared:
        del _OPEN[str(shared.path)]
        shared.close()
