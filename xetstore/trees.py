"""Trees in and out of snapshots: walk what `add --tag` names, restore, diff.

Snapshot paths are relative. An argument given as a relative path inside the
working directory keeps that path (`add --tag v1 data/` records `data/...`,
`.` records its contents at the top); any other argument (absolute, or with
`..`) is recorded under its own name, as `cp -r` would copy it. Only regular
files and directories are recorded; a symlink to a file is recorded as that file
(as a plain add reads it), other symlinks, devices, sockets and fifos are
reported as skipped, and owners, hard links and directory times are not kept.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .backends import Backend
from .errors import ConfigError, InputError, IntegrityError, MissingData, OutputError, Refused
from .hashing import xet_hex
from .keys import SNAPSHOTS, xorb_key
from .shard import Manifest
from .snapshot import (
    DIR,
    FILE,
    Snapshot,
    SnapshotEntry,
    check_path,
    check_tag,
    decode_snapshot,
    encode_snapshot,
    snapshot_key,
)
from .tags import snapshot_bytes
from .xorb import XorbFooter

if TYPE_CHECKING:
    from .repository import AddResult

__all__ = [
    "SnapshotResult", "Walk", "WalkedPath", "walk_inputs", "snapshot_entries", "read_snapshots", "put_snapshot", "refuse_taken",
    "refuse_tagged", "restore_tree", "SnapshotDiff", "diff_snapshots", "chunk_costs",
]  # fmt: skip

# (xorb hash, chunk index) -> (plain size, stored bytes per plain byte of its xorb)
ChunkCosts = dict[tuple[bytes, int], tuple[int, float]]

log = logging.getLogger("xetstore")


class SnapshotResult(NamedTuple):
    snapshot: Snapshot
    added: list[AddResult]  # one per file, in the snapshot's order of files
    skipped: list[tuple[str, str]]  # (path, why): what a snapshot cannot record


class WalkedPath(NamedTuple):
    path: str  # the snapshot path
    source: Path  # where it is on this machine
    kind: str
    mode: int
    mtime_ns: int = 0


class Walk:
    """What walking an add's arguments found, in order, and what it skipped."""

    def __init__(self) -> None:
        self.entries: list[WalkedPath] = []
        self.skipped: list[tuple[Path, str]] = []  # (path, why)

    def files(self) -> list[WalkedPath]:
        return [e for e in self.entries if e.kind == FILE]


def walk_inputs(paths: Iterable[str | os.PathLike[str]]) -> Walk:
    """The snapshot entries of these files and directories; InputError on a clash."""
    walk = Walk()
    for p in paths:
        _walk_one(Path(p), _root_name(Path(p)), walk)
    seen: set[str] = set()
    for e in walk.entries:
        if e.path in seen:
            raise InputError(str(e.source), f"its snapshot path {e.path!r} is named twice by the arguments")
        seen.add(e.path)
    return walk


def _root_name(p: Path) -> str:
    """The snapshot path an argument is recorded under ('' = the top)."""
    norm = os.path.normpath(p)
    parts = Path(norm).parts
    if not os.path.isabs(norm) and ".." not in parts:
        return "" if norm == "." else "/".join(parts)
    return Path(os.path.abspath(norm)).name


def _walk_one(p: Path, name: str, walk: Walk) -> None:
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(str(p), exc.strerror or str(exc)) from None
    if stat.S_ISREG(st.st_mode):
        walk.entries.append(WalkedPath(name or p.name, p, FILE, stat.S_IMODE(st.st_mode), st.st_mtime_ns))
    elif not stat.S_ISDIR(st.st_mode):
        walk.skipped.append((p, "not a regular file or directory"))
    else:
        if name:
            walk.entries.append(WalkedPath(name, p, DIR, stat.S_IMODE(st.st_mode)))
        for child in sorted(p.iterdir()):
            _walk_child(child, f"{name}/{child.name}" if name else child.name, walk)


def _walk_child(p: Path, name: str, walk: Walk) -> None:
    st = p.lstat()
    if stat.S_ISLNK(st.st_mode):
        # A link to a file is stored as that file, as a plain add does (a Hugging Face
        # snapshot directory is made of such links); a link to a directory could loop.
        if p.is_file():
            _walk_one(p, name, walk)
        else:
            walk.skipped.append((p, "symlink to a directory or to nothing (not recorded)"))
    elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        _walk_one(p, name, walk)
    else:
        walk.skipped.append((p, "not a regular file or directory"))


def snapshot_entries(walk: Walk, stored: Sequence[tuple[bytes, int]]) -> list[SnapshotEntry]:
    """The walk's entries, its files with the (file hash, size) they were stored as, in order."""
    entries = [SnapshotEntry(w.path, w.kind, w.mode) for w in walk.entries if w.kind != FILE]
    for w, (file_hash, size) in zip(walk.files(), stored, strict=True):
        entries.append(SnapshotEntry(w.path, FILE, w.mode, file_hash, size, w.mtime_ns))
    return entries


# -- snapshots on the backend ---------------------------------------------------


def read_snapshots(backend: Backend) -> tuple[list[Snapshot], list[tuple[str, str]]]:
    """Every snapshot object, and (key, reason) for those that cannot be read."""
    found, damaged = [], []
    for info in backend.list(SNAPSHOTS):
        try:
            data = snapshot_bytes(backend, info.key)
            if data is None:
                continue  # removed while we listed
            s = decode_snapshot(data, info.key)
        except IntegrityError as exc:
            damaged.append((info.key, str(exc)))
            continue
        found.append(Snapshot(s.tag, s.created_ns, s.entries, info.key))
    return found, damaged


def put_snapshot(backend: Backend, tag: str, entries: list[SnapshotEntry]) -> Snapshot:
    """Write a new snapshot object (never overwriting one) and return it with its key."""
    snap = Snapshot(tag, time.time_ns(), tuple(sorted(entries, key=lambda e: e.path)))
    data = encode_snapshot(snap)
    key = snapshot_key(data)
    backend.put(key, data)
    log.info("wrote %s: tag %s, %d entries", key, tag, len(entries))
    return Snapshot(snap.tag, snap.created_ns, snap.entries, key)


def refuse_taken(taken: Mapping[str, str], tag: str) -> None:
    """ConfigError for a malformed tag, Refused for one that a snapshot carries
    (`taken`: tag -> the key of the newest snapshot carrying it)."""
    try:
        check_tag(tag)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if tag in taken:
        raise Refused(f"tag {tag} already names {taken[tag]}; snapshots are immutable, so choose another tag")


def refuse_tagged(snapshots: list[Snapshot], file_hashes: list[str]) -> None:
    """Refused if a snapshot names one of these files (tags name immutable versions)."""
    wanted = {h.lower() for h in file_hashes}
    for snap in snapshots:
        for e in snap.files():
            if xet_hex(e.file_hash) in wanted:
                raise Refused(f"file {xet_hex(e.file_hash)} is {e.path} in snapshot {snap.tag}; "
                              "a file a tag names cannot be removed")  # fmt: skip


# -- restore --------------------------------------------------------------------


def restore_tree(
    snapshot: Snapshot, dest: Path, read_files: Callable[[list[tuple[str, Path]]], None]
) -> list[SnapshotEntry]:
    """Recreate the snapshot's files and directories under `dest` (absent or empty):
    directories first, then every file's bytes (read_files: big ones side by side),
    then each file's mode and mtime."""
    _check_destination(dest)
    dest.mkdir(parents=True, exist_ok=True)
    placed = [(e, dest.joinpath(*check_path(e.path).split("/"))) for e in snapshot.entries]
    made = {dest}  # each directory once: a mkdir per file was 60 us each on ext4 here
    for e, target in placed:
        folder = target if e.kind == DIR else target.parent
        if folder not in made:
            with _restoring(e, target):
                folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
    files = [(e, target) for e, target in placed if e.kind != DIR]
    read_files([(xet_hex(e.file_hash), target) for e, target in files])
    for e, target in files:
        with _restoring(e, target):
            os.chmod(target, e.mode)
            os.utime(target, ns=(e.mtime_ns, e.mtime_ns))
    for e in sorted((e for e in snapshot.entries if e.kind == DIR), key=lambda e: e.path, reverse=True):
        os.chmod(dest.joinpath(*e.path.split("/")), e.mode)  # last, deepest first: a read-only dir blocks writes
    return [e for e, _ in placed]


@contextmanager
def _restoring(e: SnapshotEntry, target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise OutputError(str(target), f"restoring {e.path}: {exc.strerror or exc}") from None


def _check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise OutputError(str(dest), "it exists and is not an empty directory; restore into a new or empty one")


# -- diff -----------------------------------------------------------------------


class SnapshotDiff(NamedTuple):
    """What changed from snapshot `old` to `new`, and what `new` costs on top of `old`."""

    old: Snapshot
    new: Snapshot
    added: list[SnapshotEntry]
    removed: list[SnapshotEntry]
    changed: list[tuple[SnapshotEntry, SnapshotEntry]]  # (old, new)
    unchanged: int
    new_bytes: int  # plain bytes of the chunks `new` uses that `old` does not
    new_stored_bytes: int  # the same chunks' share of their xorbs' stored bytes (an estimate)


def diff_snapshots(old: Snapshot, new: Snapshot, chunks_of: Callable[[bytes], ChunkCosts]) -> SnapshotDiff:
    """Compare by path; `chunks_of(file hash)` gives the chunks a file uses (chunk_costs)."""
    before = {e.path: e for e in old.entries}
    after = {e.path: e for e in new.entries}
    added = [after[p] for p in sorted(after.keys() - before.keys())]
    removed = [before[p] for p in sorted(before.keys() - after.keys())]
    changed = [(before[p], after[p]) for p in sorted(after.keys() & before.keys()) if _differs(before[p], after[p])]
    unchanged = len(after.keys() & before.keys()) - len(changed)
    have = _chunks(old, chunks_of)
    extra = {c: v for c, v in _chunks(new, chunks_of).items() if c not in have}
    plain = sum(size for size, _ in extra.values())
    stored = round(sum(size * ratio for size, ratio in extra.values()))
    return SnapshotDiff(old, new, added, removed, changed, unchanged, plain, stored)


def _differs(a: SnapshotEntry, b: SnapshotEntry) -> bool:
    return (a.kind, a.file_hash, a.mode) != (b.kind, b.file_hash, b.mode)


def _chunks(snap: Snapshot, chunks_of: Callable[[bytes], ChunkCosts]) -> ChunkCosts:
    out: ChunkCosts = {}
    for fh in {e.file_hash for e in snap.files()}:
        out.update(chunks_of(fh))
    return out


def chunk_costs(
    manifest: Callable[[bytes], Manifest], xorb: Callable[[bytes], tuple[XorbFooter, int] | None], file_hash: bytes
) -> ChunkCosts:
    """The chunks one file uses; a chunk's stored cost is its xorb's stored bytes per plain
    byte (frames compress several chunks together, so no chunk has an exact one)."""
    out: ChunkCosts = {}
    for t in manifest(file_hash).terms:
        found = xorb(t.xorb_hash)
        if found is None:
            raise MissingData(xorb_key(t.xorb_hash), xet_hex(file_hash))
        footer, size = found
        ratio = size / footer.unpacked_ends[-1]
        out.update({(t.xorb_hash, i): (footer.chunk_size(i), ratio) for i in range(t.first, t.end)})
    return out
