"""What a command's start costs besides its work: the cyclic collector during imports."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["importing"]


@contextmanager
def importing() -> Iterator[None]:
    """The collector off while modules load. Imports make tens of thousands of objects
    and no garbage, and the collections they trigger walk them all as they come: an
    `xetstore add` of one small file starts 1.5 ms sooner without (74.8 -> 73.3 ms,
    medians of 60)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
