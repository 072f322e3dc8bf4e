"""SIAQuerySetRunner: SIA v2 searches with parameters drawn from a set, as mobu runs them.

Startup finds the SIA service of the flock's ``dataset`` (service discovery, as mobu; see
`endpoints`) and loads the parameter set ``query_set`` (`library.sia.params`); each execution
draws one cone and the set's time interval and runs one search (operation ``sia_query``,
target the set's name, rows = images found). pyvo is synchronous, so searches run in the run's
own thread pool; cancelling a monkey abandons the wait at once.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from library.flock.businesses.base import Business, say
from library.flock.businesses.endpoints import data_url
from library.flock.options import SIAQuerySetRunnerOptions
from library.sia.client import DEFAULT_TIMEOUT, SiaClient
from library.sia.params import SIAQuery, load


class SIAQueryFailed(Exception):
    """A search of the flock failed (the event row carries the error class)."""


class SIAQuerySetRunner(Business[SIAQuerySetRunnerOptions]):
    options: SIAQuerySetRunnerOptions
    # mobu's SIABusinessData: the search under way, None between searches.
    running_query: SIAQuery | None = None

    async def startup(self) -> None:
        opts = self.options
        self.rng = random.Random()
        self.params = await asyncio.to_thread(load, opts.query_set)
        url = await data_url(self.ctx.shared, "sia", opts.dataset)
        token = await self.ctx.shared.token_for(self.ctx.user, self.ctx.scopes)
        timeout = getattr(opts, "query_timeout", None) or DEFAULT_TIMEOUT
        self.client = SiaClient(url, token=token, timeout=timeout)
        # The capabilities request, outside the timed searches (mobu makes its client here).
        await asyncio.get_running_loop().run_in_executor(
            self.ctx.shared.threads(), self.client.connect
        )
        say("Starting SIA Query Set Runner")

    async def execute(self) -> bool:
        say("Starting next iteration")
        query = self.params.draw(self.rng)
        loop = asyncio.get_running_loop()
        self.running_query = query
        say(f"Running SIA query: {query}")
        try:
            result = await loop.run_in_executor(
                self.ctx.shared.threads(), self.client.search, query
            )
        finally:
            self.running_query = None
        self.ctx.recorder.record(
            "sia_query",
            result.start_us,
            int(result.total_s * 1e6),
            result.success,
            self.ctx.username,
            self.params.name,
            result.error_class,
            result.error,
            result.rows,
            self.ctx.flock,
            self.ctx.business,
            self.ctx.take_lag(),
        )
        if not result.success:
            raise SIAQueryFailed(f"{query}: {result.error_class}: {result.error}"[:300])
        say(f"Query finished after {result.total_s:.3f} seconds")
        say("Idling...")  # the monkey keeps the flock's schedule next
        self.executions += 1
        return False

    def monkey_data(self) -> dict[str, Any]:
        query = self.running_query
        if query is None:
            return {}
        # mobu's SIAQuery: the cone in degrees and the MJD interval as a list.
        return {
            "running_query": {
                "ra": query.ra,
                "dec": query.dec,
                "radius": query.radius,
                "time": list(query.time),
            }
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "query_set": self.params.name, "sia_url": self.client.url}
