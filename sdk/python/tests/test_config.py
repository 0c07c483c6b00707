"""Settings: explicit arguments beat the environment, which beats defaults; docs list them all."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from margindash_sdk import SETTINGS, MarginDash
from margindash_sdk.config import resolve_options

README = Path(__file__).parents[2] / "README.md"


def test_environment_fills_what_arguments_leave_out() -> None:
    options = resolve_options(
        {"api_key": "explicit"},
        {
            "MARGINDASH_API_KEY": "from-env",
            "MARGINDASH_INGEST_URL": "http://127.0.0.1:9/v1/",
            "MARGINDASH_ROLLOUT_CUSTOMERS": "a, b,,c",
            "MARGINDASH_BATCH_SIZE": "5000",
        },
    )
    assert options.api_key == "explicit"
    assert options.base_url == "http://127.0.0.1:9/v1"
    assert options.rollout_customers == frozenset({"a", "b", "c"})
    assert options.effective_rollout_percent == 0.0
    assert options.batch_size == 1000, "the API takes at most 1,000 events per request"


@pytest.mark.parametrize("raw", ["false", "0", "no", "off", "FALSE"])
def test_kill_switch_values(raw: str) -> None:
    assert not MarginDash(environ={"MARGINDASH_ENABLED": raw, "MARGINDASH_API_KEY": "k"}).enabled


def test_invalid_environment_value_falls_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="margindash_sdk"):
        options = resolve_options({}, {"MARGINDASH_MAX_QUEUE_SIZE": "lots"})
    assert options.max_queue_size == 10_000
    assert "MARGINDASH_MAX_QUEUE_SIZE" in caplog.text


def test_every_setting_is_documented_in_the_sdk_readme() -> None:
    text = README.read_text("utf-8")
    missing = [s.env for s in SETTINGS if s.env and f"`{s.env}`" not in text]
    assert not missing, f"sdk/README.md does not document {missing}"
