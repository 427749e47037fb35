"""Output: the table on stdout, JSON, PNG charts and a Markdown table, all in the results folder."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.scenarios.base import Result, Row

HIGHER_IS_BETTER_UNITS = {"exec/s"}


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio_text(row: Row) -> str:
    """How many times better Exekra is than the peer on this row (xN), or "-"."""
    if row.prefect is None or row.exekra is None or math.isnan(row.prefect) or math.isnan(row.exekra):
        return "-"
    if row.unit == "%":  # a share of CPU is context, not a score
        return "-"
    if row.unit in HIGHER_IS_BETTER_UNITS:
        return f"x{row.exekra / row.prefect:.1f}" if row.prefect else "-"
    return f"x{row.prefect / row.exekra:.1f}" if row.exekra > 0 else "-"


def table_lines(results: list[Result], markdown: bool = False) -> list[str]:
    header = [
        "scenario",
        "metric",
        "Exekra",
        "peer (Prefect unless named)",
        "Exekra better by",
        "unit",
        "target",
        "met",
    ]
    rows: list[list[str]] = []
    for result in results:
        if not result.rows:
            rows.append([result.name, f"({result.status}) {result.note}", "", "", "", "", "", ""])
            continue
        for row in result.rows:
            met = "" if row.ok is None else ("yes" if row.ok else "NO")
            rows.append(
                [
                    result.name,
                    row.metric,
                    _fmt(row.exekra),
                    _fmt(row.prefect)
                    + ("" if row.peer_name == "Prefect" or row.prefect is None else f" {row.peer_name}"),
                    ratio_text(row),
                    row.unit,
                    row.target,
                    met,
                ]
            )
        if result.status != "ok" or result.note:
            rows.append([result.name, f"({result.status}) {result.note}", "", "", "", "", "", ""])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
        return lines
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths[1] = min(widths[1], 60)
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(cell[: widths[i]] if i == 1 else cell for i, cell in enumerate(r))) for r in rows]
    return lines


def write_json(results: list[Result], meta: dict[str, Any], path: Path) -> None:
    payload = {"meta": meta, "scenarios": {r.name: asdict(r) for r in results}}
    path.write_text(json.dumps(payload, indent=1, default=str))


def write_markdown(results: list[Result], meta: dict[str, Any], path: Path) -> None:
    m = meta["machine"]
    lines = [
        f"Run {meta['startedAt']} · hub {meta['hubRevision']} ({meta.get('hubWorkers', 1)} worker(s)) · "
        f"`{meta['command']}`",
        f"Machine: {m['nproc']} cores, {m['ramGb']} GiB, {m['cpuModel']}, load at start {m['loadAvg']}",
        "",
        *table_lines(results, markdown=True),
    ]
    path.write_text("\n".join(lines) + "\n")


def _cdf(ax: Any, samples_ms: list[float], label: str) -> None:
    if not samples_ms:
        return
    ordered = sorted(samples_ms)
    n = len(ordered)
    ax.plot(ordered, [100 * (i + 1) / n for i in range(n)], label=f"{label} (n={n})")


def write_charts(results: list[Result], out: Path) -> None:
    """Latency distributions (CDF) and throughput over time, one PNG each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for result in results:
        d = result.details
        latency: dict[str, list[float]] = {}
        if result.name in ("pickup", "sequential") and d.get("samples"):
            latency["Exekra"] = [s * 1000 for s in d["samples"]]
            peer = d.get("prefect", {}).get("samples")
            if peer:
                latency["Prefect"] = [s * 1000 for s in peer]
        if result.name == "connected" and d.get("heartbeatSamples"):
            latency["heartbeat"] = [s * 1000 for s in d["heartbeatSamples"]]
            if d.get("pickupSamples"):
                latency["pick-up"] = [s * 1000 for s in d["pickupSamples"]]
        if result.name == "history" and d.get("samples"):
            for name, samples in d["samples"].items():
                latency[name] = [s * 1000 for s in samples]
        if latency:
            fig, ax = plt.subplots(figsize=(8, 4.5))
            for label, samples in latency.items():
                _cdf(ax, samples, label)
            ax.set_xscale("log")
            ax.set_xlabel("milliseconds (log scale)")
            ax.set_ylabel("% of samples <= x")
            ax.set_title(f"{result.name}: latency distribution")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
            name = f"{result.name}-latency.png"
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            result.charts.append(name)
        if result.name == "throughput" and d.get("completionsPerSecond"):
            panels = [("Exekra", d["completionsPerSecond"], d.get("cpuSeries", {}))]
            peer = d.get("prefect", {})
            if peer.get("completionsPerSecond"):
                panels.append(("Prefect", peer["completionsPerSecond"], peer.get("cpuSeries", {})))
            fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.6 * len(panels)), squeeze=False)
            for ax, (label, per_sec, cpu) in zip(axes[:, 0], panels, strict=True):
                ax.bar(range(len(per_sec)), per_sec, width=1.0, alpha=0.6, label="completed / s")
                ax.set_ylabel("executions / s")
                ax.set_xlabel("seconds since first create")
                ax.set_title(f"{label}: throughput over time")
                twin = ax.twinx()
                for name, series in cpu.items():
                    if series:
                        twin.plot([t for t, _ in series], [c for _, c in series], label=f"{name} CPU %", lw=1)
                twin.set_ylabel("CPU % (100 = 1 core)")
                lines = ax.get_legend_handles_labels()
                more = twin.get_legend_handles_labels()
                ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper right")
            fig.tight_layout()
            fig.savefig(out / "throughput-over-time.png", dpi=110)
            plt.close(fig)
            result.charts.append("throughput-over-time.png")
