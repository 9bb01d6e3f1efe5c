"""Snapshots and tags of a repository: `add --tag`, `restore`, `diff`, `tags`.

A snapshot records paths -> file hashes under a tag. trees.py builds and
restores the trees and tags.py finds what a tag names; both load only when a
method here runs, so a plain add or read never pays for them.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .adding import Adding
from .errors import SnapshotNotFound
from .hashing import from_xet_hex, xet_hex
from .repository_state import Progress
from .shard import Manifest

if TYPE_CHECKING:
    from .clean import EarlierOf
    from .snapshot import Snapshot, SnapshotEntry
    from .tags import TagReader
    from .trees import SnapshotDiff, SnapshotResult, WalkedPath

__all__ = ["Tagging"]

log = logging.getLogger("xetstore")


class Tagging(Adding):
    """The snapshot half of a repository handle: it adds and reads whole trees."""

    @property
    def _tags(self) -> TagReader:
        if self._tag_reader is None:
            from .tags import TagReader

            self._tag_reader = TagReader(self._backend, self.cache_dir / "snapshot-heads.json")
        return self._tag_reader

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
