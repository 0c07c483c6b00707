"""Every setting of margindash, declared once: environment variable, default and meaning.

Settings are read, highest priority first, from keyword arguments, the environment, a `.env`
file in the working directory, and an optional `margindash.yaml` (path in `MARGINDASH_CONFIG`),
whose keys are the environment variable names (the brief's `config.yaml` works as written).
"""

from __future__ import annotations

import os
import socket
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


def setting(default: Any, env: str, doc: str, **kwargs: Any) -> Any:
    """Declare a setting: its default, the environment variable that sets it, and its meaning."""
    return Field(default, validation_alias=env, description=doc, **kwargs)


class Settings(BaseSettings):
    """The service's configuration (see docs/configuration.md, generated from this class)."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, frozen=True
    )

    database_url: str = setting(
        "sqlite:///margindash.db",
        "MARGINDASH_DATABASE_URL",
        "SQLAlchemy URL of the database: a SQLite file (default, in the working directory) or "
        "`postgresql+psycopg://user:pass@host/db`.",
    )
    api_key: str | None = setting(
        None,
        "MARGINDASH_API_KEY",
        "API key used by the CLI's client commands (`replay --url`) and by the SDKs.",
    )
    ingest_url: str = setting(
        "http://127.0.0.1:8000/v1",
        "MARGINDASH_INGEST_URL",
        "Base URL of the API (`…/v1`), so `POST $MARGINDASH_INGEST_URL/usage` works as written.",
    )
    public_url: str | None = setting(
        None,
        "MARGINDASH_PUBLIC_URL",
        "Address of the dashboard as users reach it (`https://margins.example.com`), for links in "
        "e-mails and the Stripe webhook URL shown in settings. Default: the address "
        "`margindash serve` listens on (`http://HOST:PORT`, its `--host`/`--port` included); set "
        "it behind a proxy, or when `margindash worker` sends the e-mails.",
    )
    host: str = setting("127.0.0.1", "MARGINDASH_HOST", "Address `margindash serve` binds to.")
    port: int = setting(8000, "MARGINDASH_PORT", "Port `margindash serve` listens on.")
    strict_token_counts: bool = setting(
        True,
        "STRICT_TOKEN_COUNTS",
        "Reject usage events without `customer_id`, `prompt_tokens` and `completion_tokens`. "
        "When false, missing customers become `unattributed` and missing token counts are "
        "estimated from `prompt_chars`/`completion_chars`.",
    )
    token_estimate_factor: float = setting(
        1.1,
        "TOKEN_ESTIMATE_FACTOR",
        "Safety factor applied to estimated token counts (chars / 4 * factor).",
        gt=0,
        le=10,
    )
    max_event_age_days: int = setting(
        400,
        "MAX_EVENT_AGE_DAYS",
        "Oldest event timestamp accepted, in days, so a year of logs can be back-filled.",
        ge=1,
    )
    max_batch_events: int = setting(
        1000, "MARGINDASH_MAX_BATCH_EVENTS", "Most events accepted in one request.", ge=1
    )
    max_body_bytes: int = setting(
        5 * 1024 * 1024,
        "MARGINDASH_MAX_BODY_BYTES",
        "Largest request body accepted (bytes); larger bodies get 413.",
        ge=1024,
    )
    watch_margin_pct: float = setting(
        20.0,
        "MARGINDASH_WATCH_MARGIN_PCT",
        "Customers whose margin % is below this (but not negative) get the action `monitor`.",
    )
    rate_limit_per_minute: int = setting(
        0,
        "MARGINDASH_RATE_LIMIT_PER_MINUTE",
        "Requests per minute allowed per API key (0 = unlimited).",
        ge=0,
    )
    log_level: str = setting("INFO", "MARGINDASH_LOG_LEVEL", "Log level of the service.")
    log_json: bool = setting(
        False, "MARGINDASH_LOG_JSON", "Write logs as one JSON object per line."
    )
    stripe_webhook_secret: str | None = setting(
        None,
        "STRIPE_WEBHOOK_SECRET",
        "Signing secret(s) of the Stripe webhook endpoint (`whsec_…`, comma-separated to rotate).",
    )
    default_org: str | None = setting(
        None,
        "MARGINDASH_DEFAULT_ORG",
        "Org (name or id) that `POST /v1/stripe/webhook` books into; default: the oldest org.",
    )
    stripe_api_key: str | None = setting(
        None,
        "STRIPE_API_KEY",
        "Restricted read-only Stripe key (`rk_…`) for `margindash stripe backfill` and `verify`, "
        "the daily reconciliation, and invoice lines beyond a webhook's first page.",
    )
    stripe_api_base: str = setting(
        "https://api.stripe.com",
        "MARGINDASH_STRIPE_API_BASE",
        "Base URL of Stripe's API; change it only for a local stand-in such as stripe-mock.",
    )
    stripe_customer_metadata_key: str = setting(
        "margindash_customer_id",
        "MARGINDASH_STRIPE_CUSTOMER_METADATA_KEY",
        "Metadata key on a Stripe customer (or its subscription) that holds your app's "
        "`customer_id`.",
        min_length=1,
    )
    stripe_mode: Literal["live", "test"] = setting(
        "live",
        "MARGINDASH_STRIPE_MODE",
        "Which Stripe mode's revenue is booked, `live` or `test`; events of the other mode are "
        "stored but never booked. An org's own setting (`margindash stripe configure`) wins.",
    )
    stripe_reconcile_days: int = setting(
        35,
        "MARGINDASH_STRIPE_RECONCILE_DAYS",
        "Days the daily Stripe reconciliation re-reads with `STRIPE_API_KEY` (0 turns it off).",
        ge=0,
    )
    smtp_host: str | None = setting(None, "SMTP_HOST", "SMTP relay for alert e-mails.")
    smtp_port: int = setting(587, "SMTP_PORT", "SMTP port.")
    smtp_username: str | None = setting(None, "SMTP_USERNAME", "SMTP user name, if any.")
    smtp_password: str | None = setting(None, "SMTP_PASSWORD", "SMTP password, if any.")
    smtp_starttls: bool = setting(True, "SMTP_STARTTLS", "Upgrade the SMTP connection with TLS.")
    alert_from: str = setting(
        "margindash@localhost", "ALERT_FROM", "Sender address of alert e-mails."
    )
    session_hours: int = setting(
        168,
        "MARGINDASH_SESSION_HOURS",
        "How long a dashboard login lasts, in hours.",
        ge=1,
    )
    login_max_failures: int = setting(
        10,
        "MARGINDASH_LOGIN_MAX_FAILURES",
        "Failed dashboard logins allowed per e-mail and per client address in 15 minutes; "
        "further attempts get 429 until the window passes.",
        ge=1,
    )
    alert_max_attempts: int = setting(
        8,
        "MARGINDASH_ALERT_MAX_ATTEMPTS",
        "Delivery attempts per alert channel (e-mail, webhook) before it is left as failed.",
        ge=1,
    )
    alert_retry_seconds: int = setting(
        30,
        "MARGINDASH_ALERT_RETRY_SECONDS",
        "Wait before the first retry of a failed alert delivery; it doubles per attempt, "
        "up to an hour.",
        ge=1,
    )
    alert_timeout_seconds: float = setting(
        10.0,
        "MARGINDASH_ALERT_TIMEOUT_SECONDS",
        "Network timeout of one SMTP or webhook delivery attempt, in seconds.",
        gt=0,
    )

    simulator_weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = setting(
        {"gpqa": 1.0, "mmlu-pro": 1.0},
        "MARGINDASH_SIMULATOR_WEIGHTS",
        "How the simulator weighs benchmarks into one quality score, as JSON "
        '(`{"gpqa": 1, "mmlu-pro": 1}`); an org\'s own weights (`margindash benchmarks weights`) '
        "and a request's `weights` win.",
    )
    simulator_max_quality_drop_pct: float = setting(
        5.0,
        "MARGINDASH_SIMULATOR_MAX_QUALITY_DROP_PCT",
        "Default quality constraint of the simulator: a candidate may score at most this many "
        "percent below the current model (when a request sets neither `min_quality` nor "
        "`max_quality_drop_pct`).",
        ge=0,
        le=100,
    )
    simulator_token_band_pct: float = setting(
        10.0,
        "MARGINDASH_SIMULATOR_TOKEN_BAND_PCT",
        "Uncertainty (±%) on the tokens a candidate of another model would spend, giving the "
        "simulator's savings range; observed tokens per call replace it where the org has them.",
        ge=0,
        lt=100,
    )
    simulator_migration_hours: Decimal | None = setting(
        None,
        "MARGINDASH_SIMULATOR_MIGRATION_HOURS",
        "Engineering hours to migrate one feature to another model, for the simulator's payback "
        "(a request's `migration_hours` wins).",
        ge=0,
    )
    simulator_hourly_rate: Decimal | None = setting(
        None,
        "MARGINDASH_SIMULATOR_HOURLY_RATE",
        "Cost of one engineering hour in USD, for the simulator's payback (a request's "
        "`hourly_rate` wins).",
        ge=0,
    )
    pricing_url: str = setting(
        # genai-prices' published data file (genai_prices.update_prices.DEFAULT_UPDATE_URL).
        "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/"
        "new_data/v2/data.json",
        "MARGINDASH_PRICING_URL",
        "Where the daily price sync fetches the catalogue: an http(s) URL of a genai-prices "
        "data file, or a local file path (air-gapped installs).",
        min_length=1,
    )
    pricing_sync_hours: int = setting(
        24,
        "MARGINDASH_PRICING_SYNC_HOURS",
        "Hours between scheduled price syncs; a failed sync is retried hourly (0 turns the "
        "scheduled sync off; `margindash pricing sync` still works).",
        ge=0,
    )
    pricing_max_jump: Decimal = setting(
        Decimal(10),
        "MARGINDASH_PRICING_MAX_JUMP",
        "A synced price moving by more than this factor either way holds the new catalogue for "
        "review (`margindash pricing approve`) instead of using it.",
        gt=1,
    )
    pricing_fetch_timeout_seconds: float = setting(
        30.0,
        "MARGINDASH_PRICING_FETCH_TIMEOUT_SECONDS",
        "Network timeout of the price sync's download, in seconds.",
        gt=0,
    )

    @property
    def dashboard_url(self) -> str:
        """Where users reach the dashboard, without a trailing slash: `MARGINDASH_PUBLIC_URL`, or
        else the address `serve` listens on (this machine's name when it binds every address)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = socket.gethostname() if self.host in _EVERY_ADDRESS else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_path = Path(os.environ.get("MARGINDASH_CONFIG", "margindash.yaml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if yaml_path.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)


_EVERY_ADDRESS = frozenset({"", "0.0.0.0", "::"})
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def unset_public_url_warning(settings: Settings, *, worker: bool = False) -> str | None:
    """A warning when links in e-mails may not reach users: no `MARGINDASH_PUBLIC_URL`, and a
    worker (which cannot see a server's `--host`/`--port`) or an address other than loopback."""
    if settings.public_url or (settings.host in _LOOPBACK and not worker):
        return None
    source = " (MARGINDASH_HOST and MARGINDASH_PORT; `serve --port` is not seen here)"
    return (
        f"MARGINDASH_PUBLIC_URL is not set: links in e-mails point at {settings.dashboard_url}"
        f"{source if worker else ''}. Set it to the address users reach the dashboard at."
    )


def setting_docs() -> list[tuple[str, FieldInfo]]:
    """(environment variable, field) for every setting, in declaration order."""
    return [(str(field.validation_alias), field) for field in Settings.model_fields.values()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
