"""Progress bars on stderr (tqdm), off when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


class _NoBar:
    """What a disabled bar is: nothing to draw, so tqdm is not even imported
    (it costs a fresh process ~25 ms, and scripts and git-lfs never see a bar)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass


def progress_bar(total: int, desc: str, disable: bool = False) -> Any:
    """A byte-counting bar; use as a context manager and call `.update(n)`."""
    if disable or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
        file=sys.stderr, disable=disable or not sys.stderr.isatty(), leave=False,
    )  # fmt: skip
