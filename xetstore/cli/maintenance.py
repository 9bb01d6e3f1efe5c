"""The maintenance commands: check, repair, rm, gc, compact. Parse, call Repository, print."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from ..errors import EXIT_DAMAGED, ConfigError
from ..params import COMPACT_FRAME_BYTES, COMPACT_LEVEL, DEFAULT_GRACE
from .commands import Output, Repository, cli, common_options, repo_option

if TYPE_CHECKING:  # the modules themselves load when a command runs
    from ..maintenance import CheckReport, GcReport

__all__ = ["parse_duration"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `30m`, `24h`, `7d`, `1w` -> seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not found:
        raise ConfigError(f"duration {text!r}: use a number with s, m, h, d or w (e.g. 24h)")
    return float(found[1]) * _UNITS[found[2]]


@cli.command()
@repo_option
@click.option("--read-data", is_flag=True, help="Fetch, decompress and re-hash every chunk.")
@click.option("--subset", metavar="I/N|P%", help="With --read-data: the I-th of N groups of xorbs, or P% of them.")
@common_options
def check(out: Output, repo: str, read_data: bool, subset: str | None) -> None:
    """Verify the repository. Exit 0 intact, 3 damaged, 1 could not check everything."""
    if subset and not read_data:
        raise ConfigError("--subset needs --read-data")
    with Repository.open(repo) as r, out.progress(0, "reading") as bar:
        report = r.check(read_data, subset, progress=bar.update)
    _print_check(out, report)
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)


def _print_check(out: Output, report: CheckReport) -> None:
    for p in report.problems:
        text = f"{p.severity:<9} {p.key}: {p.reason}"
        if p.files:
            text += f"\n          affects {len(p.files)} file(s): " + " ".join(p.files)
        if p.hint:
            text += f"\n          next: {p.hint}"
        out.emit("problem", text, severity=p.severity, key=p.key, reason=p.reason, files=list(p.files), hint=p.hint)
    verdict = {0: "no damage found", 3: "DAMAGED", 1: "could not check everything"}[report.exit_code]
    lost = report.damaged_files()
    summary = (
        f"{verdict}: {report.shards} shards, {report.xorbs} xorbs, {report.files} files"
        + (f"; read {report.xorbs_read} xorbs ({report.bytes_read} bytes)" if report.xorbs_read else "")
        + (f"; {len(report.damaged)} damaged objects, {len(lost)} files affected" if report.damaged else "")
    )
    out.emit(
        "check", summary, shards=report.shards, xorbs=report.xorbs, files=report.files,
        xorbs_read=report.xorbs_read, bytes_read=report.bytes_read, damaged=len(report.damaged),
        files_affected=len(lost), exit_code=report.exit_code,
    )  # fmt: skip


@cli.group()
def repair() -> None:
    """Rebuild the index, or set damaged objects aside (asks before removing anything)."""


@repair.command(name="index")
@repo_option
@common_options
def repair_index(out: Output, repo: str) -> None:
    """Rebuild the local index from the shards (and xorb footers)."""
    with Repository.open(repo) as r:
        rep = r.repair_index()
    for d in rep.damaged:
        out.emit("problem", f"skipped damaged {d.key}: {d.reason}", severity="damage", key=d.key, reason=d.reason)
    out.emit(
        "repair", f"rebuilt the index: {rep.shards} shards, {rep.records} deletion records, {rep.footers} xorb footers",
        shards=rep.shards, records=rep.records, footers=rep.footers, damaged=len(rep.damaged),
    )  # fmt: skip


@repair.command(name="xorbs")
@repo_option
@click.option("--yes", is_flag=True, help="Delete the lost files and set the damaged xorbs aside.")
@common_options
def repair_xorbs(out: Output, repo: str, yes: bool) -> None:
    """Find damaged or missing xorbs and the files they cost (reads every used xorb)."""
    from ..hashing import xet_hex  # not at the top: `xetstore --version` would load blake3

    with Repository.open(repo) as r:
        rep = r.repair_xorbs(confirm=yes)
    for key, reason in rep.damaged.items():
        out.emit("problem", f"damage    {key}: {reason}", severity="damage", key=key, reason=reason)
    for m in rep.lost_files:
        fh = xet_hex(m.file_hash)
        out.emit(
            "lost",
            f"lost file {fh}  {m.size:>12}  sha256 {m.sha256.hex()}",
            file_hash=fh,
            size=m.size,
            sha256=m.sha256.hex(),
        )
    if not rep.damaged:
        out.emit("repair", "no damaged xorbs", damaged=0, lost_files=0, done=False)
        return
    n, k = len(rep.damaged), len(rep.lost_files)
    if not yes:
        out.emit("repair", f"{n} damaged xorbs, {k} files lost; run again with --yes to delete those files "
                 "from the repository and set the xorbs aside under quarantine/ (re-add the files from a copy)",
                 damaged=n, lost_files=k, done=False)  # fmt: skip
        raise click.exceptions.Exit(EXIT_DAMAGED)
    out.emit("repair", f"removed {k} lost files; set {n} xorbs aside; kept the intact chunks of "
             f"{len(rep.salvaged_xorbs)} xorbs", damaged=n, lost_files=k, done=True)  # fmt: skip


@repair.command(name="shards")
@repo_option
@click.option("--yes", is_flag=True, help="Set the damaged shards and deletion records aside.")
@common_options
def repair_shards(out: Output, repo: str, yes: bool) -> None:
    """Find shards and deletion records that cannot be decoded."""
    with Repository.open(repo) as r:
        rep = r.repair_shards(confirm=yes)
    for key, reason in rep.damaged.items():
        out.emit("problem", f"damage    {key}: {reason}", severity="damage", key=key, reason=reason)
    if rep.damaged and not yes:
        out.emit("repair", f"{len(rep.damaged)} damaged objects; the files only they record can no longer be "
                 "listed; run again with --yes to set them aside under quarantine/", done=False)  # fmt: skip
        raise click.exceptions.Exit(EXIT_DAMAGED)
    out.emit("repair", f"set {len(rep.damaged)} objects aside" if rep.damaged else "no damaged shards", done=yes)


@cli.command()
@repo_option
@click.argument("file_hashes", nargs=-1, required=True)
@common_options
def rm(out: Output, repo: str, file_hashes: tuple[str, ...]) -> None:
    """Delete files by file hash (a deletion record; `gc` frees the space)."""
    with Repository.open(repo) as r:
        removed = r.remove(file_hashes)
    for f in removed:
        out.emit("removed", f"removed {f.file_hash}  {f.size:>12}", file_hash=f.file_hash, size=f.size, sha256=f.sha256)
    out.emit("summary", f"{len(removed)} files removed; run `xetstore gc` to free their space", files=len(removed))


@cli.command()
@repo_option
@click.option("--dry-run/--no-dry-run", default=None, help="Only report. Default: on for remote repositories.")
@click.option(
    "--grace",
    default=f"{DEFAULT_GRACE / 3600:.0f}h",
    show_default=True,
    help="Keep unreferenced objects younger than this.",
)
@click.option(
    "--repack-below",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Repack xorbs whose live share is below this.",
)
@click.option("--wait", default="10m", show_default=True, help="How long to wait for active writers.")
@common_options
def gc(out: Output, repo: str, dry_run: bool | None, grace: str, repack_below: float, wait: str) -> None:
    """Remove unreferenced xorbs, shards and deletion records; repack sparse xorbs."""
    with Repository.open(repo) as r:
        rep = r.gc(parse_duration(grace), dry_run, repack_below, parse_duration(wait))
    _print_gc(out, rep)


def _print_gc(out: Output, rep: GcReport) -> None:
    verb = "would delete" if rep.dry_run else "deleted"
    for kind, keys in (("xorb", rep.deleted_xorbs), ("shard", rep.deleted_shards), ("record", rep.deleted_records)):
        for key in keys:
            out.emit("deleted", f"{verb} {key}", key=key, object=kind, dry_run=rep.dry_run)
    for key in rep.new_xorbs + rep.new_shards:
        out.emit("written", f"wrote {key}", key=key)
    for key in rep.young:
        out.emit("kept", f"kept {key} (unreferenced, younger than the grace period)", key=key, reason="young")
    for key in rep.rescued:
        out.emit("kept", f"kept {key} (an add that ran during gc uses it)", key=key, reason="rescued")
    out.emit(
        "summary",
        f"{verb} {len(rep.deleted_xorbs)} xorbs ({rep.freed_bytes} bytes), {len(rep.deleted_shards)} shards, "
        f"{len(rep.deleted_records)} deletion records; {'would repack' if rep.dry_run else 'repacked'} "
        f"{len(rep.repacked_xorbs)} xorbs; "
        f"{rep.live_files} live files" + ("; dry run: pass --no-dry-run to delete" if rep.dry_run else ""),
        dry_run=rep.dry_run, xorbs=len(rep.deleted_xorbs), shards=len(rep.deleted_shards),
        records=len(rep.deleted_records), repacked=len(rep.repacked_xorbs), freed_bytes=rep.freed_bytes,
        live_files=rep.live_files,
    )  # fmt: skip


@cli.command()
@repo_option
@click.option("--level", default=COMPACT_LEVEL, show_default=True, type=click.IntRange(1, 22),
              help="zstd level to recompress at (19: about 10 % smaller again, 10-20 times slower).")  # fmt: skip
@click.option("--frame-mib", default=COMPACT_FRAME_BYTES >> 20, show_default=True, type=click.IntRange(1, 16),
              help="Join consecutive zstd frames up to this many MiB (larger: smaller, random reads decode more).")  # fmt: skip
@common_options
def compact(out: Output, repo: str, level: int, frame_mib: int) -> None:
    """Recompress stored xorbs at a higher zstd level, as a second layout of each.

    Adds compress quickly; this pass, run when convenient, stores the same chunks
    smaller. Reads use the new layout at once; `gc` removes the old one after the
    grace period.
    """
    with Repository.open(repo) as r, out.progress(0, "compacting") as bar:
        rep = r.compact(level, frame_mib << 20, progress=bar.update)
    for key in rep.new_shards:
        out.emit("written", f"wrote {key}", key=key)
    saved = rep.stored_before - rep.stored_after
    share = f" ({saved / rep.stored_before:.1%})" if rep.stored_before else ""
    out.emit(
        "summary",
        f"compacted {rep.xorbs} xorbs at level {level}: {rep.stored_before} -> {rep.stored_after} bytes, "
        f"{saved} saved{share}, in {rep.seconds:.1f} s; {rep.skipped} had nothing to recompress; "
        "`xetstore gc` removes the old layouts after the grace period",
        xorbs=rep.xorbs, skipped=rep.skipped, level=level, stored_before=rep.stored_before,
        stored_after=rep.stored_after, seconds=round(rep.seconds, 3),
    )  # fmt: skip
