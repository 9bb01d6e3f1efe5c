"""Baselines measured in-process: whole-file dedup and fixed-size blocks.

- `whole-file`: what plain git-lfs keeps: each distinct file once, named by its
  sha256, uncompressed. A version is a JSON list of (path, sha256). Only
  byte-identical files dedup.
- `fixed-64k-zstd`: files cut at every 64 KiB; each distinct block (sha256)
  stored once, compressed alone with zstd level 3 (kept raw when that does not
  shrink it) in one append-only pack with a 45-byte-per-block index. An
  insertion shifts every later block, so this shows what content-defined
  chunking buys. Uses xetstore's own zstd function so the codec is the same.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

from ...compression import Scheme, compress_frame, decompress_frame
from .base import System, SystemError_, sha256_file, tree_bytes, tree_files

__all__ = ["WholeFile", "FixedBlocks"]

_BLOCK = 64 * 1024


class WholeFile(System):
    name = "whole-file"
    description = "git-lfs style: whole files named by sha256, no compression"

    def setup(self, workdir: Path) -> None:
        self.root = workdir / "repo"
        (self.root / "objects").mkdir(parents=True)
        (self.root / "versions").mkdir()

    def add_version(self, source: Path, label: str) -> None:
        listing = []
        for rel in tree_files(source):
            digest = sha256_file(source / rel)
            obj = self.root / "objects" / digest
            if not obj.exists():
                shutil.copyfile(source / rel, obj)
            listing.append([rel.as_posix(), digest])
        (self.root / "versions" / f"{label}.json").write_text(json.dumps(listing))

    def restore(self, label: str, dest: Path) -> None:
        for rel, digest in json.loads((self.root / "versions" / f"{label}.json").read_text()):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / "objects" / digest, dest / rel)

    def stored_bytes(self) -> int:
        return tree_bytes(self.root)

    def unique_bytes(self) -> int:
        return tree_bytes(self.root / "objects")


class FixedBlocks(System):
    name = "fixed-64k-zstd"
    description = "64 KiB fixed blocks, sha256 dedup, zstd level 3 per block"

    def __init__(self, level: int = 3) -> None:
        self.level = level
        self._blocks: dict[bytes, int] = {}  # sha256 -> block number
        self._where: list[tuple[int, int, int, int]] = []  # (offset, length, scheme, size)
        self._unique = 0

    def setup(self, workdir: Path) -> None:
        self.root = workdir / "repo"
        (self.root / "versions").mkdir(parents=True)
        self._pack = open(self.root / "pack", "wb+")  # noqa: SIM115 (held until close())
        self._index = open(self.root / "index", "wb")  # noqa: SIM115 (held until close())

    def add_version(self, source: Path, label: str) -> None:
        listing = []
        for rel in tree_files(source):
            with open(source / rel, "rb") as f:
                numbers = [self._put(block) for block in iter(lambda: f.read(_BLOCK), b"")]
            listing.append([rel.as_posix(), numbers])
        self._pack.flush()
        self._index.flush()
        (self.root / "versions" / f"{label}.json").write_text(json.dumps(listing))

    def _put(self, block: bytes) -> int:
        digest = hashlib.sha256(block).digest()
        known = self._blocks.get(digest)
        if known is not None:
            return known
        scheme, payload = compress_frame(block, self.level, bg4=False)
        if scheme == Scheme.NONE:
            payload = block
        offset = self._pack.seek(0, 2)
        self._pack.write(payload)
        self._where.append((offset, len(payload), int(scheme), len(block)))
        self._index.write(digest + struct.pack("<QIB", offset, len(payload), int(scheme)))
        self._blocks[digest] = len(self._where) - 1
        self._unique += len(block)
        return len(self._where) - 1

    def restore(self, label: str, dest: Path) -> None:
        for rel, numbers in json.loads((self.root / "versions" / f"{label}.json").read_text()):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(dest / rel, "wb") as out:
                for n in numbers:
                    offset, length, scheme, size = self._where[n]
                    self._pack.seek(offset)
                    payload = self._pack.read(length)
                    if len(payload) != length:
                        raise SystemError_(f"pack is truncated at block {n}")
                    out.write(decompress_frame(scheme, payload, size, f"block {n}"))

    def stored_bytes(self) -> int:
        return tree_bytes(self.root)

    def unique_bytes(self) -> int:
        return self._unique

    def close(self) -> None:
        for f in (getattr(self, "_pack", None), getattr(self, "_index", None)):
            if f is not None:
                f.close()
