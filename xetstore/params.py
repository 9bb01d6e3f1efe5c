"""Tunables and format limits: the only place numbers that shape data are chosen."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from .errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MIN_CHUNK",
    "AVG_CHUNK",
    "MAX_CHUNK",
    "MAX_XORB_BYTES",
    "MAX_XORB_CHUNKS",
    "FORMAT_VERSION",
    "CHUNKERS",
    "COMPRESSIONS",
    "DEFAULT_FRAME_BYTES",
    "DEFAULT_GRACE",
    "READ_BLOCK",
    "BG4_ZSTD_LEVEL",
    "COMPACT_LEVEL",
    "COMPACT_FRAME_BYTES",
    "CALL_FILTER_FROM",
    "RepositoryParams",
    "default_cache_root",
]

# Chunk sizes shared by both chunkers (Xet's constants).
MIN_CHUNK = 8 * 1024
AVG_CHUNK = 64 * 1024
MAX_CHUNK = 128 * 1024

# Xorb limits (Xet's): a xorb is cut before a chunk that would exceed either.
MAX_XORB_BYTES = 64 * 1024 * 1024
MAX_XORB_CHUNKS = 8192
# A record's payload size is a u24 (docs/format.md §6.1): a frame whose compressed bytes
# would not fit (a 16 MiB frame that barely compresses) is stored as raw chunks.
MAX_PAYLOAD = (1 << 24) - 1

FORMAT_VERSION = 1
CHUNKERS = ("fastcdc", "xet")
COMPRESSIONS = ("none", "zstd")

# Consecutive new chunks are compressed together in frames of about this many
# uncompressed bytes: a 64 KiB chunk alone is too small a compression window.
DEFAULT_FRAME_BYTES = 1024 * 1024

# zstd level for byte-grouped (float-like) frames, whatever the repository's level:
# on bf16/f32 tensors level 1 stored 3.6 % less than level 3, 50 % faster
# (the grouped mantissa bytes are near-random; longer match searches only cost).
BG4_ZSTD_LEVEL = 1

# zstd level `compact` recompresses frames at (docs/format.md §6.8): on the bench's
# binaries 6-8 % smaller than level 3 at 50-85 MB/s a core (level 19: 13-17 %, 3-6 MB/s).
COMPACT_LEVEL = 9
# Plain bytes `compact` joins consecutive zstd frames up to: a larger window stores a
# tree of similar files smaller (seven numpy releases at level 9, against 1 MiB frames:
# 2 MiB -8 %, 4 MiB -15 %), but a read decodes up to one such frame per end of its
# range (restoring the bench's last release: 2 MiB -8 %, 4 MiB -25 %).
COMPACT_FRAME_BYTES = 2 * 1024 * 1024
# Files from this size on may have their frames of machine code call-filtered by `compact`
# (docs/format.md §6.9). Reading a filtered frame imports numpy (~85 ms) and costs 0.5-1.5 ms
# a MiB more (2 MiB frames of libtorch_cpu), against ~4 ms a MiB to restore: numpy's 45 MB of libraries (none over 22 MB)
# restored 1.8x slower filtered, for 3 % fewer bytes; torch's libraries, 1.9x faster
# than hf_xet still. From 64 MiB on, torch's 34 and 44 MB libraries were left out
# (+2.4 MB stored).
CALL_FILTER_FROM = 32 * 1024 * 1024

# Seconds an unreferenced object must have existed before gc removes it (a writer
# may still be about to reference it). Here, not in gc.py, so that the CLI and
# Repository name the default without importing gc.
DEFAULT_GRACE = 24 * 3600.0

# Size of one read from an input file while cleaning it. Two such buffers alternate;
# at 2 MiB they stay in the CPU caches while fastcdc, blake3 and sha256 each pass
# over them, and a fresh process faults in 4 MiB of them rather than 16: adding a
# 20 MB version took ~8-16 ms less per process than with 8 MiB (1 and 4 MiB: no better).
READ_BLOCK = 2 * 1024 * 1024


class _ParamsFields(NamedTuple):
    chunker: str
    compression: str
    zstd_level: int
    frame_bytes: int
    # Delta chunks (docs/format.md §6.7): off by default, and for `xet` repositories,
    # whose xorbs Xet's own clients must read, unless asked for.
    delta: bool


class RepositoryParams(_ParamsFields):
    """What a repository's `config` fixes for every later add; checked when made.

    A named tuple, not a dataclass: `import dataclasses` (with inspect, ast and dis)
    was ~8 ms of every process that opens a repository without the CLI (a restore
    script, each git-lfs agent), and each frozen dataclass ~0.5 ms more.
    """

    __slots__ = ()

    def __new__(
        cls,
        chunker: str = "fastcdc",
        compression: str = "zstd",
        zstd_level: int = 3,
        frame_bytes: int = DEFAULT_FRAME_BYTES,
        delta: bool = False,
    ) -> RepositoryParams:
        if chunker not in CHUNKERS:
            raise ConfigError(f"unknown chunker {chunker!r}; choose one of {', '.join(CHUNKERS)}")
        if compression not in COMPRESSIONS:
            raise ConfigError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
        if not 1 <= zstd_level <= 22:
            raise ConfigError(f"zstd level must be 1..22, not {zstd_level}")
        if not 0 <= frame_bytes <= 16 * 1024 * 1024:
            raise ConfigError(f"frame_bytes must be 0..16 MiB, not {frame_bytes}")
        return super().__new__(cls, chunker, compression, zstd_level, frame_bytes, delta)


def default_cache_root() -> Path:
    """Where per-repository caches live: $XETSTORE_CACHE, else the XDG cache dir."""
    from pathlib import Path  # pathlib (with urllib.parse) costs ~3 ms of every start

    explicit = os.environ.get("XETSTORE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "xetstore"
