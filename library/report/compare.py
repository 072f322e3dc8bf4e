"""Compare runs: deltas of success % and latency percentiles per operation, a regression gate.

The first run (or the history median) is the baseline; every other run is compared with it.
Thresholds: `p95=20` (any operation's p95 may grow at most 20 %), `tap_query.p95=10` (one
operation, by name or `flock/operation`), `success_pct=1` (success may drop at most 1 point).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from library.errors import CheckFailed, UserError
from library.report import history
from library.report.plots import _COLORS, _figure, _save, log_axis
from library.report.stats import load, operations

_METRIC_NAMES = {
    "success_pct": "success_pct",
    "success": "success_pct",
    "p50": "p50_ms",
    "p95": "p95_ms",
    "p99": "p99_ms",
    "p50_ms": "p50_ms",
    "p95_ms": "p95_ms",
    "p99_ms": "p99_ms",
}
TABLE_METRICS = ("success_pct", "p50_ms", "p95_ms")


@dataclass(frozen=True)
class Threshold:
    operation: str | None  # None: every operation
    metric: str  # success_pct | p50_ms | p95_ms | p99_ms
    limit: float
    text: str

    def applies_to(self, key: str) -> bool:
        if self.operation is None:
            return True
        return self.operation in (key, key.rsplit("/", 1)[-1])


def parse_thresholds(texts: list[str]) -> list[Threshold]:
    out = []
    for text in texts:
        name, sep, value = text.partition("=")
        op, _, metric = name.strip().rpartition(".")
        try:
            limit = float(value)
        except ValueError:
            limit = math.nan
        if not sep or metric not in _METRIC_NAMES or not math.isfinite(limit) or limit < 0:
            raise UserError(
                f"--threshold {text!r}: expected METRIC=PCT or OPERATION.METRIC=PCT with METRIC "
                "one of p50, p95, p99, success_pct and PCT a number >= 0 (e.g. p95=20, "
                "tap_query.p95=10, success_pct=1)"
            )
        out.append(Threshold(op or None, _METRIC_NAMES[metric], limit, text))
    return out


def delta(metric: str, base: float | None, new: float | None) -> float | None:
    """Points for success %, percent change for latencies; None when not comparable."""
    if base is None or new is None:
        return None
    if metric == "success_pct":
        return round(new - base, 3)
    if base <= 0:
        return None
    return round(100.0 * (new - base) / base, 2)


def exceeded(t: Threshold, d: float | None) -> bool:
    if d is None:
        return False
    # success %: a drop of more than `limit` points; latency: a rise of more than `limit` %.
    return -d > t.limit if t.metric == "success_pct" else d > t.limit


def compare(runs: list[dict[str, Any]], thresholds: list[Threshold]) -> dict[str, Any]:
    """Rows of (run, operation, metric, base, new, delta, threshold, exceeded)."""
    base_ops = operations(runs[0])
    rows, violations = [], []
    for index, run in enumerate(runs[1:], start=1):
        ops = operations(run)
        for key in sorted(set(base_ops) | set(ops)):
            b, n = base_ops.get(key), ops.get(key)
            for metric in ("success_pct", "p50_ms", "p95_ms", "p99_ms"):
                bv = b.get(metric) if b else None
                nv = n.get(metric) if n else None
                d = delta(metric, bv, nv)
                applying = [t for t in thresholds if t.metric == metric and t.applies_to(key)]
                # The most specific threshold wins: one naming the operation over a general one.
                applying.sort(key=lambda t: t.operation is None)
                t = applying[0] if applying else None
                bad = t is not None and exceeded(t, d)
                row = {
                    "run": index,
                    "key": key,
                    "metric": metric,
                    "base": bv,
                    "new": nv,
                    "delta": d,
                    "threshold": t.text if t else None,
                    "exceeded": bad,
                    "base_count": b.get("count") if b else 0,
                    "new_count": n.get("count") if n else 0,
                }
                rows.append(row)
                if bad:
                    violations.append(row)
    return {"runs": [str(r.get("root")) for r in runs], "rows": rows, "violations": violations}


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}{unit}" if abs(value) >= 10 else f"{value:.2f}{unit}"


def render_table(result: dict[str, Any]) -> str:
    """A plain-text table: one line per (run, operation), base → new (delta) per metric."""
    lines = []
    for index, root in enumerate(result["runs"][1:], start=1):
        lines.append(f"run {index}: {root}")
        lines.append(f"  vs base: {result['runs'][0]}")
        header = f"  {'operation':<34} {'count':>14}" + "".join(
            f" {m.replace('_ms', '').replace('_pct', ' %'):>28}" for m in TABLE_METRICS
        )
        lines.append(header)
        by_key: dict[str, dict[str, dict[str, Any]]] = {}
        for r in result["rows"]:
            if r["run"] == index:
                by_key.setdefault(r["key"], {})[r["metric"]] = r
        for key, metrics in by_key.items():
            first = next(iter(metrics.values()))
            cells = []
            for m in TABLE_METRICS:
                r = metrics[m]
                unit = " pt" if m == "success_pct" else " %"
                mark = " !" if r["exceeded"] else ""
                d = "" if r["delta"] is None else f" ({r['delta']:+.1f}{unit})"
                cells.append(f" {_fmt(r['base']) + ' → ' + _fmt(r['new']) + d + mark:>28}")
            count = f"{first['base_count'] or 0:,}→{first['new_count'] or 0:,}"
            lines.append(f"  {key[:34]:<34} {count:>14}" + "".join(cells))
    if result["violations"]:
        lines.append("")
        for v in result["violations"]:
            lines.append(f"REGRESSION {_violation_text(v)}")
    return "\n".join(lines)


def _violation_text(v: dict[str, Any]) -> str:
    metric = v["metric"].replace("_ms", "")
    unit = " points" if v["metric"] == "success_pct" else " %"
    return (
        f"{v['key']} {metric}: {_fmt(v['base'])} -> {_fmt(v['new'])} "
        f"({v['delta']:+.1f}{unit}), threshold {v['threshold']}"
    )


def check(result: dict[str, Any]) -> None:
    """CheckFailed naming the first regression (and how many more) when a threshold is exceeded."""
    if result["violations"]:
        first = result["violations"][0]
        more = len(result["violations"]) - 1
        raise CheckFailed(
            f"regression: {_violation_text(first)}"
            + (f" (and {more} more; see compare/compare.txt)" if more else "")
        )


def plots(out: Path, runs: list[dict[str, Any]], limit: int = 8) -> list[str]:
    """Overlay plots: latency CDF per operation (runs with CDF points), p50/p95/success bars."""
    import numpy as np

    ops_per_run = [operations(r) for r in runs]
    counts: dict[str, int] = {}
    for ops in ops_per_run:
        for key, row in ops.items():
            counts[key] = counts.get(key, 0) + int(row.get("count") or 0)
    keys = sorted(counts, key=lambda k: -counts[k])[:limit]
    if not keys:
        return []
    labels = [_run_label(r, i) for i, r in enumerate(runs)]
    files = []
    # Bars: p50 and p95 per operation, one bar per run; success % beside.
    fig, axes = _figure(w=12, h=max(3.2, 0.55 * len(keys) * len(runs) + 1.2), cols=2)
    lat, succ = axes[0, 0], axes[0, 1]
    height = 0.8 / len(runs)
    y = np.arange(len(keys))
    drawn: list[float] = []
    for i, ops in enumerate(ops_per_run):
        color = _COLORS[i % len(_COLORS)]
        p50 = [_value(ops.get(k, {}).get("p50_ms")) for k in keys]
        p95 = [_value(ops.get(k, {}).get("p95_ms")) for k in keys]
        drawn += p50 + p95
        sp = [ops.get(k, {}).get("success_pct") for k in keys]
        yy = y + (i - (len(runs) - 1) / 2) * height
        lat.barh(yy, p95, height=height, color=color, alpha=0.35)
        lat.barh(yy, p50, height=height * 0.6, color=color, label=labels[i])
        succ.barh(
            yy,
            [np.nan if v is None else v for v in sp],
            height=height,
            color=color,
            label=labels[i],
        )
    lat.set_yticks(y, [k[-40:] for k in keys], fontsize=8)
    succ.set_yticks(y, [""] * len(keys))
    lat.set(title="Latency per operation (solid p50, light p95)", xlabel=log_axis(lat, drawn, "x"))
    succ.set(title="Success per operation", xlabel="success (%)")
    lo = min(
        [
            v
            for ops in ops_per_run
            for v in (r.get("success_pct") for r in ops.values())
            if v is not None
        ]
        or [0]
    )
    succ.set_xlim(max(0.0, lo - 5), 100.5)
    for ax in (lat, succ):
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x", which="both")
    lat.legend(fontsize=8, loc="lower right")
    files.append(_save(fig, out, "compare_percentiles.png"))
    # CDF overlays, from the 101 quantiles stats.json keeps per operation.
    with_cdf = [
        k for k in keys if sum(bool(ops.get(k, {}).get("cdf_ms")) for ops in ops_per_run) >= 2
    ]
    if with_cdf:
        cols = 2 if len(with_cdf) > 1 else 1
        rows_n = (len(with_cdf) + cols - 1) // cols
        fig, axes = _figure(w=11, h=2.9 * rows_n + 0.5, rows=rows_n, cols=cols)
        for j, key in enumerate(with_cdf):
            ax = axes[j // cols, j % cols]
            drawn = []
            for i, ops in enumerate(ops_per_run):
                cdf = ops.get(key, {}).get("cdf_ms")
                if cdf:
                    v = np.maximum(np.array([np.nan if x is None else x for x in cdf], float), 1e-3)
                    drawn.append(v)
                    ax.plot(
                        v,
                        np.linspace(0, 1, len(v)),
                        color=_COLORS[i % len(_COLORS)],
                        lw=1.4,
                        label=labels[i],
                    )
            ax.set(
                title=key,
                xlabel=f"latency ({log_axis(ax, drawn)})",
                ylabel="fraction ≤ x",
                ylim=(0, 1.01),
            )
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, loc="lower right")
        for j in range(len(with_cdf), rows_n * cols):
            axes[j // cols, j % cols].set_visible(False)
        fig.suptitle("Latency distribution per operation, runs overlaid")
        files.append(_save(fig, out, "compare_cdf.png"))
    return files


def _value(ms: float | None) -> float:
    """A figure to draw: None (no latency) is a gap, 0 ms stays a zero-length bar."""
    return float("nan") if ms is None else float(ms)


def _run_label(stats: dict[str, Any], index: int) -> str:
    root = str(stats.get("root") or "")
    name = root if root.startswith("median") else Path(root).name or root
    return f"{'base' if index == 0 else f'run {index}'}: {name[:40]}"


def run(
    paths: Sequence[str | Path],
    thresholds: list[str],
    against_history: int | None,
    out: Path,
    db_path: str | Path | None = None,
) -> dict[str, Any]:
    """Load, compare, write `out/compare.{txt,json}` and the plots; raise on a regression."""
    parsed = parse_thresholds(thresholds)
    if against_history is None and len(paths) < 2:
        raise UserError(
            "report compare: give two or more run directories (the first is the "
            "base), or one run and --against-history N"
        )
    runs = [load(p) for p in paths]
    if against_history is not None:
        if len(runs) != 1:
            raise UserError("report compare --against-history: give exactly one run directory")
        runs.insert(0, history.baseline(runs[0], against_history, db_path))
    result = compare(runs, parsed)
    out.mkdir(parents=True, exist_ok=True)
    text = render_table(result)
    (out / "compare.txt").write_text(text + "\n")
    (out / "compare.json").write_text(json.dumps(result, indent=1, default=str))
    result["plots"] = plots(out, runs)
    result["text"] = text
    return result
