"""Every client setting, declared once with its environment variable, default and doc."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("margindash_sdk")

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


@dataclass(frozen=True)
class Setting:
    """One client option: its keyword, environment variable, default and meaning."""

    name: str
    env: str | None
    default: Any
    parse: Callable[[str], Any]
    doc: str


def _bool(raw: str) -> bool:
    return raw.strip().lower() not in {"0", "false", "no", "off", ""}


def _csv(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _optional_float(raw: str) -> float | None:
    return float(raw) if raw.strip() else None


SETTINGS: tuple[Setting, ...] = (
    Setting("api_key", "MARGINDASH_API_KEY", None, str, "Ingest key sent as a Bearer token."),
    Setting(
        "base_url",
        "MARGINDASH_INGEST_URL",
        DEFAULT_BASE_URL,
        str,
        "The server's `/v1` base URL.",
    ),
    Setting(
        "enabled",
        "MARGINDASH_ENABLED",
        True,
        _bool,
        "Kill switch: `false` turns every call into a no-op.",
    ),
    Setting(
        "rollout_percent",
        "MARGINDASH_ROLLOUT_PERCENT",
        None,
        _optional_float,
        "Canary: share of customers (0-100, by a stable hash of customer_id) that report. "
        "Default 100, or 0 when an allowlist is set.",
    ),
    Setting(
        "rollout_customers",
        "MARGINDASH_ROLLOUT_CUSTOMERS",
        frozenset(),
        _csv,
        "Canary allowlist: comma-separated customer ids that always report.",
    ),
    Setting(
        "max_queue_size",
        "MARGINDASH_MAX_QUEUE_SIZE",
        10_000,
        int,
        "Events held in memory; more are dropped and counted.",
    ),
    Setting("batch_size", "MARGINDASH_BATCH_SIZE", 100, int, "Events per request (max 1000)."),
    Setting(
        "flush_interval",
        "MARGINDASH_FLUSH_INTERVAL",
        5.0,
        float,
        "Seconds an event may wait for its batch to fill.",
    ),
    Setting(
        "max_retries",
        "MARGINDASH_MAX_RETRIES",
        8,
        int,
        "Retries of one batch on network errors, 408, 429 and 5xx before it counts as failed.",
    ),
    Setting(
        "backoff_base",
        "MARGINDASH_BACKOFF_BASE",
        0.5,
        float,
        "First retry delay in seconds; doubles per retry, with full jitter.",
    ),
    Setting(
        "backoff_max",
        "MARGINDASH_BACKOFF_MAX",
        30.0,
        float,
        "Longest retry delay in seconds (a larger Retry-After is capped at 60).",
    ),
    Setting("timeout", "MARGINDASH_TIMEOUT", 10.0, float, "HTTP timeout per request, seconds."),
    Setting(
        "shutdown_timeout",
        "MARGINDASH_SHUTDOWN_TIMEOUT",
        2.0,
        float,
        "Seconds the interpreter-exit flush may take.",
    ),
    Setting(
        "blocklist_ttl",
        "MARGINDASH_BLOCKLIST_TTL",
        30.0,
        float,
        "Seconds the budget blocklist is cached by `guarded_call`.",
    ),
    Setting(
        "blocklist_timeout",
        "MARGINDASH_BLOCKLIST_TIMEOUT",
        2.0,
        float,
        "HTTP timeout for the blocklist fetch, seconds (it runs in the calling thread).",
    ),
)


@dataclass(frozen=True)
class Options:
    """Resolved client options: explicit arguments, else environment, else defaults."""

    api_key: str | None
    base_url: str
    enabled: bool
    rollout_percent: float | None
    rollout_customers: frozenset[str]
    max_queue_size: int
    batch_size: int
    flush_interval: float
    max_retries: int
    backoff_base: float
    backoff_max: float
    timeout: float
    shutdown_timeout: float
    blocklist_ttl: float
    blocklist_timeout: float

    @property
    def effective_rollout_percent(self) -> float:
        """The canary share, defaulting to everyone unless an allowlist narrows it."""
        if self.rollout_percent is not None:
            return min(max(self.rollout_percent, 0.0), 100.0)
        return 0.0 if self.rollout_customers else 100.0


def resolve_options(
    explicit: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Options:
    """Build Options; a malformed environment value falls back to its default with a warning."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = explicit.get(setting.name)
        if value is None and setting.env and setting.env in env:
            try:
                value = setting.parse(env[setting.env])
            except ValueError:
                logger.warning("margindash: ignoring invalid %s=%r", setting.env, env[setting.env])
        values[setting.name] = setting.default if value is None else value
    values["rollout_customers"] = frozenset(values["rollout_customers"])
    values["base_url"] = str(values["base_url"]).rstrip("/")
    values["batch_size"] = min(max(int(values["batch_size"]), 1), 1000)
    known = {field.name for field in dataclasses.fields(Options)}
    return Options(**{key: value for key, value in values.items() if key in known})
