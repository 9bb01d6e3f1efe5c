"""The systems a benchmark compares, by name.

Baselines (whole-file, fixed blocks), xetstore in several configurations, and
peers (restic, borg, casync, hf_xet) that run only where they are installed;
`xetstore-cli` and `hf_xet-proc` run every add and restore as a fresh process, and
`xetstore-git` and `git-lfs` push each version with git and restore with `git clone`.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import System, SystemError_, tree_files
from .git import GitLfs, XetstoreGit
from .hfxet import HfXet
from .local import FixedBlocks, WholeFile
from .peers import Borg, Casync, Restic
from .processes import HfXetProcess, XetstoreCli
from .xetstore_repo import XetstoreSystem, parse_xetstore_name

__all__ = [
    "System",
    "SystemError_",
    "DEFAULT_SYSTEMS",
    "EXPLORE_SYSTEMS",
    "make_system",
    "tree_files",
    "XetstoreSystem",
]

DEFAULT_SYSTEMS = (
    "whole-file",
    "fixed-64k-zstd",
    "xetstore-fastcdc-none",
    "xetstore-fastcdc-zstd",
    "xetstore-fastcdc-zstd-c9",
    "xetstore-fastcdc-zstd-f0",
    "xetstore-delta",
    "xetstore-xet-none",
    "xetstore-xet-zstd",
    "xetstore-xet-zstd-f0",
    "restic",
    "restic-max",
    "borg",
    "borg-64k",
    "casync",
    "hf_xet",
    "xetstore-cli",
    "hf_xet-proc",
    "xetstore-git",
    "git-lfs",
)

# Frame size and level candidates for the repository default (`--explore`).
EXPLORE_SYSTEMS = (
    "xetstore-fastcdc-zstd-f4096",
    "xetstore-fastcdc-zstd-f16384",
    "xetstore-fastcdc-zstd-l1",
    "xetstore-fastcdc-zstd-l9",
    "xetstore-fastcdc-zstd-f4096-l9",
)

_BORG_64K = "buzhash,14,18,16,4095"


def make_system(name: str) -> System:
    """A fresh, not yet set up system for a name; ValueError for an unknown name."""
    fixed: dict[str, Callable[[], System]] = {
        "whole-file": WholeFile,
        "fixed-64k-zstd": FixedBlocks,
        "restic": Restic,
        "restic-max": lambda: Restic("max"),
        "borg": Borg,
        "borg-64k": lambda: Borg(_BORG_64K),
        "casync": Casync,
        "hf_xet": HfXet,
        "xetstore-cli": XetstoreCli,
        "hf_xet-proc": HfXetProcess,
        "xetstore-git": XetstoreGit,
        "git-lfs": GitLfs,
    }
    if name in fixed:
        return fixed[name]()
    system = parse_xetstore_name(name)
    if system is None:
        raise ValueError(
            f"unknown system {name!r}; choose from {', '.join(DEFAULT_SYSTEMS)} "
            "or xetstore-<fastcdc|xet>-<none|zstd>[-f<KiB>][-l<level>][-c<compact level>]"
        )
    return system
