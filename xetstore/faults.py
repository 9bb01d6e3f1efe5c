"""Named fault points for crash tests: `XETSTORE_FAULTPOINT=NAME:ACTION`.

ACTION is `kill` (SIGKILL this process), `raise` (an OSError), `enospc` (an
OSError with ENOSPC) or `sleep=SECONDS`, optionally followed by `@N` to act
only on the N-th time the point is reached in this process (`kill@3`).
Several points may be given, comma separated. With the variable unset a
fault point costs one dict lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import time

__all__ = ["fault_point", "FAULT_POINTS"]

# Every point the code calls, so tests can iterate over them.
FAULT_POINTS = (
    "packing.mid_xorb",  # a xorb is partly written to its spool file
    "clean.before_xorb",  # a xorb is sealed and spooled, not yet published
    "folder.mid_write",  # half of an object is in a folder backend's temp file
    "clean.after_xorb",  # a xorb is durable, no shard refers to it yet
    "repository.after_xorbs",  # all of an add's xorbs are durable, its shard not published (a folder holds it as a temp)
    "repository.after_shard",  # the shard is durable, the local index has not merged it
    "repository.after_index",  # the add is committed, not yet acknowledged
    "rm.after_record",  # a deletion record is durable, the local index has not merged it
    "gc.after_mark",  # gc has planned, written nothing
    "gc.after_repack_xorb",  # a repacked xorb is durable
    "gc.after_repack_shard",  # the replacing shard is durable, nothing deleted
    "gc.during_sweep",  # one replaced shard deleted
    "gc.after_shard_sweep",  # replaced shards deleted, their xorbs not yet
    "repair.after_delete",  # a damaged xorb is set aside and deleted, its rewrite not yet in place
    "index.rebuild",  # a rebuild filled its new directory, not yet swapped in
    "compact.before_xorb",  # a xorb's new layout is spooled, not yet published
    "compact.after_xorb",  # a new layout is durable, no shard describes it yet
    "compact.after_shard",  # the shard describing new layouts is durable, the index has not merged it
)


def fault_point(name: str) -> None:
    """Act on `name` if the environment asks for it."""
    spec = os.environ.get("XETSTORE_FAULTPOINT")
    if not spec:
        return
    for item in spec.split(","):
        point, _, action = item.partition(":")
        if point.strip() != name:
            continue
        action, _, nth = action.strip().partition("@")
        _hits[name] = _hits.get(name, 0) + 1
        if not nth or (nth.isdigit() and int(nth) == _hits[name]):
            _act(name, action)


_hits: dict[str, int] = {}  # how often each point was reached, for `@N`


def _act(name: str, action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise OSError(errno.EIO, f"injected fault at {name}")
    elif action == "enospc":
        raise OSError(errno.ENOSPC, f"injected disk full at {name}")
    elif action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))

