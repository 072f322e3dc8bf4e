"""Run a query set: C workers in threads, N queries each, every query timed and recorded.

Artifacts written into OUT_DIR:
- ``seed``: the seed (the same seed renders the same queries);
- ``queries.jsonl``: every rendered query (index, worker, template, ADQL) before it runs;
- ``results.jsonl``: per query, the phase timings (submit/queued/executing/fetch), rows,
  bytes and error that the event schema has no columns for;
- ``events/*.parquet``: one ``tap_query`` event per query (target = template name, rows);
- ``summary.json`` and ``summary.txt``: count, failures, p50/p95 per template.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from library import redact
from library.artifacts import (
    EVENTS_DIR,
    SUMMARY_TEXT,
    Operation,
    SummaryKind,
    write_summary_json,
)
from library.errors import CheckFailed, UserError
from library.events import Recorder
from library.progress import progress
from library.stats import operation_stats
from library.tap import discovery
from library.tap.client import QueryResult, TapClient
from library.tap.query_set import QuerySet

log = logging.getLogger(__name__)
OPERATION = Operation.TAP_QUERY


# Every query is rendered and written to queries.jsonl before the first runs, and each worker is
# a thread with its own HTTP session: both are bounded up front.
MAX_QUERIES = 1_000_000  # about 300 MB of rendered ADQL held at once
MAX_CONCURRENCY = 512


def check_size(count: int, concurrency: int) -> None:
    """Refuse a run this process cannot hold, naming the flag (UserError)."""
    if count < 1 or concurrency < 1:
        raise UserError("--count and --concurrency must be at least 1")
    if concurrency > MAX_CONCURRENCY:
        raise UserError(
            f"--concurrency {concurrency}: at most {MAX_CONCURRENCY} workers (threads) in one "
            "process; run several commands, or a TAP flock, for more"
        )
    if count * concurrency > MAX_QUERIES:
        raise UserError(
            f"--count {count} x --concurrency {concurrency} = {count * concurrency:,} queries, "
            f"above the limit of {MAX_QUERIES:,} (all are rendered before the first runs, about "
            f"{count * concurrency * 300 / 1e9:.1f} GB); lower --count"
        )


def plan(
    query_set: QuerySet, seed: int, count: int, concurrency: int
) -> list[list[tuple[str, str]]]:
    """The queries of each worker, drawn from one seeded generator in a fixed order."""
    rng = random.Random(seed)
    return [[query_set.generate(rng) for _ in range(count)] for _ in range(concurrency)]


def run_checked(
    client: TapClient,
    query_set: QuerySet,
    out_dir: Path,
    *,
    count: int,
    concurrency: int,
    seed: int,
    use_async: bool,
    max_failures: int,
) -> dict:
    """``tap run_query_set``: skip the templates the service lacks, run, print the summary.

    Raises CheckFailed when more than MAX_FAILURES queries failed; returns the summary.
    """
    for name, note in discovery.prepare(query_set, client).items():
        log.warning("%s: %s", name, note)
    log.info(
        "query set %s: %d template(s) to run: %s (seed %d)",
        query_set.name,
        len(query_set.active),
        ", ".join(query_set.active),
        seed,
    )
    summary = run(
        client,
        query_set,
        out_dir,
        count=count,
        concurrency=concurrency,
        seed=seed,
        use_async=use_async,
    )
    print(format_summary(summary), end="")
    if summary["failures"] > max_failures:
        first = next(iter(summary["errors"]), "")
        raise CheckFailed(
            f"{summary['failures']} of {summary['count']} queries failed (tolerated: "
            f"{max_failures}); first error: {first}"
        )
    return summary


def run(
    client: TapClient,
    query_set: QuerySet,
    out_dir: Path,
    *,
    count: int,
    concurrency: int = 1,
    seed: int,
    use_async: bool = False,
    flock: str = "run_query_set",
    business: str = "tap",
) -> dict:
    """Run the set and write the artifacts; returns the summary (also in summary.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "seed").write_text(f"{seed}\n")
    queries = plan(query_set, seed, count, concurrency)
    with (out_dir / "queries.jsonl").open("w") as f:
        index = 0
        for worker, items in enumerate(queries):
            for template, adql in items:
                f.write(
                    json.dumps(
                        {"index": index, "worker": worker, "template": template, "adql": adql}
                    )
                    + "\n"
                )
                index += 1

    results: list[tuple[int, str, QueryResult]] = []
    lock = threading.Lock()
    recorder = Recorder(out_dir / EVENTS_DIR, flock=flock, business=business)

    def work(worker: int, advance) -> None:
        monkey = f"worker-{worker:03d}"
        for template, adql in queries[worker]:
            result = client.execute(adql, use_async=use_async)
            advance()
            recorder.record(
                OPERATION,
                result.start_us,
                int(result.total_s * 1e6),
                result.success,
                monkey=monkey,
                target=template,
                error_class=result.error_class,
                error=result.error,
                rows=result.rows,
            )
            with lock:
                results.append((worker, template, result))

    t0 = time.perf_counter()
    start = time.time()
    try:
        with (
            progress(count * concurrency, f"queries of {query_set.name}") as advance,
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tap") as pool,
        ):
            for future in [pool.submit(work, w, advance) for w in range(concurrency)]:
                future.result()
    finally:
        recorder.close()
    duration = time.perf_counter() - t0
    jobs_left = _clean_up_jobs(client, out_dir)

    with (out_dir / "results.jsonl").open("w") as f:
        for worker, template, result in results:
            row = result.as_row()
            row.pop("adql")
            row = redact.redact_data({"worker": worker, "template": template, **row})
            f.write(json.dumps(row) + "\n")
    summary = summarize(results, duration, start)
    summary.update(
        {
            "service": redact.redact_text(client.url),
            "query_set": str(query_set.path),
            "mode": "async" if use_async else "sync",
            "seed": seed,
            "concurrency": concurrency,
            "count_per_worker": count,
            "skipped": dict(query_set.skipped),
            "jobs_left": len(jobs_left),
        }
    )
    write_summary_json(out_dir, SummaryKind.TAP_QUERY_SET, summary)
    (out_dir / SUMMARY_TEXT).write_text(redact.redact_text(format_summary(summary)))
    return summary


JOBS_LEFT = "jobs_left.txt"
JOBS_CLEANUP_WAIT_S = 30.0


def _clean_up_jobs(client: TapClient, out_dir: Path, wait_s: float = JOBS_CLEANUP_WAIT_S) -> list:
    """Delete the async jobs whose delete failed (the service was away), waiting up to WAIT_S for
    it to answer again; the ones still there are listed in jobs_left.txt for a later cleanup."""
    if not client.jobs_left:
        return []
    log.warning(
        "%d UWS job(s) could not be deleted; retrying for up to %.0f s",
        len(client.jobs_left),
        wait_s,
    )
    left = client.delete_left_jobs(wait_s)
    if left:
        path = out_dir / JOBS_LEFT
        path.write_text("".join(f"{url}\n" for url in left))
        log.error(
            "%d UWS job(s) are still on the service, listed in %s; delete them with "
            "./run_toolbox.py tap delete_jobs --jobs-file %s",
            len(left),
            path,
            path,
        )
    else:
        log.info("every UWS job left by the outage is deleted")
    return left


def _figures(results: list[QueryResult], groups: list[int], names: list[str]) -> list:
    """library.stats figures of each group of queries (all of them, failed ones included)."""
    import numpy as np

    return operation_stats(
        np.zeros(len(results), np.int64),
        [""],
        np.asarray(groups, np.int64),
        names,
        np.array([r.success for r in results], bool),
        np.array([round(r.total_s * 1e6) for r in results], np.int64),
    )


def summarize(results: list[tuple[int, str, QueryResult]], duration: float, start: float) -> dict:
    names = sorted({template for _w, template, _r in results})
    items = [r for _w, _t, r in results]
    per_template = {
        row.operation: row
        for row in _figures(items, [names.index(t) for _w, t, _r in results], names)
    }
    (overall,) = _figures(items, [0] * len(items), ["all"]) or [None]
    templates = {}
    for name in names:
        mine = [r for _w, t, r in results if t == name]
        row = per_template[name]
        templates[name] = {
            "count": row.count,
            "failures": row.failures,
            "p50_ms": row.p50_ms,
            "p95_ms": row.p95_ms,
            "p99_ms": row.p99_ms,
            "max_ms": row.max_ms,
            "rows": sum(max(r.rows, 0) for r in mine),
            "bytes": sum(r.bytes for r in mine),
        }
    errors: dict[str, int] = {}
    for r in items:
        if not r.success:
            key = f"{r.error_class}: {r.error}"
            errors[key] = errors.get(key, 0) + 1
    return {
        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "duration_s": round(duration, 3),
        "count": len(results),
        "failures": sum(not r.success for r in items),
        "queries_per_s": round(len(results) / duration, 2) if duration > 0 else None,
        # Over every query, failed ones included (library/stats.py's rule).
        "p50_ms": overall.p50_ms if overall else None,
        "p95_ms": overall.p95_ms if overall else None,
        "templates": templates,
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:10]),
    }


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['count']} {summary['mode']} queries of {summary['query_set']} against "
        f"{summary['service']}",
        f"seed {summary['seed']}, {summary['concurrency']} worker(s) x "
        f"{summary['count_per_worker']}, {summary['duration_s']} s, "
        f"{summary['queries_per_s']} queries/s, {summary['failures']} failure(s)",
        "",
        f"{'template':28} {'count':>6} {'fail':>5} {'p50 ms':>9} {'p95 ms':>9} {'rows':>9}",
    ]
    for name, t in summary["templates"].items():
        lines.append(
            f"{name:28} {t['count']:>6} {t['failures']:>5} {_fmt(t['p50_ms']):>9} "
            f"{_fmt(t['p95_ms']):>9} {t['rows']:>9}"
        )
    for name, note in summary["skipped"].items():
        lines.append(f"{name:28} {note}")
    if summary["errors"]:
        lines += ["", "errors:"] + [f"  {n} x {e}" for e, n in summary["errors"].items()]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"
