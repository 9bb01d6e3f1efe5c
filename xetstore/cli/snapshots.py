"""The snapshot commands: tags, restore, diff. Parse, call Repository, print.

(`add --tag` makes snapshots and `ls TAG` lists one; they live in commands.py.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..display import shown
from ..output import Output, common_options, count, human_size
from .commands import Repository, cli, repo_option

if TYPE_CHECKING:  # the engine loads when a command runs, not with `xetstore --version`
    from ..snapshot import SnapshotEntry

__all__: list[str] = []


def _when(created_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created_ns / 1e9))


@cli.command()
@repo_option
@common_options
def tags(out: Output, repo: str) -> None:
    """List tags: the snapshot each names, when it was made, its files and size."""
    with Repository.open(repo) as r:
        named = r.tags()
    out.header(f"{'TAG':<20}  {'CREATED':<23}  {'FILES':>6}  {'SIZE':>10}  SNAPSHOT")
    for tag, s in named.items():
        files = len(s.files())
        out.emit(
            "tag", f"{tag:<20}  {_when(s.created_ns):<23}  {files:>6}  {human_size(s.size):>10}  {s.key}",
            tag=tag, snapshot=s.key, created_ns=s.created_ns, files=files, size=s.size,
        )  # fmt: skip


@cli.command()
@repo_option
@click.argument("tag")
@click.argument("dest", type=click.Path(path_type=Path))
@common_options
def restore(out: Output, repo: str, tag: str, dest: Path) -> None:
    """Recreate the files and directories of snapshot TAG under DEST (absent or empty)."""
    from ..snapshot import FILE

    with Repository.open(repo) as r:
        snap = r.snapshot(tag)
        with out.progress(snap.size, "restoring") as bar:
            done = r.restore(snap, dest, progress=bar.update)
    files = [e for e in done if e.kind == FILE]
    for e in done:
        out.emit("restored", "", path=e.path, entry=e.kind, size=e.size)
    out.emit(
        "summary", f"restored {count(len(files), 'file')} ({human_size(sum(e.size for e in files))}) and "
        f"{len(done) - len(files)} {'directory' if len(done) - len(files) == 1 else 'directories'} of {tag} into {dest}",
        tag=tag, files=len(files), directories=len(done) - len(files), bytes=sum(e.size for e in files), dest=str(dest),
    )  # fmt: skip


@cli.command()
@repo_option
@click.argument("old_tag")
@click.argument("new_tag")
@common_options
def diff(out: Output, repo: str, old_tag: str, new_tag: str) -> None:
    """What changed from OLD_TAG to NEW_TAG, and what NEW_TAG stores on top of OLD_TAG."""
    with Repository.open(repo) as r:
        d = r.diff(old_tag, new_tag)
    for e in d.added:
        _line(out, "added", "+", e)
    for e in d.removed:
        _line(out, "removed", "-", e)
    for before, after in d.changed:
        _line(out, "changed", "M", after, before)
    out.emit(
        "summary", f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, "
        f"{d.unchanged} unchanged; {new_tag} needs {human_size(d.new_bytes)} of chunks {old_tag} does not "
        f"(about {human_size(d.new_stored_bytes)} stored)",
        old=old_tag, new=new_tag, added=len(d.added), removed=len(d.removed), changed=len(d.changed),
        unchanged=d.unchanged, new_bytes=d.new_bytes, new_stored_bytes=d.new_stored_bytes,
    )  # fmt: skip


def _line(out: Output, kind: str, mark: str, e: SnapshotEntry, before: SnapshotEntry | None = None) -> None:
    from ..hashing import xet_hex
    from ..snapshot import FILE

    size = human_size(e.size) if e.kind == FILE else "dir"
    was = f" (was {human_size(before.size)})" if before is not None and before.kind == FILE else ""
    fields = {"path": e.path, "entry": e.kind, "size": e.size, "file_hash": xet_hex(e.file_hash) if e.kind == FILE else None}
    if before is not None:
        fields["old_size"] = before.size
    out.emit(kind, f"{mark} {shown(e.path)}  {size}{was}", **fields)
