"""The `xetstore` command: parse, call Repository, print. Nothing else lives here.

Every command takes --json (one JSON object per line, each with a `type`),
-q (no progress bars) and --debug (tracebacks). Exit codes: 0 ok, 1 failure,
2 usage, 3 damaged data, 10 not found, 11 locked, 12 access denied, 130
interrupted.
"""

from __future__ import annotations

# json, platform, traceback, pathlib and inputs are imported where they are used:
# together they were ~8 ms of every start, `xetstore --version` included.
import gc
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import __version__
from ..display import json_safe, shown
from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, ConfigError, IntegrityError, XetStoreError
from ..interrupts import terminate_as_interrupt
from ..output import Output, common_options, count, human_size
from ..params import CHUNKERS, COMPRESSIONS, default_cache_root
from .startup import importing

if TYPE_CHECKING:
    from ..inputs import Expanded
    from ..repository import AddResult
    from ..repository import Repository as Repository
    from ..trees import SnapshotResult

__all__ = ["main", "cli", "Output", "common_options", "repo_option"]

F = TypeVar("F", bound=Callable[..., Any])


class _LazyRepository:
    """Stands for the Repository class until a command touches it: `--version`,
    `--help` and the `lfs` commands then start without importing the engine."""

    def __getattr__(self, name: str) -> Any:
        with importing():
            from ..repository import Repository

        return getattr(Repository, name)


if not TYPE_CHECKING:
    Repository = _LazyRepository()

_LS_HEADER = f"{'FILE HASH':<64}  {'SIZE':>10}  SHA256"

# The next step for damage found while reading, when the error does not name one.
_CHECK_STEP = "; run `xetstore check --read-data` to find all damaged objects and files"


def repo_option(fn: F) -> F:
    return click.option(
        "-r", "--repo", envvar="XETSTORE_REPO", required=True,
        help="Repository URL: a path, file://, s3://BUCKET/PREFIX (default $XETSTORE_REPO).",
    )(fn)  # fmt: skip


class _Commands(click.Group):
    """The command group. Commands defined in other modules load when named (or
    listed by --help): every command is a new process, and importing them all
    cost `--version`, `ls` and `get` about 10 ms each."""

    ELSEWHERE = {
        **dict.fromkeys(("check", "repair", "rm", "gc", "compact"), "xetstore.cli.maintenance"),
        **dict.fromkeys(("tags", "restore", "diff"), "xetstore.cli.snapshots"),
        "bench": "xetstore.bench.cli",
        "lfs": "xetstore.lfs.commands",
    }  # fmt: skip

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.ELSEWHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.ELSEWHERE:
            import importlib

            self.add_command(getattr(importlib.import_module(self.ELSEWHERE[cmd_name]), cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xetstore")
def cli() -> None:
    """Chunk-deduplicating storage for large binaries (Xet-style)."""


@cli.command()
@click.argument("repo")
@click.option("--chunker", type=click.Choice(CHUNKERS), default="fastcdc", show_default=True)
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="zstd", show_default=True)
@click.option("--delta", is_flag=True, help="Store new chunks as deltas against an earlier version (`add --earlier`); Xet's clients cannot read them.")
@common_options
def init(out: Output, repo: str, chunker: str, compression: str, delta: bool) -> None:
    """Create a repository at REPO."""
    with Repository.init(repo, chunker=chunker, compression=compression, delta=delta) as r:
        out.emit("init", f"created repository {r.url} (chunker {chunker})", url=r.url, id=r.config.id, chunker=chunker)


@cli.command()
@repo_option
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--tag", help="Also record the paths as a snapshot with this name (see `tags`, `restore`).")
@click.option("--skip-unreadable", is_flag=True, help="Skip, with a warning, what cannot be read or is not a regular file.")
@click.option("--earlier", metavar="NAME", help="A stored earlier version of the file(s): with `init --delta`, new chunks become deltas against it (default: stored files of the same size).")
@common_options
def add(out: Output, repo: str, paths: tuple[str, ...], tag: str | None, skip_unreadable: bool, earlier: str | None) -> None:
    """Add regular files (directories recurse, links to files are followed) in one session."""
    files = _expand(paths, skip_unreadable)
    total = sum(_size(p) for p in files)
    if tag is not None and earlier is not None:
        raise ConfigError("--earlier works with plain adds only: a tagged add takes the file at the same path in the newest snapshot that has it")
    with Repository.open(repo) as r, out.progress(total, "adding") as bar:
        made = None if tag is None else r.add_snapshot(paths, tag, progress=bar.update)
        results = made.added if made else r.add_files(files, progress=bar.update, earlier=earlier)
    _print_added(out, results)
    if made is not None:
        _print_snapshot(out, made)


def _print_added(out: Output, results: list[AddResult]) -> None:
    for res in results:
        out.emit(
            "added", f"{res.file_hash}  {human_size(res.size):>10}  new {human_size(res.new_bytes):>10}  {shown(res.path or '')}",
            file_hash=res.file_hash, path=res.path, size=res.size, sha256=res.sha256,
            new_bytes=res.new_bytes, stored_bytes=res.stored_bytes,
        )  # fmt: skip
    new = sum(r.new_bytes for r in results)
    stored = sum(r.stored_bytes for r in results)
    total = sum(r.size for r in results)
    out.emit(
        "summary", f"{count(len(results), 'file')}, {human_size(total)}, {human_size(new)} new, {human_size(stored)} stored",
        files=len(results), bytes=total, new_bytes=new, stored_bytes=stored,
    )  # fmt: skip


def _print_snapshot(out: Output, made: SnapshotResult) -> None:
    from ..keys import SNAPSHOTS, name_in  # keys loads hashing, which `--version` must not

    for path, why in made.skipped:
        out.emit("skipped", f"skipped {path}: {why}", path=path, reason=why)
    snap = made.snapshot
    out.emit("snapshot", f"snapshot {name_in(snap.key, SNAPSHOTS)[:12]} tagged {snap.tag}: "
             f"{count(len(snap.entries), 'path')}", tag=snap.tag, snapshot=snap.key, paths=len(snap.entries),
             size=snap.size)  # fmt: skip


@cli.command()
@repo_option
@click.argument("name")
@click.option("-o", "--output", type=click.Path(), help="Write here (default stdout).")
@click.option("--force", is_flag=True, help="Replace an existing file at OUTPUT.")
@common_options
def get(out: Output, repo: str, name: str, output: str | None, force: bool) -> None:
    """Write a stored file to OUTPUT or stdout. NAME is a file hash, a sha256
    (git-lfs oid), a unique prefix of either, or TAG:PATH.

    OUTPUT is never replaced unless --force; a device or FIFO is written in
    place, a symbolic link is refused (name its target)."""
    with Repository.open(repo) as r:
        file_hash = r.resolve(name)
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
@click.argument("tag", required=False)
@common_options
def ls_(out: Output, repo: str, tag: str | None) -> None:
    """List stored files (by file hash), or with TAG that snapshot's paths."""
    with Repository.open(repo) as r:
        if tag is not None:
            _ls_snapshot(out, r, tag)
            return
        files = sorted(r.files(), key=lambda f: f.file_hash)
    if files:  # an empty repository lists nothing, not a lone header
        out.header(_LS_HEADER)
    for f in files:
        out.emit("file", f"{f.file_hash}  {human_size(f.size):>10}  {f.sha256}", file_hash=f.file_hash, size=f.size, sha256=f.sha256)


def _ls_snapshot(out: Output, r: Repository, tag: str) -> None:
    from ..hashing import xet_hex  # here, not at the top: `xetstore --version` would load blake3
    from ..snapshot import DIR

    snap = r.snapshot(tag)
    out.header(f"{'SIZE':>10}  {'FILE HASH':<16}  PATH")
    for e in snap.entries:
        if e.kind == DIR:
            out.emit("dir", f"{'-':>10}  {'-':<16}  {shown(e.path)}/", path=e.path, mode=e.mode)
        else:
            fh = xet_hex(e.file_hash)
            out.emit("file", f"{human_size(e.size):>10}  {fh[:16]}  {shown(e.path)}", path=e.path, size=e.size, file_hash=fh, mode=e.mode)
    out.emit("summary", f"{count(len(snap.files()), 'file')}, {human_size(snap.size)}, snapshot {snap.key}",
             tag=tag, snapshot=snap.key, files=len(snap.files()), size=snap.size)  # fmt: skip


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
    readable = {k: (f"{human_size(int(v))} ({v} bytes)" if k.endswith("_bytes") else v) for k, v in fields.items()}
    out.emit("stats", "\n".join(f"{k:<18} {v}" for k, v in readable.items()), **fields)


@cli.command(name="hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--chunker", type=click.Choice(CHUNKERS), help="Default: the repository's (-r or $XETSTORE_REPO), else fastcdc.")
@click.option("-r", "--repo", envvar="XETSTORE_REPO", help="Take the chunker from this repository (nothing is stored).")
@common_options
def hash_(out: Output, paths: tuple[str, ...], chunker: str | None, repo: str | None) -> None:
    """Print file hashes without storing anything."""
    from .. import hash_stream  # chunking and hashing load only for this command

    if chunker is None:
        chunker = Repository.read_config(repo).params.chunker if repo else "fastcdc"
    from ..inputs import open_input

    for path in _expand(paths, skip_unreadable=False):
        with open_input(path) as f:
            fh, sha, size = hash_stream(f, chunker)
        out.emit("hash", f"{fh}  {shown(path)}", file_hash=fh, sha256=sha, size=size, path=str(path), chunker=chunker)


@cli.command()
@common_options
def env(out: Output) -> None:
    """Version, effective settings and cache directory (for bug reports)."""
    import platform

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




def _expand(paths: tuple[str, ...], skip_unreadable: bool) -> list[str]:
    from ..inputs import expand_inputs

    expanded: Expanded = expand_inputs(paths, skip_unreadable)
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
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args[: args.index("--") if "--" in args else len(args)]
    try:
        _run(args, as_json)
    finally:
        # The command is done: what is left is the interpreter's teardown, whose
        # collections walk every object the imports made (~10 ms of a 170 ms
        # `xetstore add`). Frozen objects are skipped; the work closed what it opened.
        gc.freeze()


def _run(args: list[str], as_json: bool) -> None:
    try:
        code = cli.main(args=args, prog_name="xetstore", standalone_mode=False)
        if isinstance(code, int) and code:  # click returns a command's Exit code here
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if not as_json:
            exc.show()
        _fail(as_json, "usage", exc.format_message(), exc.exit_code, already_shown=not as_json)
    except (click.exceptions.Abort, KeyboardInterrupt):  # Abort is click's form of KeyboardInterrupt
        _fail(as_json, "interrupted", "interrupted", EXIT_INTERRUPTED)
    except XetStoreError as exc:
        step = "" if "xetstore " in str(exc) or not isinstance(exc, IntegrityError) else _CHECK_STEP
        _fail(as_json, type(exc).__name__, f"{exc}{step}", exc.exit_code, prefix="error: ")
    except Exception as exc:  # the one place a surprise becomes a clean exit
        _fail(as_json, "internal", f"{type(exc).__name__}: {exc} (run with --debug for details)", EXIT_FAILURE,
              prefix="internal error: ")  # fmt: skip


def _fail(as_json: bool, kind: str, message: str, code: int, prefix: str = "", already_shown: bool = False) -> None:
    """Report a failure on stderr (one JSON object under --json) and exit with `code`."""
    if os.environ.get("XETSTORE_DEBUG"):
        import traceback

        traceback.print_exc()
    if as_json:
        import json

        doc = {"type": "error", "error": kind, "message": message, "exit_code": code}
        click.echo(json.dumps(json_safe(doc)), err=True)
    elif not already_shown:
        click.echo(shown(f"xetstore: {prefix}{message}"), err=True)
    sys.exit(code)

