"""Prometheus ``/metrics`` of the service (the ``prometheus-client`` library's text format).

Nothing here runs per request. The operations' counters and latency histograms are tallied
from the recorder's own columns (`EventTally`): the rows it has not seen yet are read as
arrays when the recorder flushes and when ``/metrics`` is scraped, and counted with a few
vectorised numpy calls, so the monkeys' hot path pays nothing for them. Flock figures (mobu's
success and failure counts, monkeys by state, paused) and the engine's health (event-loop lag,
CPU, RSS, client-bound, from `library.flock.health`) are read when scraped.

Metrics (every name prefixed ``bosun_``):

- ``operations_total{flock,business,operation,result}`` counter (result: success, failure)
- ``operation_duration_seconds{flock,business,operation}`` histogram (`BUCKETS_S`)
- ``flock_successes_total``, ``flock_failures_total{flock,business}``: mobu's counts
- ``monkeys{flock,state}`` gauge; ``flock_paused{flock}`` gauge; ``flocks`` gauge
- ``event_loop_lag_seconds{stat=max|p99}``, ``process_cpu_percent``,
  ``process_resident_memory_bytes``, ``client_bound`` (0/1) gauges
- ``events_stored_files``, ``events_stored_bytes`` gauges (the partitioned store)
- ``alerts_firing{rule,flock}`` gauge
- ``shard_event_loop_lag_seconds{flock,shard,stat}``, ``shard_cpu_percent``,
  ``shard_resident_memory_bytes``, ``shard_active_monkeys{flock,shard}``: Dask shards' health
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from library.events import Recorder

# Latency buckets (seconds): from a fast HTTP request to a lab spawn.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EventTally:
    """Cumulative counts and latency buckets per (flock, business, operation), tallied from
    the recorder's buffered columns; `tap` is a `PartitionedRecorder` tap."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self._bounds_us = np.array([b * 1e6 for b in BUCKETS_S], np.float64)
        self.keys: list[tuple[str, str, str]] = []
        self._key_index: dict[tuple[str, str, str], int] = {}
        self._combo_key = np.zeros(0, np.int64)  # recorder combination code -> key index
        self._combo_of: Any = None  # the recorder whose codes _combo_key maps
        self.ok = np.zeros(0, np.int64)
        self.failed = np.zeros(0, np.int64)
        self.buckets = np.zeros((0, len(BUCKETS_S) + 1), np.int64)
        self.sum_us = np.zeros(0, np.float64)
        self._seen = 0
        self.rows = 0

    def tap(self, rec: Recorder) -> None:
        """Called by the recorder under its lock before a flush takes its columns."""
        self.catch_up(rec)
        self._seen = 0

    def catch_up(self, rec: Recorder) -> None:
        """Tally the rows recorded since the last call (same thread as the recorder)."""
        np = self._np
        columns = rec._columns
        n = len(columns[0])
        seen = self._seen
        if n <= seen:
            return
        # Slices copy: no buffer of the live arrays is held while recording goes on.
        duration = np.frombuffer(columns[1][seen:n], np.int64)
        combo = np.frombuffer(columns[3][seen:n], np.int32)
        success = np.frombuffer(columns[4][seen:n], np.int8).astype(bool)
        self._seen = n
        key = self._keys_of(rec)[combo]
        k = len(self.keys)
        self.ok += np.bincount(key[success], minlength=k)
        self.failed += np.bincount(key[~success], minlength=k)
        bucket = np.searchsorted(self._bounds_us, duration, side="left")
        width = len(BUCKETS_S) + 1
        self.buckets += np.bincount(key * width + bucket, minlength=k * width).reshape(k, width)
        self.sum_us += np.bincount(key, weights=np.maximum(duration, 0), minlength=k)
        self.rows += n - seen

    def _keys_of(self, rec: Recorder):
        np = self._np
        values = rec._combos.keys_in_order
        if self._combo_of is not rec:
            self._combo_of, self._combo_key = rec, np.zeros(0, np.int64)
        if len(self._combo_key) < len(values):
            extra = []
            for flock, business, operation, *_ in values[len(self._combo_key) :]:
                key = (flock, business, operation)
                index = self._key_index.get(key)
                if index is None:
                    index = self._key_index[key] = len(self.keys)
                    self.keys.append(key)
                extra.append(index)
            self._combo_key = np.concatenate([self._combo_key, np.array(extra, np.int64)])
            grow = len(self.keys) - len(self.ok)
            if grow > 0:
                self.ok = np.concatenate([self.ok, np.zeros(grow, np.int64)])
                self.failed = np.concatenate([self.failed, np.zeros(grow, np.int64)])
                self.sum_us = np.concatenate([self.sum_us, np.zeros(grow)])
                self.buckets = np.vstack(
                    [self.buckets, np.zeros((grow, self.buckets.shape[1]), np.int64)]
                )
        return self._combo_key

    def add(self, other: dict[str, Any]) -> None:
        """Merge a tally snapshot (`snapshot()`) of another process (a Dask shard)."""
        np = self._np
        for i, key in enumerate(map(tuple, other["keys"])):
            index = self._key_index.get(key)
            if index is None:
                index = self._key_index[key] = len(self.keys)
                self.keys.append(key)
                self.ok = np.append(self.ok, 0)
                self.failed = np.append(self.failed, 0)
                self.sum_us = np.append(self.sum_us, 0.0)
                self.buckets = np.vstack([self.buckets, np.zeros((1, len(BUCKETS_S) + 1), int)])
            self.ok[index] += other["ok"][i]
            self.failed[index] += other["failed"][i]
            self.sum_us[index] += other["sum_us"][i]
            self.buckets[index] += np.asarray(other["buckets"][i], np.int64)

    def snapshot(self) -> dict[str, Any]:
        return {
            "keys": [list(k) for k in self.keys],
            "ok": self.ok.tolist(),
            "failed": self.failed.tolist(),
            "sum_us": self.sum_us.tolist(),
            "buckets": self.buckets.tolist(),
        }


class ServiceCollector:
    """A prometheus-client collector reading the service's state when scraped."""

    def __init__(
        self,
        tallies: Callable[[], list[EventTally]],
        flocks: Callable[[], list[dict[str, Any]]],
        health: Callable[[], dict[str, float]],
        store: Callable[[], tuple[int, int]],
        alerts: Callable[[], list[tuple[str, str]]],
        shards: Callable[[], list[tuple[str, int, tuple]]] = list,
    ) -> None:
        self.shards = shards
        self.tallies = tallies
        self.flocks = flocks
        self.health = health
        self.store = store
        self.alerts = alerts

    def describe(self) -> list[Any]:
        return []  # collected fresh every scrape

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        ops = CounterMetricFamily(
            "bosun_operations",
            "Timed operations recorded, by result",
            labels=["flock", "business", "operation", "result"],
        )
        hist = HistogramMetricFamily(
            "bosun_operation_duration_seconds",
            "Duration of timed operations (failed ones included)",
            labels=["flock", "business", "operation"],
        )
        for tally in self.tallies():
            for i, (flock, business, operation) in enumerate(tally.keys):
                labels = [flock, business, operation]
                ops.add_metric([*labels, "success"], int(tally.ok[i]))
                ops.add_metric([*labels, "failure"], int(tally.failed[i]))
                cumulative = tally.buckets[i].cumsum()
                buckets = [(_le(b), int(c)) for b, c in zip(BUCKETS_S, cumulative, strict=False)]
                buckets.append(("+Inf", int(cumulative[-1])))
                hist.add_metric(labels, buckets, float(tally.sum_us[i]) / 1e6)
        yield ops
        yield hist

        successes = CounterMetricFamily(
            "bosun_flock_successes",
            "Business executions that succeeded (mobu's success_count)",
            labels=["flock", "business"],
        )
        failures = CounterMetricFamily(
            "bosun_flock_failures",
            "Business failures (mobu's failure_count)",
            labels=["flock", "business"],
        )
        monkeys = GaugeMetricFamily("bosun_monkeys", "Monkeys by state", labels=["flock", "state"])
        paused = GaugeMetricFamily(
            "bosun_flock_paused", "1 while the flock is paused", labels=["flock"]
        )
        flocks = self.flocks()
        for data in flocks:
            labels = [data["name"], data["business"]]
            successes.add_metric(labels, data["success_count"])
            failures.add_metric(labels, data["failure_count"])
            for state, count in sorted(data.get("states", {}).items()):
                monkeys.add_metric([data["name"], state], count)
            paused.add_metric([data["name"]], 1 if data.get("paused") else 0)
        yield successes
        yield failures
        yield monkeys
        yield paused
        yield GaugeMetricFamily("bosun_flocks", "Flocks of the service", value=len(flocks))

        health = self.health()
        lag = GaugeMetricFamily(
            "bosun_event_loop_lag_seconds",
            "Lag of the monkeys' event loop over the last second",
            labels=["stat"],
        )
        lag.add_metric(["max"], health.get("lag_max_ms", 0.0) / 1000.0)
        lag.add_metric(["p99"], health.get("lag_p99_ms", 0.0) / 1000.0)
        yield lag
        yield GaugeMetricFamily(
            "bosun_process_cpu_percent",
            "CPU of the service process over the last second (100 = one core)",
            value=health.get("cpu_percent", 0.0),
        )
        yield GaugeMetricFamily(
            "bosun_process_resident_memory_bytes",
            "Resident memory of the service process",
            value=health.get("rss_bytes", 0.0),
        )
        yield GaugeMetricFamily(
            "bosun_client_bound",
            "1 when the engine's own saturation distorts the latencies it measures",
            value=1 if health.get("client_bound") else 0,
        )
        yield from self._shard_health()
        files, size = self.store()
        yield GaugeMetricFamily("bosun_events_stored_files", "Part files kept", value=files)
        yield GaugeMetricFamily("bosun_events_stored_bytes", "Bytes of events kept", value=size)
        firing = GaugeMetricFamily(
            "bosun_alerts_firing", "1 per alert rule and flock in breach", labels=["rule", "flock"]
        )
        for rule, flock in self.alerts():
            firing.add_metric([rule, flock], 1)
        yield firing

    def _shard_health(self) -> Iterator[Any]:
        """The engine's health of each Dask shard, from its latest snapshot."""
        from prometheus_client.core import GaugeMetricFamily

        labels = ["flock", "shard"]
        lag = GaugeMetricFamily(
            "bosun_shard_event_loop_lag_seconds",
            "Lag of a Dask shard's event loop over its last second",
            labels=[*labels, "stat"],
        )
        cpu = GaugeMetricFamily("bosun_shard_cpu_percent", "CPU of a Dask shard", labels=labels)
        rss = GaugeMetricFamily(
            "bosun_shard_resident_memory_bytes", "Resident memory of a Dask shard", labels=labels
        )
        active = GaugeMetricFamily(
            "bosun_shard_active_monkeys", "Monkeys running in a Dask shard", labels=labels
        )
        for flock, shard, row in self.shards():
            _, lag_max, lag_p99, cpu_pct, rss_bytes, running, *_ = row
            key = [flock, str(shard)]
            lag.add_metric([*key, "max"], lag_max / 1000.0)
            lag.add_metric([*key, "p99"], lag_p99 / 1000.0)
            cpu.add_metric(key, cpu_pct)
            rss.add_metric(key, rss_bytes)
            active.add_metric(key, running)
        yield from (lag, cpu, rss, active)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def render(collector: ServiceCollector) -> bytes:
    """The text exposition of one scrape (a registry of its own: no process-wide state)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
