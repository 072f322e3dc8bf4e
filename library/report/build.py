"""Turn one artifact tree into `report/`: plots, stats.json and index.html."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from library import artifacts
from library.artifacts import Operation, SummaryKind

log = logging.getLogger(__name__)

STATS_FILE = artifacts.STATS_JSON
MAX_FAILED_COMMANDS = 200
CHILD_WAIT_S = 300.0  # longest wait for the forked child drawing half of the plots
_PLOT_TITLES = {
    "active_monkeys": "Active monkeys",
    "ops_rate": "Operations per second",
    "latency_over_time": "Latency percentiles over time",
    "latency_cdf": "Latency distribution",
    "failures_over_time": "Failures over time",
    "lab_spawns": "Lab spawns",
    "slowest_notebooks": "Slowest notebooks and cells",
    "tap_templates": "TAP query durations by template",
    "engine_health": "Load engine health",
    "sweep": "Metrics against the swept settings",
}


def build(run_dir: Path) -> Path:
    """Write `run_dir/report/` and return its index.html; a broken part becomes a note there."""
    from library.report import parse

    out = run_dir / parse.REPORT_DIR_NAME
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    problems: list[str] = []
    try:
        run = parse.read_run(run_dir)
    except Exception as err:  # noqa: BLE001 - the page must exist even when parsing fails
        log.exception("reading %s failed", run_dir)
        run = parse.Run(root=run_dir)
        problems.append(f"Reading the artifact tree failed: {type(err).__name__}: {err}")
    problems += [f"Unreadable file {p}" for p in run.problems]
    context = _context(run, out, problems)
    _write_stats(run, context, out / STATS_FILE)
    index = out / artifacts.REPORT_INDEX
    index.write_text(_render(context))
    return index


def _context(run, out: Path, problems: list[str]) -> dict[str, Any]:
    from library.report import plots, tables

    ev = run.events
    n_events = len(ev) if ev is not None else 0
    context: dict[str, Any] = {
        "run": run,
        "n_events": n_events,
        "problems": problems,
        "summary": [],
        "plots": [],
        "errors": [],
        "notebooks": [],
        "tap": [],
        "sweep_keys": [],
        "sweep_rows": [],
    }
    context["start"], context["end"] = run.start_end
    context["title"] = " · ".join(p for p in (run.project, run.step) if p) or run.root.name
    context["commands"] = _command_groups(run.commands)
    failed = [c for c in run.commands if c.status != "success"]
    context["failed_commands"] = failed[:MAX_FAILED_COMMANDS]
    context["more_failed_commands"] = max(0, len(failed) - MAX_FAILED_COMMANDS)

    def attempt(label: str, fn, *args):
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - one broken plot must not cost the others
            log.exception("report part %s failed", label)
            problems.append(f"{label}: {type(err).__name__}: {err}")
            return None

    health = run.health
    h_lo = int(health["time_us"].min()) if health is not None else None
    h_hi = int(health["time_us"].max()) if health is not None else None
    empty = ev is None or not n_events
    bins = tables.time_bins(ev.start_us if ev is not None else _empty(), h_lo, h_hi)
    thresholds = next(
        (
            s.get("client_bound_thresholds")
            for s in run.summaries_of(SummaryKind.SCALE_RUN)
            if isinstance(s.get("client_bound_thresholds"), dict)
        ),
        None,
    )
    named: list[tuple[str, Any]] = []
    if not empty:
        ops = tables.plotted_operations(ev)
        # The tables are independent numpy work that mostly releases the GIL (sorting most of
        # all): on two cores they take the time of the longest rather than of all together.
        done = _concurrently(
            attempt,
            {
                "summary table": lambda: tables.summary(ev),
                "series over time": lambda: tables.over_time(ev, bins, ops),
                "notebook table": lambda: tables.by_target(
                    ev, (Operation.NOTEBOOK, Operation.CELL)
                ),
                "TAP table": lambda: tables.by_target(ev, (Operation.TAP_QUERY,)),
                "error table": lambda: tables.error_table(ev),
            },
        )
        context["summary"] = done["summary table"] or []
        series = done["series over time"] or {}
        context["notebooks"] = done["notebook table"] or []
        context["tap"] = done["TAP table"] or []
        context["errors"] = done["error table"] or []
        named.append(
            (
                "active_monkeys",
                lambda: plots.active_monkeys(out, bins, tables.active_monkeys(run, bins)),
            )
        )
        named.append(("ops_rate", lambda: plots.ops_rate(out, bins, series)))
        named.append(("latency_over_time", lambda: plots.latency_over_time(out, bins, series)))
        named.append(("latency_cdf", lambda: plots.latency_cdf(out, context["summary"])))
        named.append(
            (
                "failures_over_time",
                lambda: plots.failures_over_time(out, bins, *tables.failures_by_class(ev, bins)),
            )
        )
        named.append(("lab_spawns", lambda: plots.lab_spawns(out, ev, bins)))
        named.append(
            ("slowest_notebooks", lambda: plots.slowest_notebooks(out, context["notebooks"]))
        )
        named.append(("tap_templates", lambda: plots.tap_templates(out, context["tap"])))
    elif health is not None:
        named.append(
            (
                "active_monkeys",
                lambda: plots.active_monkeys(out, bins, tables.active_monkeys(run, bins)),
            )
        )
    named.append(
        (
            "engine_health",
            lambda: plots.engine_health(out, bins, tables.health_series(health, bins), thresholds),
        )
    )
    keys, rows = attempt("sweep table", tables.sweep_rows, run) or ([], [])
    context["sweep_keys"], context["sweep_rows"] = keys, rows
    named.append(("sweep", lambda: plots.sweep(out, keys, rows)))
    for name, file, problem in draw_plots(named):
        if problem:
            problems.append(problem)
        if file:
            context["plots"].append({"name": name, "file": file, "title": _PLOT_TITLES[name]})
    return context


def _concurrently(attempt, jobs: dict[str, Any]) -> dict[str, Any]:
    """Run each job through `attempt` (a failure becomes a problem note) on two threads."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="report-table") as pool:
        futures = {label: pool.submit(attempt, label, job) for label, job in jobs.items()}
        return {label: future.result() for label, future in futures.items()}


def _draw(named: list[tuple[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    """(name, file or None, problem or None) of each plot; one broken plot costs no other."""
    out: list[tuple[str, str | None, str | None]] = []
    for name, draw in named:
        try:
            out.append((name, draw(), None))
        except Exception as err:  # noqa: BLE001 - one broken plot must not cost the others
            log.exception("report part plot %s failed", name)
            out.append((name, None, f"plot {name}: {type(err).__name__}: {err}"))
    return out


def draw_plots(named: list[tuple[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    """Draw the plots, half of them in a forked child when a second core is idle.

    Drawing is most of a report's time and every plot is independent; the child inherits the
    aggregated series (no copy, no pickling) and sends back only file names. Without fork, on
    one core, or when the child dies, the parent draws everything itself.
    """
    cores = os.cpu_count() or 1
    # A second process only pays when a core is idle for it; on a busy machine it would
    # only add its start-up to the CPU the others are waiting for.
    idle = cores - os.getloadavg()[0]
    if len(named) < 2 or idle < 1 or os.environ.get("BOSUN_REPORT_SERIAL"):
        return _draw(named)
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        return _draw(named)
    theirs, mine = named[1::2], named[0::2]
    reader, writer = ctx.Pipe(duplex=False)

    def child() -> None:
        reader.close()
        writer.send(_draw(theirs))
        writer.close()

    proc = ctx.Process(target=child, name="report-plots", daemon=True)
    proc.start()
    writer.close()
    done = _draw(mine)
    try:
        # The child draws about as much as the parent did: a child that has not answered long
        # after (stuck on a lock it inherited from another thread) is stopped, not waited for.
        if not reader.poll(CHILD_WAIT_S):
            proc.kill()
            raise EOFError
        got = reader.recv()
    except (EOFError, OSError):
        log.warning("report: the plot child ended without results; drawing its share here")
        got = _draw(theirs)
    finally:
        reader.close()
        proc.join()
    order = {name: i for i, (name, _) in enumerate(named)}
    return sorted(done + got, key=lambda r: order[r[0]])


def _empty():
    import numpy as np

    return np.zeros(0, np.int64)


def _command_groups(commands) -> list[dict[str, Any]]:
    import numpy as np

    groups: dict[str, list] = {}
    for c in commands:
        name = f"{c.group} {c.command}" + (f" ({c.suffix})" if c.suffix else "")
        groups.setdefault(name, []).append(c)
    rows = []
    for name, calls in groups.items():
        d = np.array([c.duration_s for c in calls if c.duration_s is not None], float)
        rows.append(
            {
                "name": name,
                "count": len(calls),
                "failed": sum(c.status != "success" for c in calls),
                "median_s": float(np.median(d)) if len(d) else None,
                "max_s": float(d.max()) if len(d) else None,
                "total_s": float(d.sum()) if len(d) else None,
            }
        )
    return rows


def _num(value) -> str:
    if value is None or value != value:
        return "—"
    value = float(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _render(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("index.html.j2").render(num=_num, **context)


def _write_stats(run, context: dict[str, Any], path: Path) -> None:
    """The machine-readable summary that `compare` and `history` read instead of the events."""
    stats = {
        "version": 1,
        "root": str(run.root),
        "project": run.project,
        "step": run.step,
        "presets": run.presets,
        "overrides": run.overrides,
        "start": context["start"],
        "end": context["end"],
        "result": run.result,
        "exit_code": run.exit_code,
        "events": context["n_events"],
        "client_bound": bool(run.client_bound),
        "operations": context["summary"],
        "commands": context["commands"],
    }
    path.write_text(json.dumps(stats, indent=1, default=str))
