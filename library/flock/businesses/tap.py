"""TAPQueryRunner (a list of queries, or a query set) and TAPQuerySetRunner (a query set).

pyvo is synchronous, so each query runs in a thread of the run's own pool (sized so that it never
caps a flock). Cancelling a monkey abandons the wait at once; the query in its thread ends on its
own timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from library.artifacts import Operation
from library.flock.businesses.base import Business, say
from library.flock.businesses.endpoints import data_url
from library.flock.options import TAPQueryRunnerOptions, TAPQuerySetRunnerOptions
from library.tap.client import DEFAULT_TIMEOUT, TapClient
from library.tap.query_set import QuerySet

log = logging.getLogger(__name__)


class TAPQueryRunner(Business[TAPQueryRunnerOptions | TAPQuerySetRunnerOptions]):
    # mobu's TAPBusinessData: the ADQL of the query under way, None between queries.
    running_query: str | None = None

    async def startup(self) -> None:
        opts = self.options
        self.rng = random.Random()
        self.query_set: QuerySet | None = None
        if isinstance(opts, TAPQueryRunnerOptions):
            self.queries = list(opts.queries)
        else:
            self.query_set = await asyncio.to_thread(self._load_set, opts.query_set)
            say(f"Query templates to choose from: {self.query_set.active}")
        # The TAP service of the flock's dataset, through service discovery as mobu finds it.
        url = await data_url(self.ctx.shared, "tap", opts.dataset)
        # This monkey's own user's token (with the flock's scopes), never a shared one.
        token = await self.ctx.shared.token_for(self.ctx.user, self.ctx.scopes)
        # mobu waits without limit when query_timeout is unset; bosun keeps the client's bound.
        self.client = TapClient(url, token=token, timeout=opts.query_timeout or DEFAULT_TIMEOUT)

    @staticmethod
    def _load_set(name: str) -> QuerySet:
        query_set = QuerySet.load(name)
        query_set.check_renders()
        return query_set

    def _next(self) -> tuple[str, str]:
        if self.query_set is not None:
            return self.query_set.generate(self.rng, self.ctx.username)
        index = self.rng.randrange(len(self.queries))
        return f"query-{index + 1}", self.queries[index]

    async def execute(self) -> bool:
        say("Starting next iteration")
        name, adql = self._next()
        loop = asyncio.get_running_loop()
        use_async = not self.options.sync
        self.running_query = adql
        say(f"Running ({'async' if use_async else 'sync'}): {adql}")
        try:
            result = await loop.run_in_executor(
                self.ctx.shared.threads(), self.client.execute, adql, use_async
            )
        finally:
            self.running_query = None
        self.ctx.recorder.record(
            Operation.TAP_QUERY,
            result.start_us,
            int(result.total_s * 1e6),
            result.success,
            self.ctx.username,
            name,
            result.error_class,
            result.error[:200],
            result.rows,
            self.ctx.flock,
            self.ctx.business,
            self.ctx.take_lag(),
        )
        if not result.success:
            raise TAPQueryFailed(f"{name}: {result.error_class}: {result.error}"[:300])
        say(f"Query finished after {result.total_s:.3f} seconds")
        say("Idling...")  # the monkey keeps the flock's schedule next
        self.executions += 1
        return False

    def monkey_data(self) -> dict[str, Any]:
        query = self.running_query
        return {} if query is None else {"running_query": query}

    async def shutdown(self) -> None:
        # Async jobs whose delete failed while the service was away: deleted now if it answers
        # again within the shutdown bound, else named in the log for a later cleanup.
        client = getattr(self, "client", None)
        if client is None or not client.jobs_left:
            return
        wait = max(0.0, self.shutdown_timeout() - 2.0)
        left = await asyncio.to_thread(client.delete_left_jobs, wait)
        if left:
            log.warning(
                "%s: %d UWS job(s) left on %s: %s", self.ctx.username, len(left), client.url, left
            )


class TAPQuerySetRunner(TAPQueryRunner):
    pass


class TAPQueryFailed(Exception):
    """A query of the flock failed (the event row carries the TAP error class)."""
