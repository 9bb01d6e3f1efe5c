"""What a user may call a stored file: the names `get` and `Repository.resolve` accept."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from .errors import AmbiguousName, FileNotInRepository, SnapshotNotFound
from .hashing import xet_hex

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["resolve_name"]

_HEX = "0123456789abcdef"
_HINT = "name a file by its file hash or sha256 (64 hex digits, as `xetstore ls` prints), a unique prefix of either, or TAG:PATH"


class _Listed(Protocol):  # what resolve_name reads of a FileInfo (structural: no import of repository)
    @property
    def file_hash(self) -> str: ...

    @property
    def sha256(self) -> str: ...


def resolve_name(
    name: str,
    files: Callable[[], Iterable[_Listed]],
    snapshot: Callable[[str], Snapshot],
    exact: Callable[[str], str | None] = lambda text: None,
) -> str:
    """The file hash of the one file `name` names: TAG:PATH, or a file hash or sha256 or a
    prefix of either. `exact` looks up a whole hash at once (no scan of every file).
    Raises NotFound, or AmbiguousName listing the candidates."""
    if ":" in name:  # tags cannot contain ':' (snapshot.py)
        from .snapshot import FILE  # here: naming by hash, the common case, needs no snapshot code

        tag, _, path = name.partition(":")
        entry = snapshot(tag).entry(path.strip("/"))
        if entry is None or entry.kind != FILE:
            raise SnapshotNotFound(tag, [], path)
        return xet_hex(entry.file_hash)
    text = name.lower()
    if not 0 < len(text) <= 64 or text.strip(_HEX):
        raise FileNotInRepository(name, _HINT)
    if len(text) == 64 and (hit := exact(text)) is not None:
        return hit
    found = {f.file_hash for f in files() if f.file_hash.startswith(text) or f.sha256.startswith(text)}
    if len(found) > 1:
        raise AmbiguousName(name, sorted(found))
    if not found:
        raise FileNotInRepository(name, "no stored file hash or sha256 starts with it; run `xetstore ls`")
    return found.pop()
