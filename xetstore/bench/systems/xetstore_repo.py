"""xetstore itself, through the public Repository API, in several configurations.

Names read `xetstore-<chunker>-<compression>[-f<KiB>][-l<level>][-c<level>]`:
`xetstore-fastcdc-zstd` is the repository default (zstd level 3 over frames of
about 1 MiB of consecutive new chunks); `-f0` compresses every chunk alone
(the layout before frames); `-f4096` uses 4 MiB frames; `-l9` another zstd
level; `-none` stores chunks raw; `-c9` runs `compact` at level 9 after the
last version, then the gc that removes the layouts it replaced (timed apart,
as `background`). Each version is one `add_files` session.
`xetstore-delta` is the default in a repository with delta chunks on: each
version is a tagged add of its top-level entries, so every file's earlier
version is the file at its path in the version before (else one of its size).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ... import Repository, XetStoreError
from ...hashing import xet_hex
from ...params import DEFAULT_FRAME_BYTES
from .base import System, disk_bytes, tree_bytes, tree_files

__all__ = ["XetstoreSystem", "parse_xetstore_name", "xet_chunker_missing"]

_NAME = re.compile(r"^xetstore-(fastcdc|xet)-(none|zstd)(?:-f(\d+))?(?:-l(\d+))?(?:-c(\d+))?$")


def xet_chunker_missing() -> str | None:
    """Why the `xet` chunker cannot be used here, or None."""
    from ...chunking import make_chunker

    try:
        make_chunker("xet")
    except (ImportError, XetStoreError) as exc:
        return f"the xet chunker is not available in this xetstore ({type(exc).__name__}: {exc})"
    return None


def parse_xetstore_name(name: str) -> XetstoreSystem | None:
    if name == "xetstore-delta":
        return XetstoreSystem(name, "fastcdc", "zstd", DEFAULT_FRAME_BYTES, 3, delta=True)
    m = _NAME.match(name)
    if m is None:
        return None
    frame = DEFAULT_FRAME_BYTES if m.group(3) is None else int(m.group(3)) * 1024
    level = 3 if m.group(4) is None else int(m.group(4))
    compact = None if m.group(5) is None else int(m.group(5))
    return XetstoreSystem(name, m.group(1), m.group(2), frame, level, compact_level=compact)


class XetstoreSystem(System):
    def __init__(
        self, name: str, chunker: str, compression: str, frame_bytes: int, level: int, delta: bool = False,
        compact_level: int | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.delta = delta
        self.compact_level = compact_level
        self.chunker = chunker
        self.compression = compression
        self.frame_bytes = frame_bytes
        self.level = level
        if compression == "none":
            self.description = f"{chunker} chunks, no compression"
        elif frame_bytes == 0:
            self.description = f"{chunker} chunks, zstd level {level} per chunk"
        else:
            self.description = f"{chunker} chunks, zstd level {level} over {frame_bytes // 1024} KiB frames"
        if delta:
            self.description += ", delta chunks against the version before"
        if compact_level is not None:
            self.description += f"; then `compact` at level {compact_level} and gc"
        self.repo: Repository | None = None

    def missing(self) -> str | None:
        return xet_chunker_missing() if self.chunker == "xet" else None

    def version(self) -> str:
        from ... import __version__

        return __version__

    def setup(self, workdir: Path) -> None:
        self.root = workdir / "repo"
        self.cache = workdir / "cache"
        self.versions = workdir / "repo-versions"
        self.versions.mkdir(parents=True)
        self.repo = Repository.init(
            str(self.root), chunker=self.chunker, compression=self.compression,
            zstd_level=self.level, frame_bytes=self.frame_bytes, cache_dir=self.cache, delta=self.delta,
        )  # fmt: skip

    def add_version(self, source: Path, label: str) -> None:
        assert self.repo is not None
        if self.delta:  # snapshot paths are relative to `source`, the same in every version
            made = self.repo.add_snapshot(sorted(source.iterdir()), label)
            listing = [[e.path, xet_hex(e.file_hash)] for e in made.snapshot.files()]
        else:
            rels = tree_files(source)
            results = self.repo.add_files([source / rel for rel in rels])
            listing = [[rel.as_posix(), res.file_hash] for rel, res in zip(rels, results)]
        (self.versions / f"{label}.json").write_text(json.dumps(listing))

    def background(self) -> bool:
        if self.compact_level is None:
            return False
        assert self.repo is not None
        self.repo.compact(self.compact_level)
        self.repo.gc(grace=0.0)  # the replaced layouts go, as gc removes them after the grace period
        return True

    def restore(self, label: str, dest: Path) -> None:
        assert self.repo is not None
        for rel, file_hash in json.loads((self.versions / f"{label}.json").read_text()):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            self.repo.read_file(file_hash, dest / rel)

    def stored_bytes(self) -> int:
        return tree_bytes(self.root) + tree_bytes(self.versions)

    def cache_bytes(self) -> int:
        return disk_bytes(self.cache)

    def unique_bytes(self) -> int:
        assert self.repo is not None
        return self.repo.stats().unique_bytes

    def close(self) -> None:
        if self.repo is not None:
            self.repo.close()
            self.repo = None
