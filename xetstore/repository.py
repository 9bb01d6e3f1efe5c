"""The repository: the one object that ties backend, index, clean and smudge together.

A Repository is built in layers, each a module of its own: repository_state.py
(what a handle keeps, and sync), reading.py, adding.py and tagging.py (snapshots);
this module opens and closes repositories, lists and finds files, and hands
maintenance to xetstore/maintenance/.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .adding import AddResult
from .backends import Backend, open_backend, with_local_cache
from .config import RepositoryConfig, decode_config, encode_config
from .errors import ConfigError, ObjectNotFound, RepositoryNotFound
from .hashing import from_xet_hex, xet_hex
from .keys import CONFIG, SHARDS
from .maintenance import open_index
from .names import resolve_name
from .params import (
    COMPACT_FRAME_BYTES,
    COMPACT_LEVEL,
    DEFAULT_FRAME_BYTES,
    DEFAULT_GRACE,
    RepositoryParams,
    default_cache_root,
)
from .repository_state import Progress
from .tagging import Tagging

# Adding (chunking, clean), reading (smudge, file_reader), snapshots (trees, snapshot)
# and maintenance (check, gc, repair) are imported by the methods that use them: a
# process that opens a repository to list, add or read files (the CLI, each git-lfs
# agent) pays only for what it does.
if TYPE_CHECKING:
    from .maintenance import CheckReport, CompactReport, GcReport, RebuildReport, ShardRepair, XorbRepair

__all__ = ["Repository", "AddResult", "FileInfo", "RepositoryStats"]

log = logging.getLogger("xetstore")


class FileInfo(NamedTuple):
    file_hash: str
    size: int
    sha256: str


class RepositoryStats(NamedTuple):
    logical_bytes: int  # sum of the sizes of all stored files
    unique_bytes: int  # plain bytes of all stored chunks
    stored_bytes: int  # bytes of all xorbs and shards on the backend
    files: int
    chunks: int
    xorbs: int
    shards: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        return self.unique_bytes / self.stored_bytes if self.stored_bytes else 1.0


class Repository(Tagging):
    """A xetstore repository on a backend, with its local index."""

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def init(
        cls,
        url: str | Backend,
        chunker: str = "fastcdc",
        compression: str = "zstd",
        zstd_level: int = 3,
        frame_bytes: int | None = None,
        cache_dir: str | Path | None = None,
        delta: bool = False,
    ) -> Repository:
        """Create a repository; refuses a URL that already holds one. `delta` turns
        on delta chunks against earlier versions (docs/format.md §6.7)."""
        frames = DEFAULT_FRAME_BYTES if frame_bytes is None else frame_bytes
        params = RepositoryParams(chunker, compression, zstd_level, frames, delta)
        backend = url if isinstance(url, Backend) else open_backend(url)
        config = RepositoryConfig.new(params)
        if not backend.put(CONFIG, encode_config(config)):
            raise ConfigError(f"{backend.url} already holds a repository; open it instead")
        return cls._attach(backend, config, cache_dir)

    @classmethod
    def open(cls, url: str | Backend, cache_dir: str | Path | None = None) -> Repository:
        """Open an existing repository and merge shards other clients added."""
        backend = url if isinstance(url, Backend) else open_backend(url)
        try:
            raw = backend.get(CONFIG)
        except ObjectNotFound:
            raise RepositoryNotFound(backend.url, "it has no config") from None
        return cls._attach(backend, decode_config(raw, f"config of {backend.url}"), cache_dir)

    @classmethod
    def read_config(cls, url: str | Backend) -> RepositoryConfig:
        """A repository's config, without opening its index (cheap)."""
        backend = url if isinstance(url, Backend) else open_backend(url)
        try:
            return decode_config(backend.get(CONFIG), f"config of {backend.url}")
        except ObjectNotFound:
            raise RepositoryNotFound(backend.url, "it has no config") from None
        finally:
            if backend is not url:
                backend.close()

    @classmethod
    def _attach(cls, backend: Backend, config: RepositoryConfig, cache_dir: str | Path | None) -> Repository:
        owns = False
        if cache_dir is not None:
            root = Path(cache_dir)
        elif backend.url.startswith("memory://"):
            import tempfile  # here: listing and reading files never need it (nor shutil)

            root, owns = Path(tempfile.mkdtemp(prefix="xetstore-cache-")), True
        else:
            root = default_cache_root() / config.id
        backend = with_local_cache(backend, root / "xorb-ranges")
        repo = cls(backend, config, open_index(root / "index"), root, owns)
        try:
            repo.sync()
        except BaseException:
            repo.close()
            raise
        return repo

    def close(self) -> None:
        self._index.close()
        self._backend.close()
        if self._owns_cache:
            import shutil

            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


    # -- adding (the sessions and the commit: adding.py) ---------------------

    def add_files(
        self, paths: Iterable[str | os.PathLike[str]], progress: Progress | None = None, earlier: str | None = None
    ) -> list[AddResult]:
        """Add regular files in one session: shared xorbs, one shard. A file that
        changed while it was read is stored as read, with a warning.

        In a repository with delta chunks on, new chunks are stored as deltas
        against an earlier version where that is smaller: `earlier` (any name
        `get` takes), else the most recently added stored files of the same size."""
        named = [self.manifest(self.resolve(earlier))] if earlier is not None else None
        same_size = self._same_size()
        return self._add_files(list(paths), progress, lambda _, size: named if named is not None else same_size(size))


    def add_file(
        self, path: str | os.PathLike[str], progress: Progress | None = None, earlier: str | None = None
    ) -> AddResult:
        return self.add_files([path], progress, earlier)[0]



    # -- listing -------------------------------------------------------------

    def files(self) -> Iterator[FileInfo]:
        for m in self._index.manifests():
            yield FileInfo(xet_hex(m.file_hash), m.size, m.sha256.hex())

    def find_stored(self, sha256: str, size: int, sync: bool = True) -> str | None:
        """The file hash of a stored file with this sha256 and size, or None; checked
        after a sync under a writer lease: its manifest agrees and its xorbs exist.
        With `sync` False, a file the index does not know is None at once (no
        lease, no listing): for a caller that adds it next, which at worst stores
        again what another client added since the index's last sync."""
        if not sync and self.find(sha256) is None:
            return None
        with self._writing(sync=True) as lease:  # a file another client removed is not stored
            found = self.find(sha256)
            if found is None:
                return None
            m = self.manifest(found)
            from .dedup_targets import DedupTargets

            targets = DedupTargets(self._backend, self._index)
            if m.sha256.hex() != sha256.lower() or m.size != size:
                log.warning("the index maps sha256 %s to file %s of another sha256 or size", sha256, found)
                return None
            if not all(targets.exists(t.xorb_hash) for t in m.terms):
                return None  # lost data: store the file again
            lease.check()
            return found

    def find(self, sha256: str) -> str | None:
        """The file hash of the stored file with this sha256 (a git-lfs oid), or None."""
        try:
            raw = bytes.fromhex(sha256)
        except ValueError:
            return None
        found = self._index.file_by_sha256(raw)
        return None if found is None else xet_hex(found)

    def stats(self) -> RepositoryStats:
        logical = files = 0
        for m in self._index.manifests():
            logical += m.size
            files += 1
        unique = stored = chunks = xorbs = 0
        for footer, size in self._index.xorbs():
            unique += footer.unpacked_ends[-1]
            stored += size
            chunks += footer.num_chunks
            xorbs += 1
        shard_bytes = sum(i.size for i in self._backend.list(SHARDS))
        shards = len(self._index.shard_keys())
        return RepositoryStats(logical, unique, stored + shard_bytes, files, chunks, xorbs, shards)

    def resolve(self, name: str) -> str:
        """The file hash `name` stands for: a file hash, a sha256 (git-lfs oid), a
        unique prefix of either, or TAG:PATH. Raises NotFound or AmbiguousName."""
        return resolve_name(name, self.files, self.snapshot, self._exact)

    def _exact(self, text: str) -> str | None:
        if self._index.manifest(from_xet_hex(text)) is not None:
            return text
        return self.find(text)

    # -- maintenance: xetstore/maintenance/ ----------------------------------

    def check(
        self, read_data: bool = False, subset: str | None = None, progress: Progress | None = None
    ) -> CheckReport:
        """Structure (and with read_data, every chunk of the `subset` of xorbs); never raises for damage."""
        from .maintenance import check_repository

        return check_repository(self._backend, self._index, read_data, subset, progress)

    def compact(
        self, level: int = COMPACT_LEVEL, frame_bytes: int = COMPACT_FRAME_BYTES, progress: Progress | None = None
    ) -> CompactReport:
        """Recompress every live xorb's zstd frames at `level`, joined into frames of about
        `frame_bytes`, as a second layout (docs/format.md §6.8); reads use it at once, gc
        removes the first after the grace period."""
        from .maintenance import compact_repository

        spool = self.cache_dir / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        return compact_repository(self._backend, self._index, level, frame_bytes, str(spool), progress)

    def repair_index(self) -> RebuildReport:
        """Rebuild the local index from the shards into a new directory, then swap it in."""
        from .maintenance import rebuild_index

        return rebuild_index(self._backend, self._index)

    def repair_xorbs(self, confirm: bool = False) -> XorbRepair:
        """Report damaged xorbs and the files lost; with confirm, delete those files and set the xorbs aside."""
        from .maintenance import repair_xorbs

        return repair_xorbs(self._backend, self._index, self.config.params, confirm)

    def repair_shards(self, confirm: bool = False) -> ShardRepair:
        """Report undecodable shards and deletion records; with confirm, set them aside."""
        from .maintenance import repair_shards

        return repair_shards(self._backend, self._index, confirm)

    def remove(self, file_hashes: Iterable[str]) -> list[FileInfo]:
        """Delete files (a deletion record); gc frees their chunks later. A file a
        snapshot names is refused: tags name immutable versions."""
        from .maintenance import remove_files
        from .trees import refuse_tagged

        file_hashes = list(file_hashes)
        refuse_tagged(self.snapshots(), file_hashes)
        removed = remove_files(self._backend, self._index, file_hashes)
        return [FileInfo(xet_hex(m.file_hash), m.size, m.sha256.hex()) for m in removed]

    def gc(
        self, grace: float = DEFAULT_GRACE, dry_run: bool | None = None, repack_below: float = 0.5, wait: float = 600.0
    ) -> GcReport:
        """Remove unreferenced objects older than `grace` seconds; dry_run None means
        a dry run except on folder and memory repositories."""
        from .maintenance import GcOptions, collect_garbage

        if dry_run is None:
            dry_run = not self._backend.url.startswith(("file://", "memory://"))
        options = GcOptions(grace, repack_below, dry_run, wait)
        return collect_garbage(self._backend, self._index, self.config.params, options)


