"""The `xetstore` command: parse, call Repository, print. Nothing else lives here.

Every command takes --json (one JSON object per line, each with a `type`),
-q (no progress bars) and --debug (tracebacks). Exit codes: 0 ok, 1 failure,
2 usage, 3 damaged data, 10 not found, 11 locked, 12 access denied, 130
interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .display import json_safe, shown
from .inputs import expand_inputs, open_input
from .interrupts import terminate_as_interrupt
from .intake import hash_stream
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, IntegrityError, XetStoreError
from .lfs.commands import lfs
from .params import CHUNKERS, COMPRESSIONS, default_cache_root
from .progress import progress_bar
from .repository import Repository

__all__ = ["main", "cli", "Output", "common_options", "repo_option"]

F = TypeVar("F", bound=Callable[..., Any])

# The next step for damage found while reading, when the error does not name one.
_CHECK_STEP = "; run `xetstore check --read-data` to find all damaged objects and files"


class Output:
    """Where a command's results go: human lines or JSON lines on stdout."""

    def __init__(self, as_json: bool, quiet: bool) -> None:
        self.json = as_json
        self.quiet = quiet

    def emit(self, kind: str, text: str, **fields: Any) -> None:
        if self.json:
            click.echo(json.dumps({"type": kind, **json_safe(fields)}))
        elif text:
            click.echo(text)

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


def repo_option(fn: F) -> F:
    return click.option(
        "-r", "--repo", envvar="XETSTORE_REPO", required=True,
        help="Repository URL: a path, file://, s3://BUCKET/PREFIX (default $XETSTORE_REPO).",
    )(fn)  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xetstore")
def cli() -> None:
    """Chunk-deduplicating storage for large binaries (Xet-style)."""


@cli.command()
@click.argument("repo")
@click.option("--chunker", type=click.Choice(CHUNKERS), default="fastcdc", show_default=True)
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="zstd", show_default=True)
@common_options
def init(out: Output, repo: str, chunker: str, compression: str) -> None:
    """Create a repository at REPO."""
    with Repository.init(repo, chunker=chunker, compression=compression) as r:
        out.emit("init", f"created repository {r.url} (chunker {chunker})", url=r.url, id=r.config.id, chunker=chunker)


@cli.command()
@repo_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--skip-unreadable", is_flag=True, help="Skip, with a warning, what cannot be read or is not a regular file.")
@common_options
def add(out: Output, repo: str, paths: tuple[Path, ...], skip_unreadable: bool) -> None:
    """Add regular files (directories recurse, links to files are followed) in one session."""
    files = _expand(paths, skip_unreadable)
    total = sum(_size(p) for p in files)
    with Repository.open(repo) as r, out.progress(total, "adding") as bar:
        results = r.add_files(files, progress=bar.update)
    for res in results:
        out.emit(
            "added", f"{res.file_hash}  {res.size:>12}  new {res.new_bytes:>12}  {shown(res.path or '')}",
            file_hash=res.file_hash, path=res.path, size=res.size, sha256=res.sha256,
            new_bytes=res.new_bytes, stored_bytes=res.stored_bytes,
        )  # fmt: skip
    new = sum(r.new_bytes for r in results)
    stored = sum(r.stored_bytes for r in results)
    out.emit(
        "summary", f"{len(results)} files, {total} bytes, {new} new, {stored} stored",
        files=len(results), bytes=total, new_bytes=new, stored_bytes=stored,
    )  # fmt: skip


@cli.command()
@repo_option
@click.argument("file_hash")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here (default stdout).")
@click.option("--force", is_flag=True, help="Replace an existing file at OUTPUT.")
@common_options
def get(out: Output, repo: str, file_hash: str, output: Path | None, force: bool) -> None:
    """Write a stored file to OUTPUT or stdout.

    OUTPUT is never replaced unless --force; a device or FIFO is written in
    place, a symbolic link is refused (name its target)."""
    with Repository.open(repo) as r:
        size = r.manifest(file_hash).size
        with out.progress(size, "reading") as bar:
            if output is None:
                r.write_to(file_hash, sys.stdout.buffer, progress=bar.update)
                sys.stdout.buffer.flush()
            else:
                r.read_file(file_hash, output, progress=bar.update, overwrite=force)
    if output is not None:
        out.emit("got", f"wrote {size} bytes to {shown(str(output))}", file_hash=file_hash, path=str(output), size=size)


@cli.command(name="ls")
@repo_option
@common_options
def ls_(out: Output, repo: str) -> None:
    """List stored files: file hash, size, sha256."""
    with Repository.open(repo) as r:
        for f in r.files():
            out.emit("file", f"{f.file_hash}  {f.size:>12}  {f.sha256}", file_hash=f.file_hash, size=f.size, sha256=f.sha256)


@cli.command()
@repo_option
@common_options
def stats(out: Output, repo: str) -> None:
    """Logical and stored bytes, dedup and compression ratios, object counts."""
    with Repository.open(repo) as r:
        s = r.stats()
    fields = {
        "logical_bytes": s.logical_bytes, "unique_bytes": s.unique_bytes,
        "stored_bytes": s.stored_bytes, "dedup_ratio": round(s.dedup_ratio, 4),
        "compression_ratio": round(s.compression_ratio, 4), "files": s.files,
        "chunks": s.chunks, "xorbs": s.xorbs, "shards": s.shards,
    }  # fmt: skip
    text = "\n".join(f"{k:<18} {v}" for k, v in fields.items())
    out.emit("stats", text, **fields)


@cli.command(name="hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--chunker", type=click.Choice(CHUNKERS), default="fastcdc", show_default=True)
@common_options
def hash_(out: Output, paths: tuple[Path, ...], chunker: str) -> None:
    """Print file hashes without storing anything."""
    for path in _expand(paths, skip_unreadable=False):
        with open_input(path) as f:
            fh, sha, size = hash_stream(f, chunker)
        out.emit("hash", f"{fh}  {shown(path)}", file_hash=fh, sha256=sha, size=size, path=str(path))


@cli.command()
@common_options
def env(out: Output) -> None:
    """Version, effective settings and cache directory (for bug reports)."""
    fields = {
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "repo": os.environ.get("XETSTORE_REPO", ""),
        "cache_dir": str(default_cache_root()),
        "chunkers": list(CHUNKERS),
        "compressions": list(COMPRESSIONS),
    }
    out.emit("env", "\n".join(f"{k:<13} {v}" for k, v in fields.items()), **fields)


cli.add_command(lfs)


def _expand(paths: tuple[Path, ...], skip_unreadable: bool) -> list[str]:
    expanded = expand_inputs(paths, skip_unreadable)
    for skipped in expanded.skipped:
        click.echo(shown(f"xetstore: warning: skipping {skipped.path}: {skipped.reason}"), err=True)
    return expanded.files


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def main(argv: list[str] | None = None) -> None:
    """Run the command line; map errors to one line and an exit code."""
    terminate_as_interrupt()
    try:
        code = cli.main(args=argv, prog_name="xetstore", standalone_mode=False)
        if isinstance(code, int) and code:  # click returns a command's Exit code here
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # click's form of KeyboardInterrupt
        click.echo("xetstore: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("xetstore: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except XetStoreError as exc:
        step = "" if "xetstore " in str(exc) or not isinstance(exc, IntegrityError) else _CHECK_STEP
        _report(f"xetstore: error: {exc}{step}")
        sys.exit(exc.exit_code)
    except Exception as exc:  # the one place a surprise becomes a clean exit
        _report(f"xetstore: internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
        sys.exit(EXIT_FAILURE)


def _report(line: str) -> None:
    if os.environ.get("XETSTORE_DEBUG"):
        traceback.print_exc()
    click.echo(shown(line), err=True)


# The maintenance commands (check, repair, rm, gc) register themselves on `cli`.
from . import maintenance_cli  # noqa: E402,F401
from benchmarks.cli import bench as _bench  # noqa: E402  (L5 front; heavy imports wait until it runs)

cli.add_command(_bench)
