"""The repository: the one object that ties backend, index, clean and smudge together."""

from __future__ import annotations

import functools
import io
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Protocol

from .backends import Backend, open_backend, with_local_cache
from .config import RepositoryConfig, decode_config, encode_config
from .errors import (
    ConfigError,
    DiskFull,
    FileNotInRepository,
    FormatError,
    IndexUnusable,
    MissingData,
    ObjectNotFound,
    RepositoryNotFound,
    SnapshotNotFound,
    XetStoreError,
)
from .faults import fault_point
from .hashing import from_xet_hex, xet_hex
from .index import Index
from .keys import CONFIG, SHARDS, shard_key
from .maintenance import Lease, check_before_publish, open_index, sync_index
from .names import resolve_name
from .params import (
    COMPACT_FRAME_BYTES,
    COMPACT_LEVEL,
    DEFAULT_FRAME_BYTES,
    DEFAULT_GRACE,
    RepositoryParams,
    default_cache_root,
)
from .shard import Manifest, Shard, encode_shard

# Adding (chunking, clean), reading (smudge, file_reader), snapshots (trees, snapshot)
# and maintenance (check, gc, repair) are imported by the methods that use them: a
# process that opens a repository to list, add or read files (the CLI, each git-lfs
# agent) pays only for what it does.
if TYPE_CHECKING:
    from .chunking import Chunker
    from .clean import Cleaned, CleanSession, EarlierOf
    from .maintenance import CheckReport, CompactReport, GcReport, RebuildReport, SessionLease, ShardRepair, XorbRepair
    from .smudge import Reconstructor
    from .snapshot import Snapshot, SnapshotEntry
    from .tags import TagReader
    from .trees import SnapshotDiff, SnapshotResult, WalkedPath
    from .xorb_writer import SessionWorkers

__all__ = ["Repository", "AddResult", "FileInfo", "RepositoryStats"]

log = logging.getLogger("xetstore")

Progress = Callable[[int], None]


class AddResult(NamedTuple):
    file_hash: str
    size: int
    sha256: str
    new_bytes: int  # plain bytes of the chunks this add stored
    stored_bytes: int  # xorb bytes this add wrote, shared in proportion to new_bytes
    path: str | None = None


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


class Writable(Protocol):
    """What `Repository.write_to` writes into."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class Repository:
    """A xetstore repository on a backend, with its local index."""

    def __init__(self, backend: Backend, config: RepositoryConfig, index: Index, cache_dir: Path, owns_cache: bool) -> None:
        self._backend = backend
        self.config = config
        self._index = index
        self.cache_dir = cache_dir
        self._owns_cache = owns_cache
        self._chunker: Chunker | None = None  # made by the first add session
        self._held: SessionLease | None = None  # inside `adding`
        self._workers: SessionWorkers | None = None  # inside `adding`, made by its first add
        self._reader: Reconstructor | None = None  # made by the first read
        self._tag_reader: TagReader | None = None  # made by the first question about tags

    @property
    def _reconstructor(self) -> Reconstructor:
        """The reading machinery, made on first use: an `xetstore add` never loads it."""
        if self._reader is None:
            from .smudge import Reconstructor

            self._reader = Reconstructor(self._backend, self._index)
        return self._reader

    @property
    def _tags(self) -> TagReader:
        if self._tag_reader is None:
            from .tags import TagReader

            self._tag_reader = TagReader(self._backend, self.cache_dir / "snapshot-heads.json")
        return self._tag_reader

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

    @property
    def url(self) -> str:
        return self._backend.url

    def sync(self) -> int:
        """Merge shards and deletion records the index has not seen (other processes
        or machines wrote them); rebuild the index if gc removed shards.

        With the index's disk full, reading goes on with what the index knows
        (a warning says what was not merged); adds sync strictly (`_merge`)."""
        try:
            return self._merge()
        except DiskFull as exc:
            log.warning("the index could not merge what other clients added (%s); "
                        "files they added stay unknown until there is space", exc)  # fmt: skip
            return 0

    def _merge(self) -> int:
        merged, damaged = sync_index(self._backend, self._index)
        for d in damaged:
            log.warning("skipping damaged %s: %s", d.key, d.reason)
        if merged and self._reader is not None:
            self._reader.forget_tables()  # a merged compact may name a xorb's newer layout
        return merged

    # -- adding --------------------------------------------------------------

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

    def _add_files(
        self, paths: list[str | os.PathLike[str]], progress: Progress | None, earlier: EarlierOf
    ) -> list[AddResult]:
        from .inputs import check_input  # here, as DedupTargets below: reading never needs them

        before = [check_input(p) for p in paths]  # refuse bad input before writing anything
        with self._writing() as lease, self._session() as session:
            cleaned = session.add_paths(paths, before, progress, earlier)
            return self._commit(session, [(c, os.fspath(p)) for c, p in zip(cleaned, paths)], lease)

    def _earlier(self, earlier: EarlierOf, i: int, size: int) -> Sequence[Manifest]:
        """The earlier versions file `i` is cleaned against; none (and no index
        scan) unless the repository stores delta chunks."""
        return earlier(i, size) if self.config.params.delta else ()

    def _same_size(self) -> Callable[[int], list[Manifest]]:
        """Size -> stored files of that size (one index scan per add, on first use,
        when delta_bases loads too: a repository without delta chunks never asks)."""
        made: list[Callable[[int], list[Manifest]]] = []

        def lookup(size: int) -> list[Manifest]:
            if not made:
                from .delta_bases import SameSize

                made.append(SameSize(self._index))
            return made[0](size)

        return lookup

    def add_file(
        self, path: str | os.PathLike[str], progress: Progress | None = None, earlier: str | None = None
    ) -> AddResult:
        return self.add_files([path], progress, earlier)[0]

    def add_stream(
        self, stream: BinaryIO, expected_sha256: str | None = None, progress: Progress | None = None, size: int | None = None
    ) -> AddResult:
        """Add one binary stream; with `expected_sha256`, refuse other content.
        With its `size` known and delta chunks on, the most recently added stored
        files of that size are its earlier versions (git-lfs names no path)."""
        expected = bytes.fromhex(expected_sha256) if expected_sha256 else None
        with self._writing() as lease, self._session() as session:
            same_size = self._same_size()
            earlier = self._earlier(lambda _, n: same_size(n), 0, size) if size is not None else ()
            cleaned = session.add_stream(stream, expected, progress, earlier=earlier)
            return self._commit(session, [(cleaned, None)], lease)[0]

    def add_bytes(self, data: bytes) -> AddResult:
        return self.add_stream(io.BytesIO(data))

    def _session(self) -> CleanSession:
        from .chunking import make_chunker
        from .clean import CleanSession

        if self._chunker is None:
            self._chunker = make_chunker(self.config.params.chunker)
        spool = self.cache_dir / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        if self._held is not None and self._workers is None:
            from .xorb_writer import SessionWorkers

            self._workers = SessionWorkers(self._backend, self.config.params)
        return CleanSession(self._backend, self._index, self.config.params, self._chunker, str(spool), self._workers)

    @contextmanager
    def adding(self) -> Iterator[None]:
        """Adds inside share what each would set up and tear down: one writer lease,
        taken by the first that needs it (gc cannot sweep until the end), and the
        threads and buffers that clean. Each still makes its shard durable and
        commits it before it returns. For a git-lfs agent's many small objects."""
        from .maintenance import SessionLease

        held = self._held = SessionLease(self._backend, self._merge)
        try:
            yield
        finally:
            workers, self._held, self._workers = self._workers, None, None
            try:
                if workers is not None:
                    workers.close()  # its last publishes end under the lease
            finally:
                held.release()

    @contextmanager
    def _writing(self, sync: bool = False) -> Iterator[Lease]:
        """A writer lease (gc deletes nothing meanwhile) and an index synced under it:
        this call's own, or the held one, synced when taken and again if `sync`."""
        if self._held is not None:
            lease, taken = self._held.current()
            if sync and not taken:
                self._merge()
            yield lease
            return
        with Lease.writer(self._backend) as lease:
            self._merge()
            yield lease

    def _commit(self, session: CleanSession, cleaned: list[tuple[Cleaned, str | None]], lease: Lease) -> list[AddResult]:
        """Write ordering: xorbs durable -> shard published (its bytes synced under a
        temp name meanwhile) -> index -> return.

        If the index knows a file of the session, it is synced again first: a
        file another client removed while this session ran is not stored any
        more and must be recorded again, or a gc would take its chunks. A file
        counts as stored only if every xorb its manifest names exists (checked
        in `finish`, under the lease). A session of files the index does not
        know records them all, so it skips that sync: listing every shard per
        git-lfs object made a push of many small files slower with every push.
        """
        if session.knows_a_file():
            self._merge()
        shard = session.finish(int(time.time()))
        staged = None
        try:
            if shard is not None:
                key, shard, data = self._new_shard(shard)
                # Written and synced while the last xorb publishes (a small git-lfs
                # object's upload waited for one sync after the other); visible only below.
                staged = self._backend.stage(key, data)
            session.wait_durable()
            fault_point("repository.after_xorbs")
            lease.check()  # the xorbs were checked while no gc could sweep
            if shard is not None and staged is not None:
                check_before_publish(self._backend, lease, shard, self._index.xorb_key)
                staged.publish()
                fault_point("repository.after_shard")
                self._record(key, shard)
                fault_point("repository.after_index")
        except BaseException:
            if staged is not None:
                staged.discard()
            raise
        return _results(cleaned, session.uploaded_bytes)

    def _new_shard(self, shard: Shard) -> tuple[str, Shard, bytes]:
        """The shard's key, itself and its bytes, made new if the index holds the same bytes:
        a file removed and added again within the second. The deletion record names that
        shard, so a later time must make this one new, or the file would stay deleted."""
        data = encode_shard(shard)
        key = shard_key(data)
        while self._index.has_shard(key):
            shard = shard._replace(created=shard.created + 1)
            data = encode_shard(shard)
            key = shard_key(data)
        return key, shard, data

    def _record(self, key: str, shard: Shard) -> None:
        """Merge our own durable shard; the files are stored even if the index's disk is full."""
        try:
            self._index.add_shard(key, shard)
        except DiskFull as exc:
            log.warning("stored (%s is durable), but the index could not record it (%s); "
                        "the next command merges it once the index has space", key, exc)  # fmt: skip

    # -- reading -------------------------------------------------------------

    def manifest(self, file_hash: str) -> Manifest:
        raw = _parse_file_hash(file_hash)
        m = self._index.manifest(raw)
        if m is None:
            self.sync()
            m = self._index.manifest(raw)
        if m is None:
            raise FileNotInRepository(file_hash)
        if m.file_hash != raw:  # a damaged index must not serve another file's bytes
            raise IndexUnusable(str(self._index.path), f"its entry for file {file_hash} names another file")
        return m

    def read_file(
        self,
        file_hash: str,
        dest_path: str | os.PathLike[str],
        progress: Progress | None = None,
        overwrite: bool = True,
    ) -> None:
        """Write a file to `dest_path` (output.py: no partial file, umask mode, a device
        or FIFO written in place, a link refused); with overwrite False, never replace."""
        self._write_path(self.manifest(file_hash), dest_path, progress, overwrite, ahead=True)

    def read_files(
        self,
        files: Iterable[tuple[str, str | os.PathLike[str]]],
        progress: Progress | None = None,
        overwrite: bool = True,
    ) -> None:
        """read_file for each (file hash, destination); files of 1 MiB and more two at
        a time (file_batches.py). Every file is attempted; the first failure, in the
        given order, is raised after the rest."""
        items = list(files)
        found = [self._manifest_or_error(file_hash) for file_hash, _ in items]
        self._read_batch(found, [d for _, d in items], progress, overwrite)

    def _read_batch(
        self,
        found: list[Manifest | XetStoreError],
        dests: Sequence[str | os.PathLike[str]],
        progress: Progress | None,
        overwrite: bool,
    ) -> None:
        from .file_batches import read_batch

        def read_one(i: int, ahead: bool) -> None:
            manifest = found[i]
            if isinstance(manifest, XetStoreError):
                raise manifest
            self._write_path(manifest, dests[i], progress, overwrite, ahead)

        read_batch([m.size if isinstance(m, Manifest) else None for m in found], read_one)

    def _manifest_or_error(self, file_hash: str) -> Manifest | XetStoreError:
        try:
            return self.manifest(file_hash)
        except XetStoreError as exc:
            return exc  # read_files raises it in its turn

    def _write_path(
        self, manifest: Manifest, dest_path: str | os.PathLike[str], progress: Progress | None, overwrite: bool, ahead: bool
    ) -> None:
        from .destination import write_output  # only commands that write files load it

        write_output(Path(dest_path), lambda out: self._write_resuming(manifest, out, progress, ahead), overwrite)

    def _write_resuming(self, manifest: Manifest, out: BinaryIO, progress: Progress | None, ahead: bool) -> None:
        """A file's verified bytes into `out`: a regular file is written by the reader
        threads at their offsets (the main thread's in-order writes were a quarter of
        a dataset restore), rewritten once after a re-sync if a xorb vanished mid-read
        (gc repacked it while this index was older); a stream resumes where it was."""
        if not out.seekable():
            for data in _counted(self._iter_resuming(manifest), progress):
                out.write(data)
            return
        start = out.tell()
        try:
            self._reconstructor.write_file(manifest, out, progress, ahead)
        except MissingData:
            out.seek(start)
            out.truncate()
            self._reconstructor.write_file(self._fresh_manifest(xet_hex(manifest.file_hash)), out, progress, ahead)

    def write_to(self, file_hash: str, out: Writable, progress: Progress | None = None) -> None:
        """Stream a file's bytes, in order, into anything with a binary `write` (a file,
        a pipe, a writer that hashes on the way): views of the verified chunks, no copies."""
        for data in self._iter_resuming(self.manifest(file_hash)):
            out.write(data)
            if progress:
                progress(len(data))

    def iter_file(self, file_hash: str) -> Iterator[bytes]:
        return (bytes(data) for data in self._iter_resuming(self.manifest(file_hash)))

    def _iter_resuming(self, manifest: Manifest) -> Iterator[bytes | memoryview]:
        """A file's verified bytes; if a xorb vanished mid-read (gc repacked it while
        this index was older), re-sync once and resume at the same offset."""
        done = 0
        try:
            for data in self._reconstructor.iter_file(manifest):
                done += len(data)
                yield data
            return
        except MissingData:
            pass
        with self.open_file(xet_hex(manifest.file_hash)) as f:  # re-syncs on the same error
            f.seek(done)
            while block := f.read(8 << 20):
                yield block

    def open_file(self, file_hash: str) -> io.BufferedReader:
        """A seekable binary file object that fetches only the chunks reads need."""
        from .file_reader import FileReader

        raw = FileReader(self._reconstructor, self.manifest(file_hash), lambda: self._fresh_manifest(file_hash))
        return io.BufferedReader(raw, buffer_size=256 * 1024)

    def _fresh_manifest(self, file_hash: str) -> Manifest:
        self.sync()  # rebuilds the index when gc replaced shards
        return self.manifest(file_hash)

    def read_bytes(self, file_hash: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of a file (end None = to the end)."""
        with self.open_file(file_hash) as f:
            size = f.raw.size  # type: ignore[attr-defined]
            stop = size if end is None else min(end, size)
            if start >= stop:
                return b""
            f.seek(start)
            return f.read(stop - start)

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

    # -- snapshots: trees.py ---------------------------------------------------

    def add_snapshot(
        self, paths: Iterable[str | os.PathLike[str]], tag: str, progress: Progress | None = None
    ) -> SnapshotResult:
        """Add files and directories, then record them as a snapshot tagged `tag`
        (after their shard is durable). A tag names one snapshot for good."""
        from .trees import SnapshotResult, put_snapshot, refuse_taken, snapshot_entries, walk_inputs

        refuse_taken(self._tags.taken(), tag)
        walk = walk_inputs(paths)
        files = walk.files()
        added = self._add_files([w.source for w in files], progress, self._earlier_in_snapshots(files))
        refuse_taken(self._tags.taken(), tag)  # again: the add may have taken a while
        stored = [(from_xet_hex(r.file_hash), r.size) for r in added]
        snapshot = put_snapshot(self._backend, tag, snapshot_entries(walk, stored))
        return SnapshotResult(snapshot, added, [(str(p), why) for p, why in walk.skipped])

    def _earlier_in_snapshots(self, files: list[WalkedPath]) -> EarlierOf:
        """Each file's earlier versions: the files at its snapshot path in the
        newest snapshots having that path (any tag); for a path new to every
        snapshot, the stored files of its size (asked only with delta chunks on: an
        add --tag without them loads no delta or reading code)."""
        snapshots = self.snapshots() if self.config.params.delta else []
        same_size = self._same_size()

        def earlier(i: int, size: int) -> Sequence[Manifest]:
            from .delta_bases import by_path

            found = [self._index.manifest(h) for h in by_path(snapshots, files[i].path)]
            known = [m for m in found if m is not None]  # removed files are no base
            return known or same_size(size)

        return earlier

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot on the backend, newest first (damaged ones are logged and skipped)."""
        from .trees import read_snapshots

        found, damaged = read_snapshots(self._backend)
        for key, reason in damaged:
            log.warning("skipping damaged %s: %s", key, reason)
        return sorted(found, key=lambda s: (s.created_ns, s.key), reverse=True)

    def tags(self) -> dict[str, Snapshot]:
        """Tag -> the snapshot it names (the newest readable one carrying it), sorted by tag."""
        return self._tags.all_named()

    def snapshot(self, tag: str) -> Snapshot:
        snap = self._tags.named(tag)
        if snap is None:
            raise SnapshotNotFound(tag, sorted(self._tags.taken()))
        return snap

    def restore(
        self, tag: str | Snapshot, dest: str | os.PathLike[str], progress: Progress | None = None
    ) -> list[SnapshotEntry]:
        """Recreate a snapshot (a tag, or one `snapshot()` gave) under `dest`, which must
        be absent or empty."""
        from .trees import restore_tree

        snap = self.snapshot(tag) if isinstance(tag, str) else tag
        # Every file is known before anything is written, and read with what was found.
        known = {h: self.manifest(h) for h in (xet_hex(e.file_hash) for e in snap.files())}

        def read(files: list[tuple[str, Path]]) -> None:
            self._read_batch([known[h] for h, _ in files], [d for _, d in files], progress, True)

        return restore_tree(snap, Path(dest), read)

    def diff(self, old_tag: str, new_tag: str) -> SnapshotDiff:
        """Paths added, removed and changed from `old_tag` to `new_tag`, and the chunks `new_tag` adds."""
        from .trees import chunk_costs, diff_snapshots

        costs = functools.partial(chunk_costs, lambda fh: self.manifest(xet_hex(fh)), self._index.xorb)
        return diff_snapshots(self.snapshot(old_tag), self.snapshot(new_tag), costs)

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


def _parse_file_hash(text: str) -> bytes:
    try:
        return from_xet_hex(text)
    except FormatError:
        raise FileNotInRepository(text, "a file hash is 64 hex digits, as `xetstore ls` prints") from None


def _counted(blocks: Iterator[bytes | memoryview], progress: Progress | None) -> Iterator[bytes | memoryview]:
    for data in blocks:
        yield data
        if progress:
            progress(len(data))


def _results(cleaned: list[tuple[Cleaned, str | None]], uploaded: int) -> list[AddResult]:
    """One result per stream; the session's xorb bytes are shared by new bytes."""
    total_new = sum(c.new_bytes for c, _ in cleaned)
    results, given = [], 0
    for n, (c, path) in enumerate(cleaned):
        if n == len(cleaned) - 1:
            share = uploaded - given
        else:
            share = uploaded * c.new_bytes // total_new if total_new else 0
        given += share
        results.append(AddResult(xet_hex(c.file_hash), c.size, c.sha256.hex(), c.new_bytes, share, path))
    return results
