"""A benchmark session: every system on every workload, N runs, medians, facts.

Runs are interleaved (run 1 of everything, then run 2, …) so a change of load
on a shared machine spreads over all systems instead of hitting one.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .machine import load_average, machine_facts
from .runner import METRICS, run_isolated
from .systems import make_system
from .systems.base import tree_bytes
from .workloads import WORKLOADS, materialize, versions
from .workloads.real import REAL_WORKLOADS, not_prepared_note, prepared

__all__ = ["BenchConfig", "run_bench", "median_metrics", "SCHEMA"]

SCHEMA = "xetstore-bench/1"
Say = Callable[[str], None]


@dataclass
class BenchConfig:
    workloads: list[str]
    systems: list[str]
    scale_mb: float = 100.0
    runs: int = 3
    seed: int = 1
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "xetstore-bench")
    corpus: list[Path] = field(default_factory=list)
    workdir: Path | None = None  # where repositories are built; a temp dir when None
    command: str = ""


def median_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the runs that measured it (None when none did)."""
    out: dict[str, Any] = {}
    for m in METRICS:
        values = [r[m] for r in runs if r.get(m) is not None]
        out[m] = statistics.median(values) if values else None
    return out


def _workload_dirs(config: BenchConfig, say: Say, skipped: dict[str, str]) -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for name in config.workloads:
        if name in REAL_WORKLOADS:
            folder = prepared(name, config.cache_dir)
            if folder is None:
                skipped[name] = not_prepared_note(name, config.cache_dir)
                say(skipped[name])
            else:
                found[name] = (folder, REAL_WORKLOADS[name])
            continue
        if name not in WORKLOADS:
            choices = [*WORKLOADS, *REAL_WORKLOADS]
            raise ValueError(f"unknown workload {name!r}; choose from {', '.join(choices)}")
        say(f"workload {name}: generating or reading the cache in {config.cache_dir}")
        found[name] = (materialize(name, config.scale_mb, config.seed, config.cache_dir), WORKLOADS[name].description)
    for corpus in config.corpus:
        versions(corpus)  # refuse a corpus without version folders before any run
        found[f"corpus:{Path(corpus).name}"] = (Path(corpus), f"user corpus {corpus}")
    return found


def _systems(config: BenchConfig) -> dict[str, dict[str, Any]]:
    info: dict[str, dict[str, Any]] = {}
    for name in config.systems:
        system = make_system(name)
        note = system.missing()
        info[name] = {"description": system.description, "skipped": note, "version": None if note else system.version()}
    return info


def run_bench(config: BenchConfig, say: Say = lambda line: None) -> dict[str, Any]:
    """Run everything; return the report (the JSON document)."""
    if config.runs < 1:
        raise ValueError("--runs must be at least 1")
    started = dt.datetime.now(dt.timezone.utc)
    load_before = load_average()
    skipped_workloads: dict[str, str] = {}
    workloads = _workload_dirs(config, say, skipped_workloads)
    systems = _systems(config)
    active = [s for s, i in systems.items() if i["skipped"] is None]
    for name, i in systems.items():
        if i["skipped"]:
            say(f"skipping {name}: {i['skipped']}")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(w, s): [] for w in workloads for s in active}
    root = Path(config.workdir) if config.workdir else Path(tempfile.mkdtemp(prefix="xetstore-bench-"))
    try:
        for n in range(config.runs):
            for w, (folder, _) in workloads.items():
                vs = versions(folder)
                for s in active:
                    say(f"run {n + 1}/{config.runs}  {w:<19} {s}")
                    result = run_isolated(s, vs, root / f"{w.replace(':', '_')}-{s}-{n}")
                    if result.get("error"):
                        say(f"  ERROR: {result['error']}")
                    runs[(w, s)].append(result)
    finally:
        if config.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "schema": SCHEMA,
        "date": started.isoformat(timespec="seconds"),
        "command": config.command,
        "config": {"scale_mb": config.scale_mb, "runs": config.runs, "seed": config.seed},
        "machine": machine_facts(),
        "load_average": {"before": load_before, "after": load_average()},
        "systems": systems,
        "workloads": {
            w: {"description": d, "versions": len(versions(f)), "logical_bytes": sum(tree_bytes(v) for v in versions(f))}
            for w, (f, d) in workloads.items()
        },
        "skipped_workloads": skipped_workloads,
        "results": [
            {"workload": w, "system": s, "median": median_metrics(rs), "runs": rs, "error": _first_error(rs)}
            for (w, s), rs in runs.items()
        ],
    }


def _first_error(runs: list[dict[str, Any]]) -> str | None:
    errors = [r["error"] for r in runs if r.get("error")]
    if not errors:
        return None
    return errors[0] if len(errors) == 1 else f"{errors[0]} (in {len(errors)} of {len(runs)} runs)"

