"""The stored xorbs an add session may dedup against, each checked against the xorb itself.

The index says where chunks are, but it is a local cache: a xorb may have been
lost or collected since, and one wrong LMDB value would make every file that
dedups against it permanently unreadable while the add reports success. So
before a session first refers to a stored xorb, it reads that xorb's footer
from the backend (one stat and two small ranged reads, once per xorb per
session) and compares its chunk table with the index's. A xorb that is
missing or disagrees is not used: its chunks are stored again. Every location
the index gives is then checked against the verified table.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

from .backends import Backend
from .errors import IntegrityError, NotFound
from .index import ChunkLocation, Index
from .keys import xorb_key
from .maintenance import read_xorb_footer

__all__ = ["DedupTargets"]

log = logging.getLogger("xetstore")

_LISTS = 8  # chunk lists kept in memory (~256 KiB each); terms move through xorbs mostly in order


class DedupTargets:
    """Verified chunk tables of stored xorbs, for one session."""

    def __init__(self, backend: Backend, index: Index) -> None:
        self._backend = backend
        self._index = index
        self._good: set[bytes] = set()
        self._bad: set[bytes] = set()
        self._lists: OrderedDict[bytes, Sequence[bytes]] = OrderedDict()

    def chunk_hashes(self, xorb_hash: bytes) -> Sequence[bytes]:
        """The xorb's chunk hashes if it exists and the index describes it truly, else ()."""
        hashes = self._lists.get(xorb_hash)
        if hashes is not None:
            self._lists.move_to_end(xorb_hash)
            return hashes
        if xorb_hash in self._bad:
            return ()
        entry = self._index.xorb(xorb_hash)
        if entry is None:
            return ()
        hashes = entry[0].chunk_hashes
        if xorb_hash not in self._good and not self._verify(xorb_hash, entry[0].layout, hashes):
            return ()
        self._lists[xorb_hash] = hashes
        if len(self._lists) > _LISTS:
            self._lists.popitem(last=False)
        return hashes

    def holds(self, location: ChunkLocation, chunk_hash: bytes) -> bool:
        """Whether the index's `location` of a chunk really holds it."""
        xorb_hash, i = location
        hashes = self.chunk_hashes(xorb_hash)
        return i < len(hashes) and hashes[i] == chunk_hash

    def exists(self, xorb_hash: bytes) -> bool:
        """Whether the xorb is on the backend now (checked once per session)."""
        if xorb_hash in self._good:
            return True
        if xorb_hash in self._bad:
            return False
        found = self._backend.exists(self._index.xorb_key(xorb_hash))
        (self._good if found else self._bad).add(xorb_hash)
        return found

    def _verify(self, xorb_hash: bytes, layout: int, indexed: Sequence[bytes]) -> bool:
        key = xorb_key(xorb_hash, layout)
        try:
            actual = read_xorb_footer(self._backend, xorb_hash, layout).footer.chunk_hashes
        except NotFound:
            log.warning("%s is missing from the repository; storing its chunks again", key)
            actual = None
        except IntegrityError as exc:
            log.warning("not deduplicating against %s: %s", key, exc)
            actual = None
        if actual is not None and tuple(actual) != tuple(indexed):
            log.warning("the index's chunk table of %s differs from the xorb's; storing its chunks "
                        "again (run `xetstore repair index`)", key)  # fmt: skip
            actual = None
        (self._good if actual is not None else self._bad).add(xorb_hash)
        return actual is not None
