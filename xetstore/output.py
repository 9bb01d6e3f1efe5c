"""How every command prints: human lines, or one JSON object per line with a `type`."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .display import json_safe
from .progress import progress_bar

__all__ = ["Output", "common_options", "human_size", "count"]

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int) -> str:
    """`812 B`, `1.5 MiB`: binary units, three significant digits."""
    size, unit = float(n), 0
    while abs(size) >= 1024 and unit < len(_UNITS) - 1:
        size, unit = size / 1024, unit + 1
    if unit == 0:
        return f"{n} B"
    return f"{size:.3g} {_UNITS[unit]}" if size < 100 else f"{size:.0f} {_UNITS[unit]}"


def count(n: int, noun: str) -> str:
    """`1 file`, `2 files` (nouns with a plain -s plural)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Output:
    """Where a command's results go: human lines or JSON lines on stdout."""

    def __init__(self, as_json: bool, quiet: bool) -> None:
        self.json = as_json
        self.quiet = quiet

    def emit(self, kind: str, text: str, **fields: Any) -> None:
        if self.json:
            import json  # only under --json: ~2 ms of every start otherwise

            click.echo(json.dumps({"type": kind, **json_safe(fields)}))
        elif text:
            click.echo(text)

    def header(self, text: str) -> None:
        """A table header: for people only, so JSON lines stay one object per result."""
        if not self.json:
            click.echo(text)

    def note(self, text: str) -> None:
        """A remark for people (stderr); under --json a `note` object on stdout."""
        if self.json:
            import json

            click.echo(json.dumps({"type": "note", "message": text}))
        else:
            click.echo(f"note: {text}", err=True)

    def progress(self, total: int, desc: str) -> Any:
        return progress_bar(total, desc, disable=self.quiet or self.json)


def common_options(fn: F) -> F:
    """--json, -q and --debug on a command; passes `out: Output` to it."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
    @click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
    @click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
    @functools.wraps(fn)
    def wrapper(as_json: bool, quiet: bool, debug: bool, **kwargs: Any) -> Any:
        if debug:
            os.environ["XETSTORE_DEBUG"] = "1"
        return fn(out=Output(as_json, quiet), **kwargs)

    return wrapper  # type: ignore[return-value]
