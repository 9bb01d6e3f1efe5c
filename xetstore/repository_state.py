"""An open repository's state: backend, config, local index and cache, kept in step.

The base that the repository's halves share (reading.py, adding.py, tagging.py;
repository.py joins them): attributes, the sync that merges what other clients
wrote, and the reading machinery made on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .backends import Backend
from .config import RepositoryConfig
from .errors import DiskFull
from .index import Index
from .maintenance import sync_index

if TYPE_CHECKING:
    from .chunking import Chunker
    from .maintenance import SessionLease
    from .smudge import Reconstructor
    from .tags import TagReader
    from .xorb_writer import SessionWorkers

__all__ = ["RepositoryState", "Progress"]

log = logging.getLogger("xetstore")

Progress = Callable[[int], None]


class RepositoryState:
    """What every part of a repository handle reads and keeps."""

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

    @property
    def _reconstructor(self) -> Reconstructor:
        """The reading machinery, made on first use: an `xetstore add` never loads it."""
        if self._reader is None:
            from .smudge import Reconstructor

            self._reader = Reconstructor(self._backend, self._index)
        return self._reader
