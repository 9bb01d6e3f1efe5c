"""`xetstore bench`: the command-line front of the benchmarks.

Imports only click at module level, so registering the command costs the
`xetstore` command nothing until `bench` actually runs.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_FAILURE

__all__ = ["bench"]

_QUICK_SCALE_MB = 20.0
# The quick run's systems: what its summary lines need (the default in and per process,
# the peers that store least at this size, hf_xet per process): 146 s on 2 cores at load
# average 5 (measured); with borg, whole-file and hf_xet in-process too it took 376 s.
_QUICK_SYSTEMS = ("xetstore-fastcdc-zstd", "xetstore-cli", "restic", "casync", "hf_xet-proc")
FULL_COMMAND = "python -m xetstore.bench.workloads.real && xetstore bench --scale 300 --runs 3 --out benchmarks/results"


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


@click.command()
@click.option("--quick", is_flag=True, help=f"Small data ({_QUICK_SCALE_MB:g} MB per workload), one run, five systems, a short summary: about 2.5 minutes on 2 busy cores.")
@click.option("--scale", type=float, default=100.0, show_default=True, help="MB of logical data per workload (all versions).")
@click.option("--runs", type=int, default=3, show_default=True, help="Runs per system and workload; medians are reported.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the workload generators.")
@click.option("--workloads", "workload_names", help="Comma-separated workloads (default: all).")
@click.option("--systems", "system_names", help="Comma-separated systems (default: all; missing peers are skipped).")
@click.option("--explore", is_flag=True, help="Also run xetstore frame-size and zstd-level variants.")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="Your own data: each subfolder of DIR is one version (repeatable).")  # fmt: skip
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), help="Where generated workloads are kept (default $XDG_CACHE_HOME/xetstore-bench).")
@click.option("--workdir", type=click.Path(path_type=Path), help="Where repositories are built (default: a temporary folder, removed after).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write results.md, results.json and results.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (each with a `type`: bench, workload, result) instead of markdown.")
@click.option("-v", "--verbose", is_flag=True, help="With --quick: print every table, not the summary.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
def bench(quick: bool, scale: float, runs: int, seed: int, workload_names: str | None, system_names: str | None,
          explore: bool, corpus: tuple[Path, ...], cache_dir: Path | None, workdir: Path | None,
          out_dir: Path | None, as_json: bool, verbose: bool, quiet: bool) -> None:  # fmt: skip
    """Measure storage and speed of xetstore against baselines and peers."""
    import json

    from .bench import BenchConfig, run_bench
    from .report import json_lines, quick_lines, to_markdown
    from .systems import DEFAULT_SYSTEMS, EXPLORE_SYSTEMS
    from .workloads import WORKLOADS, default_cache_dir
    from .workloads.real import REAL_WORKLOADS

    if quick:
        scale, runs = _QUICK_SCALE_MB, 1
    workloads = _names(workload_names)
    if workloads is None:  # real-data workloads are fixed-size: not in --quick
        workloads = [] if corpus else list(WORKLOADS) + ([] if quick else list(REAL_WORKLOADS))
    systems = _names(system_names) or list(_QUICK_SYSTEMS if quick else DEFAULT_SYSTEMS)
    if explore:
        systems += [s for s in EXPLORE_SYSTEMS if s not in systems]
    config = BenchConfig(
        workloads=workloads, systems=systems, scale_mb=scale, runs=runs, seed=seed,
        cache_dir=cache_dir or default_cache_dir(), corpus=list(corpus), workdir=workdir,
        command="xetstore bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
    )  # fmt: skip
    try:
        report = run_bench(config, say=(lambda line: None) if quiet else (lambda line: click.echo(line, err=True)))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    markdown = to_markdown(report)
    if as_json:
        click.echo("\n".join(json.dumps(line) for line in json_lines(report)))
    elif quick and not verbose:
        click.echo("\n".join(quick_lines(report, FULL_COMMAND)))
    else:
        click.echo(markdown)
    if out_dir is not None:
        _write(out_dir, report, markdown, quiet)
    if any(r["error"] for r in report["results"]):
        click.echo("xetstore bench: some runs failed (see ERROR in the results)", err=True)
        sys.exit(EXIT_FAILURE)


def _write(out_dir: Path, report: dict[str, Any], markdown: str, quiet: bool) -> None:
    import json

    from .chart import chart_missing, write_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(markdown)
    (out_dir / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    note = chart_missing()
    if note is None:
        write_chart(report, out_dir / "results.png")
    if not quiet:
        click.echo(f"wrote {out_dir}/results.md, results.json" + ("" if note else ", results.png") + (f" ({note})" if note else ""), err=True)
