"""Which snapshot a tag names, reading no more snapshots than that takes.

A tag names the newest readable snapshot carrying it (docs/format.md §9.6), so
every snapshot object's tag and time must be known, but only the chosen one's
entries: checking and building every entry of every snapshot made restoring a
1476-file tag out of four spend 70 ms on snapshots, twice (the command and the
restore each asked). Snapshot objects never change, so the tag and time of each
key read are kept, for the handle and in the local cache (`snapshot-heads.json`,
beside the index): a later question, in this process or the next, lists the keys
and reads only new ones, and then the snapshot it chooses. A saved head that the
chosen object contradicts (a damaged cache) is dropped with the whole file, and
the question is asked again of the objects.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from .backends import Backend
from .destination import new_temp_file
from .errors import IntegrityError, NotFound
from .keys import SNAPSHOTS, names_its_content
from .snapshot import Snapshot, decode_snapshot, snapshot_head

__all__ = ["TagReader", "Head", "snapshot_bytes"]

_T = TypeVar("_T")

log = logging.getLogger("xetstore")


class Head(NamedTuple):
    """A snapshot object's tag and time, and its key."""

    tag: str
    created_ns: int
    key: str


class _SavedHeadWrong(Exception):
    """A saved head disagrees with its object: the saved heads were dropped."""


class TagReader:
    """The snapshots of one backend, as tags name them."""

    def __init__(self, backend: Backend, saved: Path | None = None) -> None:
        self._backend = backend
        self._saved = saved  # where the heads are kept between processes
        self._heads: dict[str, Head] = _read_saved(saved) if saved else {}  # key -> head

    def heads(self) -> list[Head]:
        """Every readable snapshot's head, the one each tag names first: newest
        first, ties broken by the larger key (damaged objects are logged, skipped)."""
        found: dict[str, Head] = {}
        for info in self._backend.list(SNAPSHOTS):
            head = self._heads.get(info.key) or self._read_head(info.key)
            if head is not None:
                found[info.key] = head
        if found.keys() != self._heads.keys() and self._saved is not None:
            _save(self._saved, found)
        self._heads = found  # a key gone from the listing was deleted: forget it
        return sorted(found.values(), key=lambda h: (h.created_ns, h.key), reverse=True)

    def named(self, tag: str) -> Snapshot | None:
        """The snapshot `tag` names: its newest snapshot whose entries are readable."""
        return self._asking(lambda: self._named(tag))

    def all_named(self) -> dict[str, Snapshot]:
        """Tag -> the snapshot it names, sorted by tag."""
        return self._asking(self._all_named)

    def _asking(self, question: Callable[[], _T]) -> _T:
        try:
            return question()
        except _SavedHeadWrong:
            return question()  # asked again of the objects themselves

    def _named(self, tag: str) -> Snapshot | None:
        for head in self.heads():
            if head.tag == tag and (snap := self._load(head)) is not None:
                return snap
        return None

    def _all_named(self) -> dict[str, Snapshot]:
        out: dict[str, Snapshot] = {}
        for head in self.heads():
            if head.tag not in out and (snap := self._load(head)) is not None:
                out[head.tag] = snap
        return dict(sorted(out.items()))

    def taken(self) -> dict[str, str]:
        """Tag -> the key of the newest snapshot carrying it, entries unread: what a
        new tag must not be (a snapshot whose entries are damaged still holds its tag)."""
        out: dict[str, str] = {}
        for head in self.heads():
            out.setdefault(head.tag, head.key)
        return out

    def _read_head(self, key: str) -> Head | None:
        try:
            data = snapshot_bytes(self._backend, key)
            return None if data is None else Head(*snapshot_head(data, key), key)
        except IntegrityError as exc:
            log.warning("skipping damaged %s: %s", key, exc)
            return None

    def _load(self, head: Head) -> Snapshot | None:
        """The whole snapshot a head belongs to, entries checked (read again: whole
        snapshots are not kept, a handle may live long and snapshots be large)."""
        try:
            data = snapshot_bytes(self._backend, head.key)
            s = None if data is None else decode_snapshot(data, head.key)
        except IntegrityError as exc:
            log.warning("skipping damaged %s: %s", head.key, exc)
            return None
        if s is not None and (s.tag, s.created_ns) != (head.tag, head.created_ns):
            self._drop_saved(head.key)
        return None if s is None else Snapshot(s.tag, s.created_ns, s.entries, head.key)

    def _drop_saved(self, key: str) -> None:
        log.warning("the saved tag of %s disagrees with it; reading every snapshot's tag again", key)
        self._heads = {}
        if self._saved is not None:
            self._saved.unlink(missing_ok=True)
        raise _SavedHeadWrong(key)


def snapshot_bytes(backend: Backend, key: str) -> bytes | None:
    """A snapshot object's bytes, None if it is gone (removed while listed);
    IntegrityError if they are not what its name says."""
    try:
        data = backend.get(key)
    except NotFound:
        return None
    if not names_its_content(key, SNAPSHOTS, data):
        raise IntegrityError(f"{key}: content does not match its name")
    return data


_SAVED_FORMAT = "xetstore-snapshot-heads"


def _read_saved(path: Path) -> dict[str, Head]:
    """The heads saved at `path`; none if it is missing or not what this module writes."""
    try:
        doc = json.loads(path.read_bytes())
        if doc.get("format") != _SAVED_FORMAT:
            return {}
        heads = {key: Head(tag, created, key) for key, (tag, created) in doc["heads"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # a missing or damaged cache: the objects are read instead
    ok = all(isinstance(h.tag, str) and isinstance(h.created_ns, int) for h in heads.values())
    return heads if ok else {}


def _save(path: Path, heads: dict[str, Head]) -> None:
    """Write the heads whole (a temp file renamed over the old one); a cache that
    cannot be written is only a slower next question."""
    doc = {"format": _SAVED_FORMAT, "heads": {k: [h.tag, h.created_ns] for k, h in heads.items()}}
    name = ""
    try:
        name, fd = new_temp_file(str(path.parent), f".{path.name}.", ".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, separators=(",", ":"))
        os.replace(name, path)
    except OSError as exc:
        if name:
            Path(name).unlink(missing_ok=True)
        log.info("could not save snapshot heads to %s: %s", path, exc)
