"""Progress bars on stderr (tqdm), off when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, disable: bool = False) -> Any:
    """A byte-counting bar; use as a context manager and call `.update(n)`."""
    return tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
        file=sys.stderr, disable=disable or not sys.stderr.isatty(), leave=False,
    )  # fmt: skip
