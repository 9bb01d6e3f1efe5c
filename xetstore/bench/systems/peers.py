"""Peers run through their command lines: restic, borg, casync.

Each is configured as close to xetstore's defaults as the tool allows, and the
configuration is printed with the results:

- restic: repository format 2, `--compression auto` (zstd, klauspost's default
  level, about zstd 3); `restic-max` uses `--compression max` (klauspost's best
  level, slowest). Encryption cannot be turned off in restic; its cost is
  a 32-byte MAC+IV per blob. Rabin chunks 512 KiB-8 MiB (avg 1 MiB), fixed.
  `--force` re-reads every file; the cache lives in the run's folder.
- borg: `--encryption=none`, `--compression zstd,3`, `--files-cache=disabled`
  (every file read). `borg` keeps its default buzhash chunker (2^19-2^23,
  avg 2 MiB); `borg-64k` uses `buzhash,14,18,16,4095` (16 KiB-256 KiB, avg
  64 KiB), the closest to xetstore's chunk size.
- casync: default chunks (16 KiB/64 KiB/256 KiB), zstd at casync's built-in
  level, sha512-256, one `.caidx` per version beside the chunk directory;
  metadata limited to permissions and symlinks (`--without=all`), since
  timestamps inside its stream would defeat dedup of unchanged files.
Each version is added from inside its folder (`.`), so every tool stores the
same relative paths and none can skip a file as unchanged.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from .base import System, SystemError_, disk_bytes, run_tool, tree_bytes, which

__all__ = ["Restic", "Borg", "Casync"]


class _Tool(System):
    tool = ""
    in_process = False

    def missing(self) -> str | None:
        return None if which(self.tool) else f"{self.tool} is not installed (not on PATH)"

    def version(self) -> str:
        out = run_tool([self.tool, "--version"] if self.tool != "restic" else ["restic", "version"])
        return out.strip().splitlines()[0] if out.strip() else ""


class Restic(_Tool):
    tool = "restic"

    def __init__(self, compression: str = "auto") -> None:
        self.compression = compression
        self.name = "restic" if compression == "auto" else f"restic-{compression}"
        self.description = f"restic: format 2, --compression {compression} (zstd), encryption on (cannot be disabled)"

    def setup(self, workdir: Path) -> None:
        self.repo, self.cache = workdir / "repo", workdir / "cache"
        self.env = {"RESTIC_PASSWORD": "benchmark", "RESTIC_REPOSITORY": str(self.repo), "RESTIC_CACHE_DIR": str(self.cache)}
        self.snapshots: dict[str, str] = {}
        run_tool(["restic", "init", "--repository-version", "2", "-q"], env=self.env)

    def add_version(self, source: Path, label: str) -> None:
        out = run_tool(["restic", "backup", ".", "--force", "--compression", self.compression, "--host", "bench",
                        "--tag", label, "--json", "-q"], cwd=source, env=self.env)  # fmt: skip
        summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line]
        if not summary:
            raise SystemError_(f"restic backup of {label} printed no summary")
        self.snapshots[label] = summary[-1]["snapshot_id"]

    def restore(self, label: str, dest: Path) -> None:
        run_tool(["restic", "restore", self.snapshots[label], "--target", str(dest), "-q"], env=self.env)

    def stored_bytes(self) -> int:
        return tree_bytes(self.repo)

    def cache_bytes(self) -> int:
        return disk_bytes(self.cache)

    def unique_bytes(self) -> int:
        """Plain bytes of the distinct data blobs, from the repository's index files."""
        sizes: dict[str, int] = {}
        for ident in run_tool(["restic", "list", "index", "-q"], env=self.env).split():
            index = json.loads(run_tool(["restic", "cat", "index", ident, "-q"], env=self.env))
            for pack in index.get("packs", []):
                for blob in pack["blobs"]:
                    if blob["type"] == "data":  # uncompressed blobs carry a 32-byte IV + MAC
                        sizes[blob["id"]] = blob.get("uncompressed_length", blob["length"] - 32)
        return sum(sizes.values())


class Borg(_Tool):
    tool = "borg"

    def __init__(self, chunker_params: str | None = None) -> None:
        self.chunker_params = chunker_params
        self.name = "borg" if chunker_params is None else "borg-64k"
        chunks = "default buzhash chunks (avg 2 MiB)" if chunker_params is None else f"--chunker-params {chunker_params}"
        self.description = f"borg: --encryption=none, --compression zstd,3, {chunks}"

    def setup(self, workdir: Path) -> None:
        self.repo, self.base = workdir / "repo", workdir / "borg-base"
        self.env = {
            "BORG_BASE_DIR": str(self.base),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }
        run_tool(["borg", "init", "--encryption=none", str(self.repo)], env=self.env)

    def add_version(self, source: Path, label: str) -> None:
        args = ["borg", "create", "--compression", "zstd,3", "--files-cache=disabled"]
        if self.chunker_params:
            args += ["--chunker-params", self.chunker_params]
        run_tool([*args, f"{self.repo}::{label}", "."], cwd=source, env=self.env)

    def restore(self, label: str, dest: Path) -> None:
        run_tool(["borg", "extract", f"{self.repo}::{label}"], cwd=dest, env=self.env)

    def stored_bytes(self) -> int:
        return tree_bytes(self.repo)

    def cache_bytes(self) -> int:
        return disk_bytes(self.base)

    def unique_bytes(self) -> int:
        info = json.loads(run_tool(["borg", "info", "--json", str(self.repo)], env=self.env))
        return int(info["cache"]["stats"]["unique_size"])


class Casync(_Tool):
    name = "casync"
    tool = "casync"
    description = "casync: chunks 16/64/256 KiB, zstd, --without=all --with=permissions,symlinks"

    def setup(self, workdir: Path) -> None:
        self.root = workdir / "repo"
        self.store = self.root / "default.castr"
        self.root.mkdir(parents=True)

    def add_version(self, source: Path, label: str) -> None:
        run_tool(["casync", "make", *_CASYNC_META, f"--store={self.store}", str(self.root / f"{label}.caidx"), str(source)])

    def restore(self, label: str, dest: Path) -> None:
        os.rmdir(dest)  # casync extract creates the folder itself
        run_tool(["casync", "extract", *_CASYNC_META, f"--store={self.store}", str(self.root / f"{label}.caidx"), str(dest)])

    def stored_bytes(self) -> int:
        return tree_bytes(self.root)

    def unique_bytes(self) -> int:
        """Plain bytes of the distinct chunks, read from the .caidx chunk tables."""
        sizes: dict[bytes, int] = {}
        for index in self.root.glob("*.caidx"):
            for chunk_id, size in _caidx_chunks(index.read_bytes(), index.name):
                sizes[chunk_id] = size
        return sum(sizes.values())


# Permissions and symlinks only: casync interleaves metadata with file bytes in
# one stream, and its default (nanosecond mtimes, owners) makes every version
# of an unchanged file differ; the other systems dedup content regardless.
_CASYNC_META = ("--without=all", "--with=permissions", "--with=symlinks")
_CAIDX_HEAD = 48 + 16  # index header, table header
_CAIDX_TAIL = 40


def _caidx_chunks(data: bytes, what: str) -> list[tuple[bytes, int]]:
    """(chunk id, plain size) per table entry: u64 end offset + 32-byte id each."""
    body = len(data) - _CAIDX_HEAD - _CAIDX_TAIL
    if body < 0 or body % 40 or data[:8] != struct.pack("<Q", 48):
        raise SystemError_(f"{what} is not a casync index this benchmark can read")
    out, start = [], 0
    for pos in range(_CAIDX_HEAD, _CAIDX_HEAD + body, 40):
        (end,) = struct.unpack_from("<Q", data, pos)
        out.append((data[pos + 8 : pos + 40], end - start))
        start = end
    return out
