"""The `xetstore` command line: the group and its options live in commands.py (with the file
commands); maintenance.py and snapshots.py add theirs, and so do the bench and the lfs
commands. The group loads each of those modules when one of its commands is named
(commands.py's ELSEWHERE); each imports only commands.py, so there is no cycle.
"""

from __future__ import annotations

from .startup import importing

with importing():
    from .commands import cli, main

__all__ = ["cli", "main"]
