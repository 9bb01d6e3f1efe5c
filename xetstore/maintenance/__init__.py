"""Maintenance: what a repository holds, and keeping it whole (check, gc, repair, reindex).

Modules, each importing only those before it (tests/test_layers.py checks the
order): binding, leases, objects, deletes, inventory, reindex, repack, sweep,
check, gc, repair, reframe, compact. gc and repair both drive sweep's mechanics (inventory →
plan → rewrite → sweep); deletion records are read and written in deletes.

The names are loaded on first use: a process that opens a repository to list or
read files (the CLI, each git-lfs agent) needs leases and the index sync only,
not check, gc or repair.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .check import CheckReport, check_repository
    from .compact import CompactReport, compact_repository
    from .gc import GcOptions, collect_garbage, remove_files
    from .leases import Lease, SessionLease, check_before_publish
    from .objects import read_xorb_footer
    from .reindex import RebuildReport, open_index, rebuild_index, sync_index
    from .repair import ShardRepair, XorbRepair, repair_shards, repair_xorbs
    from .sweep import GcReport

# Exported name -> the module of this package that defines it.
_HOMES = {
    "CheckReport": "check", "check_repository": "check",
    "CompactReport": "compact", "compact_repository": "compact",
    "GcOptions": "gc", "GcReport": "sweep", "collect_garbage": "gc", "remove_files": "gc",
    "read_xorb_footer": "objects",
    "Lease": "leases", "SessionLease": "leases", "check_before_publish": "leases",
    "RebuildReport": "reindex", "open_index": "reindex", "rebuild_index": "reindex", "sync_index": "reindex",
    "ShardRepair": "repair", "XorbRepair": "repair", "repair_shards": "repair", "repair_xorbs": "repair",
}  # fmt: skip

__all__ = [
    "CheckReport",
    "CompactReport",
    "GcOptions",
    "GcReport",
    "Lease",
    "RebuildReport",
    "SessionLease",
    "ShardRepair",
    "XorbRepair",
    "check_before_publish",
    "check_repository",
    "collect_garbage",
    "compact_repository",
    "open_index",
    "read_xorb_footer",
    "rebuild_index",
    "remove_files",
    "repair_shards",
    "repair_xorbs",
    "sync_index",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
