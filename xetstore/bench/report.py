"""The report as markdown: a summary table, one table per workload, and the facts."""

from __future__ import annotations

from typing import Any

__all__ = [
    "to_markdown", "summary_table", "headline_table", "speed_table", "git_table", "quick_lines", "json_lines",
    "BASELINE", "DEFAULT_XETSTORE", "COMPACTED_XETSTORE", "PROCESS_XETSTORE", "GIT_XETSTORE", "GIT_LFS",
]  # fmt: skip

BASELINE = "whole-file"
DEFAULT_XETSTORE = "xetstore-fastcdc-zstd"
COMPACTED_XETSTORE = "xetstore-fastcdc-zstd-c9"  # the default, then `compact` and gc
_PEERS = ("restic", "restic-max", "borg", "borg-64k", "casync", "hf_xet")
PROCESS_XETSTORE, PROCESS_ANCHOR = "xetstore-cli", "hf_xet-proc"
_PROCESS_NOTE = (
    "Each version is added by a fresh `xetstore add --tag vNN -r REPO .` inside the version (hf_xet: a "
    "fresh Python process that imports hf_xet and uploads the version in one commit); the last version "
    "is restored by one fresh process, a script through each library, and then by the command "
    "`xetstore restore vNN` (command restore: click and the snapshot too), its ratio against hf_xet's "
    "script. Start-up, imports and opening the repository are in every figure."
)
GIT_XETSTORE, GIT_LFS = "xetstore-git", "git-lfs"
_GIT_NOTE = (
    "One commit per version in a real git repository whose files are all LFS objects. Timed: each "
    "`git push` to a file:// bare remote (git-lfs's pre-push hook and the transfer agents it starts), "
    "then one `git clone` of the last version (checkout, smudge, agent downloads). `git add` and "
    "`git commit` run before each push, untimed (git-lfs's clean filter, the same for both). "
    "Push MB/s is all versions' logical bytes over the sum of the push times (a file a version left "
    "unchanged costs its push nothing); hf_xet-proc's ingest is its upload processes. git-lfs's remote "
    "is on another filesystem (/dev/shm), so it copies objects instead of hard-linking them."
)


def _mb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:,.1f}"


def _x(n: float | None) -> str:
    return "n/a" if n is None else f"{n:,.2f}"


def _rate(n: float | None) -> str:
    return "n/a" if n is None else f"{n:,.0f}"


def _by(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["workload"], r["system"]): r for r in report["results"]}


def summary_table(report: dict[str, Any]) -> list[str]:
    """Rows = systems, columns = workloads, cells = logical/stored (higher is better)."""
    by = _by(report)
    workloads = list(report["workloads"])
    systems = [s for s, i in report["systems"].items() if not i["skipped"]]
    lines = ["| system | " + " | ".join(workloads) + " |", "|---|" + "---:|" * len(workloads)]
    for s in systems:
        cells = []
        for w in workloads:
            r = by.get((w, s))
            cells.append("ERROR" if r is None or r["error"] else _x(r["median"]["ratio"]))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def headline_table(report: dict[str, Any]) -> list[str]:
    """One row per workload: git-lfs, xetstore's default as added and compacted, and the
    best peer, side by side; the gap to the peer is the compacted one's where it ran."""
    by = _by(report)
    lines = [
        f"| workload | logical MB | whole-file (git-lfs) MB | {DEFAULT_XETSTORE} MB | compacted MB (compact s) "
        "| best peer MB | vs best peer | ingest / restore MB/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w, info in report["workloads"].items():
        base, ours, packed = _ok(by.get((w, BASELINE))), _ok(by.get((w, DEFAULT_XETSTORE))), _ok(by.get((w, COMPACTED_XETSTORE)))
        if ours is None:
            continue
        best = _best_peer(by, w)
        judged = packed or ours
        best_cell = f"{_mb(best['median']['stored_bytes'])} ({best['system']})" if best else "n/a"
        gap = f"{100 * (judged['stored_bytes'] / best['median']['stored_bytes'] - 1):+.1f} %" if best else "n/a"
        whole = _mb(base["stored_bytes"]) if base else "n/a"
        compacted = f"{_mb(packed['stored_bytes'])} ({packed['background_seconds']:.1f})" if packed else "n/a"
        lines.append(
            f"| {w} | {_mb(info['logical_bytes'])} | {whole} | {_mb(ours['stored_bytes'])} | {compacted} | {best_cell} "
            f"| {gap} | {_rate(ours['ingest_mb_s'])} / {_rate(ours['restore_mb_s'])} |"
        )
    return lines


def _best_peer(by: dict[tuple[str, str], dict[str, Any]], w: str) -> dict[str, Any] | None:
    peers = [by[(w, p)] for p in _PEERS if (w, p) in by and not by[(w, p)]["error"]]
    return min(peers, key=lambda r: r["median"]["stored_bytes"]) if peers else None


def speed_table(report: dict[str, Any], anchor: str = "hf_xet", ours_name: str = DEFAULT_XETSTORE) -> list[str]:
    """xetstore (`ours_name`) against the official Rust client, measured in the same run."""
    by = _by(report)
    lines = [
        f"| workload | ingest MB/s ({ours_name} / {anchor}) | ratio | restore MB/s | ratio | command restore MB/s | ratio "
        "| peak RSS MB | stored MB | compact s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in report["workloads"]:
        ours, theirs = by.get((w, ours_name)), by.get((w, anchor))
        if ours is None or theirs is None or ours["error"] or theirs["error"]:
            continue
        a, b = ours["median"], theirs["median"]
        cells = []
        for key, fmt in (("ingest_mb_s", _rate), ("restore_mb_s", _rate)):
            ratio = a[key] / b[key] if a[key] and b[key] else None
            cells += [f"{fmt(a[key])} / {fmt(b[key])}", _x(ratio)]
        by_command = a.get("command_restore_mb_s")  # against the anchor's only restore
        cells += [_rate(by_command), _x(by_command / b["restore_mb_s"]) if by_command and b["restore_mb_s"] else "n/a"]
        for key in ("peak_rss_bytes", "stored_bytes"):
            cells.append(f"{_mb(a[key])} / {_mb(b[key])}")
        cells.append("n/a" if a.get("background_seconds") is None else f"{a['background_seconds']:.1f}")
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def _ok(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A result's medians, or None when it did not run or failed."""
    return None if result is None or result["error"] else result["median"]


def _vs(ours: dict[str, Any], theirs: dict[str, Any] | None, key: str) -> str:
    return _x(ours[key] / theirs[key]) if theirs and ours[key] and theirs[key] else "n/a"


def git_table(report: dict[str, Any]) -> list[str]:
    """xetstore-git's push and clone speeds per process, over git-lfs's and hf_xet-proc's."""
    by = _by(report)
    lines = [
        f"| workload | push MB/s | vs {GIT_LFS} | vs {PROCESS_ANCHOR} | clone MB/s | vs {GIT_LFS} | vs {PROCESS_ANCHOR} "
        f"| peak RSS MB | stored MB ({GIT_XETSTORE} / {GIT_LFS}) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in report["workloads"]:
        ours = _ok(by.get((w, GIT_XETSTORE)))
        if ours is None:
            continue
        lfs, hf = _ok(by.get((w, GIT_LFS))), _ok(by.get((w, PROCESS_ANCHOR)))
        cells = []
        for key in ("ingest_mb_s", "restore_mb_s"):
            cells += [_rate(ours[key]), _vs(ours, lfs, key), _vs(ours, hf, key)]
        theirs = _mb(lfs["stored_bytes"]) if lfs else "n/a"
        cells += [_mb(ours["peak_rss_bytes"]), f"{_mb(ours['stored_bytes'])} / {theirs}"]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def quick_lines(report: dict[str, Any], full_command: str) -> list[str]:
    """The short headline of a small run: one line per workload, then how far to trust it."""
    by, out = _by(report), []
    for w, info in report["workloads"].items():
        ours = by.get((w, DEFAULT_XETSTORE))
        if ours is None or ours["error"]:
            out.append(f"{w}: xetstore ERROR" if ours else f"{w}: xetstore not run")
            continue
        m = ours["median"]
        best = _best_peer(by, w)
        vs = f", {m['stored_bytes'] / best['median']['stored_bytes']:.2f}x {best['system']}" if best else ""
        packed = _ok(by.get((w, PROCESS_XETSTORE)))
        if packed is not None and packed.get("background_seconds") is not None:
            vs += f"; compacted {_mb(packed['stored_bytes'])} MB"
            vs += f" ({packed['stored_bytes'] / best['median']['stored_bytes']:.2f}x)" if best else ""
        speed = ""
        cli, hf = by.get((w, PROCESS_XETSTORE)), by.get((w, PROCESS_ANCHOR))
        if cli and hf and not cli["error"] and not hf["error"]:
            a, b = cli["median"], hf["median"]
            speed = f"; per process vs hf_xet: ingest {a['ingest_mb_s'] / b['ingest_mb_s']:.2f}x, restore {a['restore_mb_s'] / b['restore_mb_s']:.2f}x"
        out.append(f"{w}: stores {_mb(m['stored_bytes'])} of {_mb(info['logical_bytes'])} MB{vs}{speed}")
    scale, runs = report["config"]["scale_mb"], report["config"]["runs"]
    out += [
        f"(quick: {scale:g} MB per workload, {runs} run: stored bytes are indicative, speeds are noise at this",
        " size, start-up dominates. The full run is 300 MB per workload, 3 runs, plus the real-data workloads:",
        f" `{full_command}`. Details: --verbose, or --out DIR.)",
    ]
    return out


def json_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as JSON lines, each with a `type`: the run, each workload, each result."""
    head = {k: v for k, v in report.items() if k not in ("workloads", "results")}
    lines: list[dict[str, Any]] = [{"type": "bench", **head}]
    lines += [{"type": "workload", "name": w, **info} for w, info in report["workloads"].items()]
    lines += [{"type": "result", **r} for r in report["results"]]
    return lines


def _gap_lines(report: dict[str, Any]) -> list[str]:
    """xetstore's default (as added, and compacted) against the best installed peer, per workload."""
    by, out = _by(report), []
    for w in report["workloads"]:
        best = _best_peer(by, w)
        for name in (DEFAULT_XETSTORE, COMPACTED_XETSTORE):
            ours = _ok(by.get((w, name)))
            if ours is None or best is None:
                continue
            ratio = ours["stored_bytes"] / best["median"]["stored_bytes"]
            verdict = "less" if ratio < 1 else "more"
            out.append(f"- {w}: {name} stores {abs(ratio - 1) * 100:.1f} % {verdict} than the best peer ({best['system']})")
    return out


def _workload_table(report: dict[str, Any], w: str) -> list[str]:
    by = _by(report)
    base = by.get((w, BASELINE))
    base_stored = base["median"]["stored_bytes"] if base and not base["error"] else None
    lines = [
        "| system | stored MB | % of whole-file | ratio | dedup ratio | ingest MB/s | restore MB/s | peak RSS MB | cache MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["systems"]:
        r = by.get((w, s))
        if r is None:
            continue
        if r["error"]:
            lines.append(f"| {s} | **ERROR: {r['error']}** |||||||| ")
            continue
        m = r["median"]
        share = "n/a" if not base_stored else f"{100 * m['stored_bytes'] / base_stored:.1f}"
        lines.append(
            f"| {s} | {_mb(m['stored_bytes'])} | {share} | {_x(m['ratio'])} | {_x(m['dedup_ratio'])} | "
            f"{_rate(m['ingest_mb_s'])} | {_rate(m['restore_mb_s'])} | {_mb(m['peak_rss_bytes'])} | {_mb(m['cache_bytes'])} |"
        )
    return lines


def _facts(report: dict[str, Any]) -> list[str]:
    m, cfg, load = report["machine"], report["config"], report["load_average"]
    ram = "?" if m["ram_bytes"] is None else f"{m['ram_bytes'] / 2**30:.1f} GiB"
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    tools = (*_PEERS, GIT_LFS)  # git-lfs's version names git's too
    peers = ", ".join(sorted({i["version"] for s, i in report["systems"].items() if i["version"] and s in tools}))
    return [
        f"- date: {report['date']}; command: `{report['command']}`",
        f"- scale: {cfg['scale_mb']} MB per workload, seed {cfg['seed']}, medians of {cfg['runs']} run(s)",
        f"- machine: {m['cpu']}, {m['cores']} cores, {ram} RAM, Python {m['python']}, {m['platform']}",
        f"- load average (1, 5, 15 min) before: {load['before']}, after: {load['after']}",
        f"- libraries: {libs}",
        f"- peers: {peers or 'none installed'}",
        *(f"- {note}" for note in report.get("skipped_workloads", {}).values()),
    ]


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["# xetstore bench", "", *_facts(report), "", "## Summary (stored bytes; medians)", "", *headline_table(report)]
    lines += ["", "## Ratio: logical bytes / stored bytes (higher is better)", ""]
    lines += summary_table(report)
    gaps = _gap_lines(report)
    if gaps:
        lines += ["", "## xetstore default against the best peer (stored bytes)", "", *gaps]
    per_process = speed_table(report, PROCESS_ANCHOR, PROCESS_XETSTORE)
    if per_process:
        lines += ["", "## Speed against hf_xet, per process (as a user runs them; ratio = xetstore / hf_xet, medians)", ""]
        lines += [*per_process, "", _PROCESS_NOTE]
    git = git_table(report)
    if git:
        lines += ["", f"## git push and clone, per process ({GIT_XETSTORE}; vs = its speed / the other's, above 1 is faster; medians)", ""]
        lines += [*git, "", _GIT_NOTE]
    speed = speed_table(report)
    if speed:
        lines += ["", "## Speed against hf_xet, in one warm process (same run; ratio = xetstore / hf_xet, medians)", "", *speed]
    for w, info in report["workloads"].items():
        lines += ["", f"## {w}: {info['description']}", "",
                  f"{info['versions']} versions, {_mb(info['logical_bytes'])} MB logical", ""]  # fmt: skip
        lines += _workload_table(report, w)
    lines += ["", "## Systems", ""]
    for s, info in report["systems"].items():
        note = f" — **skipped**: {info['skipped']}" if info["skipped"] else ""
        lines.append(f"- `{s}`: {info['description']}{note}")
    lines += [
        "",
        "stored = the repository on disk (data, indexes, metadata, version lists); cache = local derived",
        "state (index, client caches), not in stored. dedup ratio = logical / distinct chunk bytes before",
        "compression (n/a where the system cannot tell). Throughput in MB/s (10^6 bytes); ingest includes",
        "each tool's start-up per version; restore is of the last version and is verified byte-identical.",
    ]
    return "\n".join(lines) + "\n"
