"""Stripe tests run on SQLite and PostgreSQL with a configured webhook secret."""

from __future__ import annotations

import pytest

from margindash.config import Settings
from tests.stripe_sync.helpers import SECRET


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        stripe_webhook_secret=SECRET,
        stripe_api_key=None,
        default_org=None,
        stripe_mode="live",
        stripe_customer_metadata_key="margindash_customer_id",
    )
