"""A PNG chart of a report: stored bytes and throughput per system and workload.

Needs matplotlib (the optional extra `chart`); everything else works without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_chart", "chart_missing"]

_PANELS = (
    ("stored_bytes", "stored, % of whole-file (lower is better)", True),
    ("ingest_mb_s", "ingest MB/s", False),
    ("restore_mb_s", "restore MB/s", False),
)


def chart_missing() -> str | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "no chart: matplotlib is not installed (pip install 'xetstore[chart]')"
    return None


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r["workload"], r["system"]): r for r in report["results"] if not r["error"]}
    workloads = list(report["workloads"])
    systems = [s for s, i in report["systems"].items() if not i["skipped"]]
    fig, axes = plt.subplots(len(_PANELS), 1, figsize=(max(10, 1.6 * len(workloads) + 4), 12), constrained_layout=True)
    width = 0.8 / max(1, len(systems))
    colors = plt.get_cmap("tab20")
    for ax, (metric, title, relative) in zip(axes, _PANELS):
        for k, s in enumerate(systems):
            values = [_value(by, w, s, metric, relative) for w in workloads]
            xs = [i + (k - len(systems) / 2 + 0.5) * width for i in range(len(workloads))]
            ax.bar(xs, values, width, label=s, color=colors(k % 20))
        ax.set_title(title)
        ax.set_xticks(range(len(workloads)), workloads)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(6, len(systems)), fontsize="small")
    fig.suptitle(f"xetstore bench — {report['config']['scale_mb']} MB per workload, {report['date']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _value(by: dict[tuple[str, str], Any], w: str, s: str, metric: str, relative: bool) -> float:
    r = by.get((w, s))
    if r is None or r["median"][metric] is None:
        return 0.0
    if not relative:
        return float(r["median"][metric])
    base = by.get((w, "whole-file"))
    denominator = base["median"]["stored_bytes"] if base else r["median"]["logical_bytes"]
    return 100.0 * r["median"][metric] / denominator if denominator else 0.0
