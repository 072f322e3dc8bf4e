"""TAP queries and templated query sets against a TAP service, sync or async."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Literal

from library import env
from library.errors import CheckFailed, UserError
from library.tap import discovery, runner
from library.tap import service as svc
from library.tap.client import TapClient
from library.tap.errors import TapQueryError
from library.tap.query_set import SHIPPED_DIR, QuerySet, list_shipped
from library.toolbox import command

log = logging.getLogger(__name__)


@command(aliases={"use_async": "--async"})
def query(
    adql: str,
    service: str | None = None,
    use_async: bool = False,
    timeout: float = 60.0,
    max_rows: int | None = None,
    max_bytes: int = 200 * 1024 * 1024,
    wait_mode: Literal["hybrid", "long-poll", "poll"] = "hybrid",
    token_file: Path | None = None,
) -> dict:
    """Run one ADQL query and report its rows and timing.

    The result table is written to ``result.vot`` (VOTable) in the artifact dir; the first rows
    are printed. A rejected query fails with the service's own message in one line.

    Args:
        adql: The ADQL query.
        service: TAP service base URL (default: $BOSUN_TAP_URL, then the running sandbox).
        use_async: Run through UWS (submit, run, wait, fetch, delete) instead of /sync.
        timeout: Seconds the query may take in total; an async job is aborted and deleted then.
        max_rows: MAXREC sent to the service (it flags an overflow past it).
        max_bytes: Size cap of the result; larger results fail.
        wait_mode: Async waiting: hybrid (fast polls, then UWS WAIT long-poll), long-poll, poll.
        token_file: File holding a bearer token (default: $BOSUN_TOKEN_FILE, else none).
    """
    client = _client(
        service, token_file, timeout, max_rows=max_rows, max_bytes=max_bytes, wait_mode=wait_mode
    )
    out = env.artifact_dir()
    (out / "query.adql").write_text(adql.rstrip() + "\n")

    try:
        result = client.run(adql, use_async=use_async, keep_table=True)
    except TapQueryError as err:
        shown = " ".join(adql.split())
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise TapQueryError(f"--adql {shown!r} was rejected by the service: {err}") from None
    table = result.results().to_table()
    table.write(out / "result.vot", format="votable", overwrite=True)
    preview = "\n".join(table[:10].pformat(max_width=160))
    print(preview)
    log.info(
        "%d row(s), %d bytes in %.3f s (%s)%s",
        result.rows,
        result.bytes,
        result.total_s,
        result.mode,
        " OVERFLOW" if result.overflow else "",
    )
    return result.as_row()


@command(aliases={"use_async": "--async"})
def run_query_set(
    query_set: str = "bosun-sandbox",
    service: str | None = None,
    count: int = 10,
    use_async: bool = False,
    concurrency: int = 1,
    seed: int | None = None,
    timeout: float = 60.0,
    max_rows: int | None = None,
    max_bytes: int = 200 * 1024 * 1024,
    wait_mode: Literal["hybrid", "long-poll", "poll"] = "hybrid",
    token_file: Path | None = None,
    max_failures: int = 0,
) -> dict:
    """Run random queries from a templated query set and time each one.

    First reads the service's TAP_SCHEMA.tables and skips (with a note) the templates whose
    tables it lacks. Then CONCURRENCY workers each run COUNT queries drawn from one seeded
    generator: the same seed gives the same queries. Artifacts: seed, queries.jsonl (every
    rendered query), results.jsonl (phase timings, rows, bytes), events/*.parquet
    (operation tap_query, target = template), summary.json and summary.txt (count, failures,
    p50/p95 per template).

    Args:
        query_set: A shipped set (see list_query_sets), a name on the query-set search path
            ($BOSUN_QUERY_SET_PATH, e.g. a mobu checkout: ``dp0.2``) or a directory of *.sql +
            params.yaml (mobu's query-set directories work as they are).
        service: TAP service base URL (default: $BOSUN_TAP_URL, then the running sandbox).
        count: Queries per worker (the run makes COUNT x CONCURRENCY queries).
        use_async: Run through UWS instead of /sync.
        concurrency: Workers running queries at the same time.
        seed: Seed of the query generator (default: a random one, recorded in the artifacts).
        timeout: Seconds each query may take.
        max_rows: MAXREC sent with each query.
        max_bytes: Size cap of each result; larger results count as failures.
        wait_mode: Async waiting: hybrid (fast polls, then UWS WAIT long-poll), long-poll, poll.
        token_file: File holding a bearer token (default: $BOSUN_TOKEN_FILE, else none).
        max_failures: Failed queries tolerated before the command fails.
    """
    runner.check_size(count, concurrency)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    qs = QuerySet.load(query_set)
    client = _client(
        service, token_file, timeout, max_rows=max_rows, max_bytes=max_bytes, wait_mode=wait_mode
    )
    return runner.run_checked(
        client,
        qs,
        env.artifact_dir(),
        count=count,
        concurrency=concurrency,
        seed=seed,
        use_async=use_async,
        max_failures=max_failures,
    )


@command(record=False)
def list_query_sets() -> dict:
    """List the shipped query sets and their templates."""
    sets = {}
    for name in list_shipped():
        templates = sorted(p.stem for p in (SHIPPED_DIR / name).glob("*.sql"))
        sets[name] = templates
        print(f"{name:10} {', '.join(templates)}")
    return sets


@command
def tables(
    service: str | None = None, token_file: Path | None = None, timeout: float = 30.0
) -> dict:
    """List the tables a TAP service publishes (its TAP_SCHEMA.tables).

    Args:
        service: TAP service base URL (default: $BOSUN_TAP_URL, then the running sandbox).
        token_file: File holding a bearer token (default: $BOSUN_TOKEN_FILE, else none).
        timeout: Seconds the query may take.
    """
    client = _client(service, token_file, timeout)
    names = discovery.service_tables(client)
    for name in names:
        print(name)
    return {"service": client.url, "tables": names}


@command
def delete_jobs(
    jobs_file: Path, service: str | None = None, token_file: Path | None = None
) -> dict:
    """Delete UWS jobs a run left on a TAP service (the jobs_left.txt of run_query_set).

    A job whose delete failed while the service was away is retried at the end of the run; the
    ones still there are listed, one URL a line, for this command.

    Args:
        jobs_file: File of job URLs, one a line (``jobs_left.txt``).
        service: TAP service base URL the jobs must belong to (default: $BOSUN_TAP_URL, then
            the running sandbox).
        token_file: File holding a bearer token (default: $BOSUN_TOKEN_FILE, else none).
    """
    try:
        urls = [u.strip() for u in jobs_file.read_text().splitlines() if u.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"--jobs-file {jobs_file}: cannot read it ({err})") from None
    client = _client(service, token_file, 30.0)
    # Only jobs of this service: a list from elsewhere must not make bosun DELETE other URLs.
    foreign = [u for u in urls if not u.startswith(client.url + "/")]
    if foreign:
        raise UserError(
            f"--jobs-file {jobs_file}: {foreign[0]} is not a job of {client.url} (--service)"
        )
    left = [u for u in urls if not client.delete_job(u)]
    for url in left:
        log.error("still there: %s", url)
    if left:
        raise CheckFailed(f"{len(left)} of {len(urls)} job(s) could not be deleted (see log.txt)")
    return {"deleted": len(urls)}


def _client(service, token_file, timeout, **limits):
    """A TAP client for the service given, else $BOSUN_TAP_URL, else the running sandbox."""
    return TapClient(
        svc.resolve_url(service), token=svc.read_token(token_file), timeout=timeout, **limits
    )


@command(record=False)
def render(
    query_set: str,
    count: int = 10,
    seed: int = 0,
    concurrency: int = 1,
    service: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Print the queries a query set renders, without running them (a dry run).

    The same seed, count and concurrency give the queries ``run_query_set`` runs. Without
    ``--service`` nothing is contacted: a template that cannot render offline (its object ids
    are sampled from the service through ``object_ids_query``) is listed as skipped. With
    ``--service``, the service's tables and ids are read first, exactly as ``run_query_set``
    does, so the output is the run's queries.

    Args:
        query_set: A shipped set (``bosun-sandbox``, ``bosun-dp02``), a name on the query-set
            search path ($BOSUN_QUERY_SET_PATH, e.g. a mobu checkout: ``dp0.2``), or a
            directory of *.sql + params.yaml.
        count: Queries per worker.
        seed: Seed of the query generator.
        concurrency: Workers (each draws COUNT queries from the one seeded generator).
        service: TAP service to prepare against (tables, object ids), as run_query_set does.
        token_file: File holding a bearer token for the service.
    """
    runner.check_size(count, concurrency)
    qs = QuerySet.load(query_set)
    if service:
        notes = discovery.prepare(qs, _client(service, token_file, 60.0))
    else:
        notes = {}
        values = qs.parameters(random.Random(0))
        for name in qs.active:
            try:
                qs.render(name, values)
            except UserError as exc:
                sampled = qs.params.get("object_ids_query") and not qs.params.get("object_ids")
                notes[name] = (
                    "skipped offline: its object ids come from the service (object_ids_query); "
                    "give --service to render it"
                    if sampled
                    else f"skipped offline: {exc}"
                )
                qs.skip(name, notes[name])
    for name, note in notes.items():
        print(f"-- {name}: {note}")
    plan = runner.plan(qs, seed, count, concurrency)
    for worker, queries in enumerate(plan):
        for index, (name, adql) in enumerate(queries):
            print(f"-- worker {worker} query {index + 1}: {name}")
            print(adql.strip())
    return {
        "query_set": str(qs.path),
        "seed": seed,
        "skipped": notes,
        "queries": [{"template": n, "adql": q} for queries in plan for n, q in queries],
    }
