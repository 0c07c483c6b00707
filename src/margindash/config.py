"""Every setting of margindash, declared once: environment variable, default and meaning.

Settings are read, highest priority first, from keyword arguments, the environment, a `.env`
file in the working directory, and an optional `margindash.yaml` (path in `MARGINDASH_CONFIG`),
whose keys are the environment variable names (the brief's `config.yaml` works as written).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    public_url: str = setting(
        "http://127.0.0.1:8000",
        "MARGINDASH_PUBLIC_URL",
        "Address of the dashboard as users reach it; used for links in e-mails.",
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
    smtp_host: str | None = setting(None, "SMTP_HOST", "SMTP relay for alert e-mails.")
    smtp_port: int = setting(587, "SMTP_PORT", "SMTP port.")
    smtp_username: str | None = setting(None, "SMTP_USERNAME", "SMTP user name, if any.")
    smtp_password: str | None = setting(None, "SMTP_PASSWORD", "SMTP password, if any.")
    smtp_starttls: bool = setting(True, "SMTP_STARTTLS", "Upgrade the SMTP connection with TLS.")
    alert_from: str = setting(
        "margindash@localhost", "ALERT_FROM", "Sender address of alert e-mails."
    )

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


def setting_docs() -> list[tuple[str, FieldInfo]]:
    """(environment variable, field) for every setting, in declaration order."""
    return [(str(field.validation_alias), field) for field in Settings.model_fields.values()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
