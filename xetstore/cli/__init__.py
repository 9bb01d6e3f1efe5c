"""The `xetstore` command line: the group and its options live in commands.py (with the file
commands), maintenance.py and snapshots.py add theirs, and this is the one place that loads
them all onto the group. Each module imports only commands.py, so there is no cycle.
"""

from __future__ import annotations

from ..bench.cli import bench  # heavy imports wait until the command runs
from . import maintenance, snapshots  # noqa: F401  (their commands register on `cli` as they load)
from .commands import cli, main

cli.add_command(bench)

__all__ = ["cli", "main"]
