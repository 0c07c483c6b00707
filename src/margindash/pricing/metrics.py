"""Prometheus gauges of the price sync, read from the database when `/metrics` is scraped.

The sync may run in another process (the worker), so the gauges come from `pricing_sync_runs`
rather than from counters of this process. The collector reads the database of the latest
pricer created in this process (the app's), at most every `_CACHE_S`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from margindash.metrics import REGISTRY
from margindash.pricing.status import SUCCESSFUL, pricing_status

log = logging.getLogger(__name__)
_CACHE_S = 10.0
_STATUSES = (*SUCCESSFUL, "failed", "held")


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "last_success": GaugeMetricFamily(
            "margindash_pricing_last_success_timestamp_seconds",
            "Unix time the last successful price sync finished.",
        ),
        "staleness": GaugeMetricFamily(
            "margindash_pricing_staleness_seconds",
            "Seconds since the last successful price sync (+Inf: never).",
        ),
        "stale": GaugeMetricFamily(
            "margindash_pricing_stale",
            "1 when no price sync succeeded in the last 24 hours.",
        ),
        "rate": GaugeMetricFamily(
            "margindash_pricing_sync_success_ratio_7d",
            "Successful price syncs / all price syncs of the last 7 days.",
        ),
        "runs": GaugeMetricFamily(
            "margindash_pricing_sync_runs_7d",
            "Price sync runs of the last 7 days, by status.",
            labels=["status"],
        ),
        "models": GaugeMetricFamily(
            "margindash_pricing_catalogue_models",
            "Models in the price catalogue in force.",
        ),
        "held": GaugeMetricFamily(
            "margindash_pricing_snapshot_held",
            "1 when a fetched catalogue waits for review (`margindash pricing approve`).",
        ),
    }


class PricingSyncCollector(Collector):
    """Collects the sync's health from the watched engine's database."""

    def __init__(self) -> None:
        self._engine: weakref.ReferenceType[Engine] | None = None
        self._cached: tuple[float, list[Metric]] = (0.0, [])
        self._lock = threading.Lock()

    def watch(self, engine: Engine) -> None:
        with self._lock:
            self._engine = weakref.ref(engine)
            self._cached = (0.0, [])

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            expires, metrics = self._cached
            if time.monotonic() >= expires:
                metrics = self._read()
                self._cached = (time.monotonic() + _CACHE_S, metrics)
        yield from metrics

    def _read(self) -> list[Metric]:
        engine = self._engine() if self._engine else None
        if engine is None:
            return []
        try:
            status = pricing_status(engine)
        except SQLAlchemyError as exc:  # a scrape must never fail because of the database
            log.warning("pricing metrics unavailable: %s", exc)
            return []
        families = _families()
        if status.last_success_at is not None:
            families["last_success"].add_metric([], status.last_success_at.timestamp())
        staleness = status.staleness
        families["staleness"].add_metric(
            [], math.inf if staleness is None else staleness.total_seconds()
        )
        families["stale"].add_metric([], 1.0 if status.stale else 0.0)
        if status.runs_7d:
            families["rate"].add_metric([], status.successes_7d / status.runs_7d)
        for name in _STATUSES:
            families["runs"].add_metric([name], float(status.counts_7d.get(name, 0)))
        if status.snapshot is not None:
            families["models"].add_metric([], float(status.snapshot.model_count))
        families["held"].add_metric([], 1.0 if status.held else 0.0)
        return list(families.values())


COLLECTOR = PricingSyncCollector()
REGISTRY.register(COLLECTOR)


def watch_catalogue(engine: Engine) -> None:
    """Report the sync health of this database on `/metrics`."""
    COLLECTOR.watch(engine)
