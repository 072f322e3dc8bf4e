"""PNG plots of a run, drawn from aggregated series (never one marker per event).

Each function writes one file and returns its name, or None when there is nothing to show, so
the page only carries plots that have data. Figures are built with the object API on the Agg
canvas: no pyplot global state, safe to call from any thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from library.artifacts import Operation

# What the engine treats as saturation of the load client itself; a summary.json may override
# them with its own "client_bound_thresholds".
LOOP_LAG_THRESHOLD_MS = 100.0
CPU_THRESHOLD_PERCENT = 90.0
_DPI = 100
_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _figure(
    w: float = 10,
    h: float = 4.2,
    rows: int = 1,
    cols: int = 1,
    *,
    fixed: bool = False,
    title: bool = False,
    **kw,
):
    """A figure of `rows` x `cols` axes.

    `fixed` margins (in inches, for plots whose tick labels are short numbers) cost nothing;
    otherwise the layout is solved from the drawn text once per save, which measures every
    label and was a quarter of a report's drawing time. `title`: room for a suptitle.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=_DPI, layout=None if fixed else "tight")
    if fixed:
        top = 0.45 + (0.35 if title else 0.0)
        fig.subplots_adjust(
            left=0.85 / w,
            right=1 - 0.2 / w,
            bottom=0.6 / h,
            top=1 - top / h,
            hspace=0.75 * rows / max(h - top - 0.6, 0.5),
            wspace=0.9 * cols / max(w - 1.05, 0.5),
        )
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def _save(fig, out: Path, name: str) -> str:
    # zlib level 1: a fifth of the default's encoding time for files about 10 % larger.
    fig.savefig(out / name, dpi=_DPI, pil_kwargs={"compress_level": 1})
    return name


def _time_x(bins) -> tuple[Any, str]:
    centers = bins.centers_s()
    if bins.n * bins.width_s > 1200:
        return centers / 60.0, "time since start (min)"
    return centers, "time since start (s)"


def _log_if_wide(ax, values, axis: str = "y", ratio: float = 50.0) -> None:
    import numpy as np

    arr = np.asarray(values, float)
    pos = arr[np.isfinite(arr) & (arr > 0)]
    if len(pos) and pos.max() / pos.min() > ratio:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def log_axis(ax, values, axis: str = "x", label: str = "ms") -> str:
    """A log axis when `values` hold a positive number, else linear; returns the axis label.

    Latency spans decades, so log is the right scale, but matplotlib refuses a log axis with
    nothing positive on it (an EmptyLoop run: every duration 0 ms; a run with no latency at
    all): such a run gets a linear axis and its zeros are drawn, not a crash.
    """
    import numpy as np

    parts = values if isinstance(values, list | tuple) else [values]
    arr = np.concatenate([np.asarray(v, float).ravel() for v in parts] or [np.zeros(0)])
    if (np.isfinite(arr) & (arr > 0)).any():
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        return f"{label} (log scale)"
    return label


def _line_style(values) -> dict[str, Any]:
    """A line for dense series; markers too when most bins are empty (a lone bin has no line)."""
    import numpy as np

    finite = np.isfinite(np.asarray(values, float))
    if finite.sum() and finite.mean() < 0.5:
        return {"lw": 1.0, "marker": "o", "markersize": 3}
    return {"lw": 1.2}


# Operations whose p99 stays under this (an empty loop) have no latency worth a log axis.
MEASURABLE_MS = 0.01


def active_monkeys(out: Path, bins, counts) -> str | None:
    import numpy as np

    if counts is None or not np.any(counts):
        return None
    fig, ax = _figure(h=3.2, fixed=True)
    x, label = _time_x(bins)
    ax = ax[0, 0]
    ax.step(x, counts, where="mid", color=_COLORS[0])
    ax.fill_between(x, counts, step="mid", alpha=0.2, color=_COLORS[0])
    ax.set(title="Active monkeys", xlabel=label, ylabel="monkeys")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return _save(fig, out, "active_monkeys.png")


def ops_rate(out: Path, bins, series: dict[str, dict[str, Any]]) -> str | None:
    import numpy as np

    if not series:
        return None
    fig, axes = _figure(h=6, rows=2, sharex=True, fixed=True)
    x, label = _time_x(bins)
    ok_ax, fail_ax = axes[0, 0], axes[1, 0]
    _log_if_wide(ok_ax, [s["ok_per_s"].max() for s in series.values()])
    log_scale = ok_ax.get_yscale() == "log"
    for i, (op, s) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        ok = s["ok_per_s"].astype(float)
        if log_scale:
            # Empty bins would be drawn as cliffs down to the axis: leave them out.
            ok = np.where(ok > 0, ok, np.nan)
        ok_ax.plot(x, ok, color=color, label=op, **_line_style(ok))
        if np.any(s["fail_per_s"]):
            fail = np.where(s["fail_per_s"] > 0, s["fail_per_s"], np.nan)
            fail_ax.plot(x, fail, color=color, label=op, **_line_style(fail))
    ok_ax.set(title=f"Successful operations per second ({bins.width_s} s bins)", ylabel="ops/s")
    fail_ax.set(title="Failed operations per second", xlabel=label, ylabel="failures/s")
    if not fail_ax.lines:
        fail_ax.text(
            0.5,
            0.5,
            "no failures",
            ha="center",
            va="center",
            transform=fail_ax.transAxes,
            color="#2ca02c",
        )
    for ax in (ok_ax, fail_ax):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="upper left", ncols=2)
    return _save(fig, out, "ops_rate.png")


def latency_over_time(out: Path, bins, series: dict[str, dict[str, Any]]) -> str | None:
    import numpy as np

    ops = [
        op
        for op, s in series.items()
        if np.isfinite(s["p99"]).any() and np.nanmax(s["p99"]) >= MEASURABLE_MS
    ]
    if not ops:
        return None
    cols = 2 if len(ops) > 1 else 1
    rows = (len(ops) + cols - 1) // cols
    fig, axes = _figure(
        w=11, h=2.8 * rows + 0.6, rows=rows, cols=cols, sharex=True, fixed=True, title=True
    )
    x, label = _time_x(bins)
    for i, op in enumerate(ops):
        ax = axes[i // cols, i % cols]
        s = series[op]
        for p, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            # The operation keeps the colour it has in the operations-per-second plot.
            color = _COLORS[list(series).index(op) % len(_COLORS)]
            ax.plot(x, s[p], style, label=p, color=color, **_line_style(s[p]))
        _log_if_wide(ax, np.concatenate([s["p50"], s["p99"]]), ratio=20)
        ax.set(title=op, ylabel="latency (ms)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left", ncols=3)
    for j in range(len(ops), rows * cols):
        axes[j // cols, j % cols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(label)
    fig.suptitle(f"Latency percentiles over time ({bins.width_s} s bins)")
    return _save(fig, out, "latency_over_time.png")


def latency_cdf(out: Path, summary_rows: list[dict[str, Any]], limit: int = 10) -> str | None:
    import numpy as np

    from library.report.tables import LIFECYCLE

    rows = [
        r
        for r in summary_rows
        if r["operation"] not in LIFECYCLE
        and r["count"] > 1
        and (r["p99_ms"] or 0) >= MEASURABLE_MS
    ]
    rows = sorted(rows, key=lambda r: -r["count"])[:limit]
    if not rows:
        return None
    fig, ax = _figure(h=4.5, fixed=True)
    ax = ax[0, 0]
    drawn = []
    for i, r in enumerate(rows):
        values = np.array([np.nan if v is None else v for v in r["cdf_ms"]], float)
        values = np.maximum(values, 1e-3)
        drawn.append(values)
        ax.plot(
            values,
            np.linspace(0, 1, len(values)),
            lw=1.5,
            color=_COLORS[i % len(_COLORS)],
            label=f"{r['key']} (n={r['count']:,})",
        )
    ax.set(
        title="Latency distribution (CDF)",
        xlabel=f"latency ({log_axis(ax, drawn)})",
        ylabel="fraction of operations ≤ x",
        ylim=(0, 1.01),
    )
    for q in (0.5, 0.95, 0.99):
        ax.axhline(q, color="#999", lw=0.6, ls=":")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out, "latency_cdf.png")


def failures_over_time(out: Path, bins, names: list[str], counts) -> str | None:
    import numpy as np

    if not names:
        return None
    fig, ax = _figure(h=3.6, fixed=True)
    ax = ax[0, 0]
    x, label = _time_x(bins)
    # One filled step polygon per class, stacked: bars would be one patch per bin and class
    # (thousands of artists, most of the report's drawing time).
    ax.stackplot(
        x,
        np.asarray(counts, float),
        labels=[f"{name} ({int(counts[i].sum()):,})" for i, name in enumerate(names)],
        colors=[_COLORS[(i + 3) % len(_COLORS)] for i in range(len(names))],
        step="mid",
        linewidth=0,
    )
    ax.set(
        title=f"Failures over time by error class ({bins.width_s} s bins)",
        xlabel=label,
        ylabel="failures per bin",
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out, "failures_over_time.png")


def lab_spawns(out: Path, events, bins) -> str | None:
    import numpy as np

    code = events.operation.code_of(Operation.SPAWN_LAB) if events is not None else -1
    if code < 0:
        return None
    mask = events.operation.codes == code
    dur_s = events.duration_us[mask] / 1e6
    ok = events.success[mask]
    fig, axes = _figure(w=11, h=3.8, cols=2, fixed=True)
    hist, at = axes[0, 0], axes[0, 1]
    edges = np.histogram_bin_edges(dur_s, bins=min(40, max(5, int(np.sqrt(len(dur_s))))))
    hist.hist(
        [dur_s[ok], dur_s[~ok]],
        bins=edges,
        stacked=True,
        histtype="stepfilled",  # one polygon per series, not one patch per bin
        label=["ready", "failed"],
        color=[_COLORS[2], _COLORS[3]],
    )
    hist.set(
        title=f"Lab spawn durations (n={len(dur_s):,})", xlabel="seconds to ready", ylabel="labs"
    )
    from matplotlib.ticker import MaxNLocator

    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist.legend(fontsize=8)
    start_s = (events.start_us[mask] - bins.t0_us) / 1e6
    if len(dur_s) <= 5000:
        at.scatter(start_s[ok], dur_s[ok], s=8, color=_COLORS[2], label="ready")
        at.scatter(start_s[~ok], dur_s[~ok], s=14, marker="x", color=_COLORS[3], label="failed")
        at.legend(fontsize=8)
    else:
        at.hexbin(start_s, dur_s, gridsize=40, mincnt=1, cmap="viridis")
    at.set(
        title="Spawn duration by start time",
        xlabel="start (s since run start)",
        ylabel="seconds to ready",
    )
    for ax in (hist, at):
        ax.grid(alpha=0.3)
    return _save(fig, out, "lab_spawns.png")


def _bars(ax, rows, title: str, limit: int) -> None:
    import numpy as np

    rows = rows[:limit][::-1]
    y = np.arange(len(rows))
    p50 = np.array([r["p50_ms"] or 0 for r in rows]) / 1000
    p95 = np.array([r["p95_ms"] or 0 for r in rows]) / 1000
    mx = np.array([r["max_ms"] or 0 for r in rows]) / 1000
    ax.barh(y, p95, color=_COLORS[1], alpha=0.45, label="p95")
    ax.barh(y, p50, color=_COLORS[0], height=0.5, label="p50")
    ax.plot(mx, y, "k|", markersize=10, label="max")
    ax.set_yticks(y, [_short(r["target"], 48) for r in rows], fontsize=8)
    ax.set(title=title, xlabel="seconds")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1) :]


def slowest_notebooks(out: Path, nb_rows: list[dict[str, Any]], limit: int = 12) -> str | None:
    notebooks = [r for r in nb_rows if r["operation"] == Operation.NOTEBOOK]
    cells = [r for r in nb_rows if r["operation"] == Operation.CELL]
    panels = [
        (rows, title)
        for rows, title in (
            (notebooks, "Slowest notebooks (by p95)"),
            (cells, "Slowest cells (by p95)"),
        )
        if rows
    ]
    if not panels:
        return None
    height = max(min(limit, max(len(r) for r, _ in panels)) * 0.32 + 1.4, 3.0)
    fig, axes = _figure(w=12, h=height, cols=len(panels))
    for ax, (rows, title) in zip(axes[0], panels, strict=True):
        _bars(ax, rows, title, limit)
    return _save(fig, out, "slowest_notebooks.png")


def tap_templates(out: Path, tap_rows: list[dict[str, Any]], limit: int = 20) -> str | None:
    rows = [r for r in tap_rows if r["operation"] == Operation.TAP_QUERY][:limit]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r["p50_ms"] or 0)
    stats = [
        {
            "label": f"{_short(r['target'], 32)} (n={r['count']:,})",
            "whislo": r["p5_ms"],
            "q1": r["p25_ms"],
            "med": r["p50_ms"],
            "q3": r["p75_ms"],
            "whishi": r["p95_ms"],
            "fliers": [r["max_ms"]],
        }
        for r in rows
    ]
    fig, ax = _figure(h=max(2.0 + 0.35 * len(rows), 3.0))
    ax = ax[0, 0]
    ax.bxp(
        stats,
        orientation="horizontal",
        showfliers=True,
        patch_artist=True,
        boxprops={"facecolor": "#cfe2f3"},
        flierprops={"marker": "x", "markersize": 5},
    )
    _log_if_wide(ax, [r["p5_ms"] for r in rows] + [r["max_ms"] for r in rows], axis="x", ratio=30)
    ax.set(
        title="TAP query durations by template (box p25–p75, whiskers p5–p95, × max)",
        xlabel="duration (ms)",
    )
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3, axis="x", which="both")
    return _save(fig, out, "tap_templates.png")


def engine_health(
    out: Path, bins, health: dict[str, Any] | None, thresholds: dict[str, float] | None = None
) -> str | None:
    import numpy as np

    if health is None or not any(np.isfinite(v).any() for v in health.values()):
        return None
    thresholds = thresholds or {}
    lag_limit = float(thresholds.get("loop_lag_ms", LOOP_LAG_THRESHOLD_MS))
    cpu_limit = float(thresholds.get("cpu_percent", CPU_THRESHOLD_PERCENT))
    fig, axes = _figure(h=5.5, rows=2, sharex=True, fixed=True)
    x, label = _time_x(bins)
    lag, cpu = axes[0, 0], axes[1, 0]
    lag.plot(x, health["loop_lag_p99_ms"], lw=1.2, color=_COLORS[0], label="p99")
    lag.plot(x, health["loop_lag_max_ms"], lw=1, ls="--", color=_COLORS[1], label="max")
    lag.axhline(
        lag_limit,
        color=_COLORS[3],
        ls="--",
        lw=1,
        label=f"client-bound threshold ({lag_limit:g} ms)",
    )
    _log_if_wide(lag, np.concatenate([health["loop_lag_max_ms"], [lag_limit]]))
    lag.set(title="Load engine event-loop lag", ylabel="lag (ms)")
    cpu.plot(x, health["cpu_percent"], lw=1.2, color=_COLORS[2], label="process CPU")
    cpu.axhline(
        cpu_limit,
        color=_COLORS[3],
        ls="--",
        lw=1,
        label=f"client-bound threshold ({cpu_limit:g} %)",
    )
    cpu.set(title="Load engine CPU (busiest shard)", ylabel="CPU (% of one core)", xlabel=label)
    cpu.set_ylim(bottom=0)
    for ax in (lag, cpu):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out, "engine_health.png")


def sweep(out: Path, keys: list[str], rows: list[dict[str, Any]], limit: int = 6) -> str | None:
    import numpy as np

    if not keys or len(rows) < 2:
        return None
    labels = [
        ", ".join(f"{k.rsplit('.', 1)[-1]}={r['settings'].get(k)}" for k in keys) for r in rows
    ]
    single = len(keys) == 1 and all(
        isinstance(r["settings"].get(keys[0]), int | float) for r in rows
    )
    x = np.array([r["settings"][keys[0]] for r in rows], float) if single else np.arange(len(rows))
    order = np.argsort(x, kind="stable")
    counts: dict[str, int] = {}
    for r in rows:
        for op, s in r["operations"].items():
            counts[op] = counts.get(op, 0) + s["count"]
    ops = sorted(counts, key=lambda o: -counts[o])[:limit]
    if not ops:
        return None
    fig, axes = _figure(w=11, h=4, cols=2)
    lat, succ = axes[0, 0], axes[0, 1]
    for i, op in enumerate(ops):
        color = _COLORS[i % len(_COLORS)]

        def get(stat, op=op):
            return np.array(
                [
                    np.nan
                    if rows[j]["operations"].get(op, {}).get(stat) is None
                    else rows[j]["operations"][op][stat]
                    for j in order
                ],
                float,
            )

        lat.plot(x[order], get("p50_ms"), "o-", color=color, label=f"{op} p50")
        lat.plot(x[order], get("p95_ms"), "s--", color=color, alpha=0.7, label=f"{op} p95")
        succ.plot(x[order], get("success_pct"), "o-", color=color, label=op)
    xlabel = keys[0] if single else "combination"
    _log_if_wide(
        lat,
        [
            v
            for r in rows
            for s in r["operations"].values()
            for v in (s["p50_ms"], s["p95_ms"])
            if v
        ],
    )
    lat.set(title="Latency per swept setting", xlabel=xlabel, ylabel="latency (ms)")
    succ.set(title="Success per swept setting", xlabel=xlabel, ylabel="success (%)")
    succ.set_ylim(top=100.5)
    if not single:
        for ax in (lat, succ):
            ax.set_xticks(
                x, [labels[j] for j in range(len(rows))], rotation=30, ha="right", fontsize=8
            )
    for ax in (lat, succ):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out, "sweep.png")
