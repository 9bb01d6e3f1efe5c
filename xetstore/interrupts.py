"""SIGTERM ends a command the way Ctrl-C does.

The default action of SIGTERM kills the process on the spot: its writer lease
stays on the backend (other hosts' gc refuses to sweep until it expires) and
its xorb spool stays on disk. Raised as KeyboardInterrupt instead, it unwinds
through the same `with` blocks as Ctrl-C, which release both.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["terminate_as_interrupt"]


def terminate_as_interrupt() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread."""
    if threading.current_thread() is threading.main_thread():  # signal() works only there
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
