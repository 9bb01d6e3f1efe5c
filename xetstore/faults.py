"""Named fault points for crash tests: `XETSTORE_FAULTPOINT=NAME:ACTION`.

ACTION is `kill` (SIGKILL this process), `raise` (an OSError), `enospc` (an
OSError with ENOSPC) or `sleep=SECONDS`. Several points may be given, comma
separated. With the variable unset a fault point costs one dict lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import time

__all__ = ["fault_point", "FAULT_POINTS"]

# Every point the code calls, so tests can iterate over them.
FAULT_POINTS = (
    "clean.before_xorb",
    "clean.after_xorb",
    "repository.after_xorbs",
    "repository.after_shard",
    "repository.after_index",
    "gc.after_mark",
    "gc.during_sweep",
    "gc.after_repack_xorb",
    "gc.after_repack_shard",
)


def fault_point(name: str) -> None:
    """Act on `name` if the environment asks for it."""
    spec = os.environ.get("XETSTORE_FAULTPOINT")
    if not spec:
        return
    for item in spec.split(","):
        point, _, action = item.partition(":")
        if point.strip() == name:
            _act(name, action.strip())


def _act(name: str, action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise OSError(errno.EIO, f"injected fault at {name}")
    elif action == "enospc":
        raise OSError(errno.ENOSPC, f"injected disk full at {name}")
    elif action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))

