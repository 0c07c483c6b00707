"""Prometheus metrics of this process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "margindash_usage_events",
    "Usage events received, by outcome (accepted, duplicate, rejected).",
    ["status"],
    registry=REGISTRY,
)
UNPRICED_EVENTS = Counter(
    "margindash_unpriced_events",
    "Accepted usage events whose model has no price (stored unpriced).",
    registry=REGISTRY,
)
ESTIMATED_EVENTS = Counter(
    "margindash_estimated_events",
    "Accepted usage events whose token counts were estimated.",
    registry=REGISTRY,
)
INGEST_SECONDS = Histogram(
    "margindash_ingest_seconds",
    "Time to check, price and durably store one POST /v1/usage request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
REVENUE_ENTRIES = Counter(
    "margindash_revenue_entries",
    "Revenue entries received, by outcome.",
    ["status"],
    registry=REGISTRY,
)
