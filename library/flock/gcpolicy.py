"""Python's cyclic garbage collector during a load: off, and run when the process grows.

Measured at 10,000 users (`GET` a 50 ms nginx endpoint, idle 1 s, client on one core,
tests/bench/bench_scale_http.py): with the collector on, even at a young-generation threshold
of 100,000, every young collection walked the 100,000-280,000 objects of the requests then in
flight (coroutines, contexts, futures, timer handles), took 65-200 ms, came 2-3 times a second
and freed nothing; 0.150 ms of CPU per request, 84 % of the intended rate, p50 330 ms. An HTTP
request makes no reference cycle (reference counting frees all of it: 0 objects found in
`gc.garbage` after 1,000 requests), so the collector has work only when a business makes
cycles (an exception kept with its traceback, a lab client's callbacks). Off during the load,
with one full collection whenever the resident set has grown by a quarter (at least 64 MiB)
since the last one: 0.111-0.116 ms per request, 99.8 % of the intended rate, p50 70-94 ms.

The monkeys' own long-lived objects (sessions, businesses, tasks) are frozen out of every
collection once the flocks have started (`gc.freeze`), as the service does, so that a
collection that does come walks only what is new. All of it is undone when the load ends.

For a load with an end (a scale run and its Dask shards). The standing service keeps the
collector on (library/service/server.py says why). The collector is the process's: loads that
overlap in one process (a campaign's flocks in a `Parallel` block's threads) share the policy,
and the last to end gives the collector back.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from library.memory import release_free_memory

log = logging.getLogger(__name__)

GROWTH_FRACTION = 0.25  # of the resident set at the last collection
GROWTH_MIN_BYTES = 64 * 2**20

# The loads under way in this process, and whether the collector was on before the first.
_lock = threading.Lock()
_loads = 0
_was_enabled = True


class LoadGc:
    """The collector's policy for one load (a scale run, a Dask shard, the service)."""

    def __init__(self) -> None:
        self.collections = 0
        self.collect_s = 0.0
        self._base_rss: int | None = None
        self._running = False

    def start(self) -> None:
        global _loads, _was_enabled
        with _lock:
            if _loads == 0:
                _was_enabled = gc.isenabled()
            _loads += 1
            self._running = True
            gc.disable()

    def started(self) -> None:
        """The flocks have started: their long-lived objects leave the collector's view."""
        gc.freeze()
        self._base_rss = None  # the ramp's growth is the monkeys, not garbage: measure from here

    def check(self, rss: int) -> None:
        """Called with the resident set size once a second (the health sampler's row)."""
        if self._base_rss is None:
            self._base_rss = rss
            return
        if rss <= self._base_rss + max(GROWTH_MIN_BYTES, GROWTH_FRACTION * self._base_rss):
            return
        t0 = time.perf_counter()
        found = gc.collect()
        elapsed = time.perf_counter() - t0
        self.collections += 1
        self.collect_s += elapsed
        log.info(
            "garbage collection: %d objects in %.0f ms (resident set %.0f MiB, %.0f at the last)",
            found,
            elapsed * 1000,
            rss / 2**20,
            self._base_rss / 2**20,
        )
        # Freed memory returns to Python's allocator, not to the system: the resident set
        # rarely falls, so the next collection waits for the next quarter of growth.
        self._base_rss = rss

    def stop(self) -> None:
        global _loads
        with _lock:
            if not self._running:
                return
            self._running = False
            _loads -= 1
            if _loads == 0:
                gc.unfreeze()
                if _was_enabled:
                    gc.enable()


def give_back_after_load() -> bool:
    """Once a load has ended and its engine is gone: collect the cycles its teardown left (the
    collector was off), then return the heap the monkeys freed to the system, so that what
    comes next (the summary reading the events back) does not raise the process's peak.
    Skipped, False, while another load runs in this process (a campaign's flocks in a
    `Parallel` block's threads): a full collection would stall its loop mid-measurement."""
    with _lock:
        if _loads:
            return False
    gc.collect()
    release_free_memory()
    return True
