"""The bundled LiteLLM reference prices that the pricing audit compares genai-prices with."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from genai_prices.data_snapshot import get_snapshot

PRICE_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
PLAIN_DECIMAL = re.compile(r"^(0|[1-9]\d*)(\.\d*[1-9])?$")  # no exponent, no trailing zeros


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    raw = resources.files("margindash.pricing").joinpath("data", "reference_prices.json")
    document: dict[str, Any] = json.loads(raw.read_text(encoding="utf-8"))
    return document


def test_file_loads_with_source_version_and_license(reference: dict[str, Any]) -> None:
    assert reference["license"] == "MIT, BerriAI/litellm"
    assert reference["version"] == "1.110.2"
    assert "LiteLLM" in reference["source"]
    assert len(reference["models"]) > 300


def test_prices_are_non_negative_plain_decimal_strings(reference: dict[str, Any]) -> None:
    for key, entry in reference["models"].items():
        assert {"input_mtok", "output_mtok"} <= set(entry), key
        for field in PRICE_FIELDS:
            if field in entry:
                text = entry[field]
                assert isinstance(text, str) and PLAIN_DECIMAL.match(text), (key, field, text)
                assert Decimal(text) >= 0


def test_gpt_4o_mini_costs_what_openai_lists(reference: dict[str, Any]) -> None:
    entry = reference["models"]["gpt-4o-mini"]
    assert Decimal(entry["input_mtok"]) == Decimal("0.15")
    assert Decimal(entry["output_mtok"]) == Decimal("0.6")
    assert entry["genai_prices"] == {
        "match": "id",
        "model_id": "gpt-4o-mini",
        "provider_id": "openai",
    }


def test_every_mapped_id_is_a_genai_prices_catalogue_model(reference: dict[str, Any]) -> None:
    catalogue = {p.id: {m.id for m in p.models} for p in get_snapshot().providers}
    missing = [
        key
        for key, entry in reference["models"].items()
        if entry["genai_prices"]["model_id"]
        not in catalogue.get(entry["genai_prices"]["provider_id"], set())
    ]
    assert missing == []


def test_well_known_keys_resolve_to_their_recorded_model(
    reference: dict[str, Any],
) -> None:
    snapshot = get_snapshot()
    providers = {
        "gpt-4o-mini": "openai",
        "claude-sonnet-4-5": "anthropic",
        "gemini/gemini-2.5-pro": "google",
    }
    for key, provider_id in providers.items():
        name = key.split("/", 1)[-1]
        _, model = snapshot.find_provider_model(name, None, provider_id, None)
        assert model.id == reference["models"][key]["genai_prices"]["model_id"]


@pytest.mark.parametrize(
    ("key", "max_input_tokens"),
    [
        ("gpt-4o-mini", 128_000),
        ("gpt-4o", 128_000),
        ("claude-sonnet-4-5", 200_000),
        ("gemini/gemini-2.5-pro", 1_048_576),
    ],
)
def test_context_windows_of_well_known_models(
    reference: dict[str, Any], key: str, max_input_tokens: int
) -> None:
    entry = reference["models"][key]
    assert entry["max_input_tokens"] == max_input_tokens
    assert entry["max_output_tokens"] > 0


def test_capability_flags_are_booleans_where_present(reference: dict[str, Any]) -> None:
    flags = (
        "supports_function_calling",
        "supports_vision",
        "supports_reasoning",
        "supports_prompt_caching",
    )
    for entry in reference["models"].values():
        for flag in flags:
            assert isinstance(entry.get(flag, False), bool)
    assert reference["models"]["gpt-4o-mini"]["supports_vision"] is True
