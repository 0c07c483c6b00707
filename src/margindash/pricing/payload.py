"""The genai-prices data file: parse it, check it, and write it back as canonical JSON.

The published file (`prices/new_data/v2/data.json`) is a JSON array of providers with their
models and prices. A snapshot is stored as canonical JSON (sorted keys, no spaces, prices as
decimal strings) made from the parsed objects, so the same catalogue always has the same
SHA-256 whatever the source's formatting, and the bundled data and a fetched file compare
directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from functools import cache, lru_cache
from importlib.metadata import version
from typing import Any

import pydantic
from genai_prices import types as gp

# The published file is ~0.4 MB; a body far larger than that is not a price list.
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
_RENAMED_FIELDS = {"or_": "or", "and_": "and"}


class InvalidCatalogue(ValueError):
    """A price file that cannot be used: it does not parse, or a price is impossible."""


@dataclass(frozen=True, slots=True)
class CataloguePayload:
    """A parsed price file with its canonical form and that form's SHA-256."""

    providers: list[gp.Provider]
    canonical: bytes
    sha256: str

    @property
    def model_count(self) -> int:
        return sum(len(p.models) for p in self.providers)

    def compressed(self) -> bytes:
        return zlib.compress(self.canonical, 6)


@cache  # the installed version cannot change while the process runs; reading it parses files
def bundled_label() -> str:
    """How the data bundled with the installed genai-prices is named as a source."""
    return f"genai-prices {version('genai-prices')} (bundled)"


def to_plain(value: Any) -> Any:
    """genai-prices objects as the plain JSON values of its data file (Decimals as strings)."""
    if isinstance(value, gp.ModelPrice):
        return {
            k: to_plain(v)
            for k, v in value.__dict__.items()
            if v is not None and not k.startswith("_")
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if item is not None and not field.name.startswith("_"):
                plain[_RENAMED_FIELDS.get(field.name, field.name)] = to_plain(item)
        return plain
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def canonical_payload(providers: list[gp.Provider]) -> CataloguePayload:
    """The canonical form of parsed providers."""
    canonical = json.dumps(
        to_plain(providers), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    return CataloguePayload(providers, canonical, hashlib.sha256(canonical).hexdigest())


def parse_payload(raw: bytes) -> CataloguePayload:
    """Parse and check a price file; raises InvalidCatalogue saying what is wrong."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise InvalidCatalogue(f"the file is {len(raw):,} bytes, more than a price list can be")
    try:
        document = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCatalogue(f"not JSON: {exc}") from None
    if not isinstance(document, list) or not all(isinstance(p, dict) for p in document):
        raise InvalidCatalogue("expected a JSON array of providers")
    providers = providers_from_plain(document)
    _check_prices(providers)
    return canonical_payload(providers)


def providers_from_plain(document: list[Any]) -> list[gp.Provider]:
    """genai-prices providers from the file's JSON values; raises InvalidCatalogue."""
    try:
        with warnings.catch_warnings():
            # Extractor destinations newer than the installed genai-prices only warn.
            warnings.simplefilter("ignore", UserWarning)
            providers = gp._providers_from_raw(document)
    except (pydantic.ValidationError, ValueError, TypeError, KeyError) as exc:
        first = str(exc).splitlines()
        raise InvalidCatalogue(f"not a genai-prices catalogue: {' '.join(first[:3])}") from None
    return providers


def load_payload(compressed: bytes) -> list[gp.Provider]:
    """Providers from a stored (compressed canonical) snapshot."""
    return providers_from_plain(json.loads(zlib.decompress(compressed)))


@lru_cache(maxsize=1)
def bundled_payload() -> CataloguePayload:
    """The data bundled with genai-prices, in canonical form (computed once per process)."""
    from genai_prices.data import providers  # a large module: imported when needed

    return canonical_payload(providers)


def _check_prices(providers: list[gp.Provider]) -> None:
    priced = 0
    for provider in providers:
        if not provider.id:
            raise InvalidCatalogue("a provider has an empty id")
        for model in provider.models:
            for key, value in _price_values(model):
                if value < 0:
                    raise InvalidCatalogue(f"{provider.id}:{model.id}: {key} is negative ({value})")
                if not value.is_finite():
                    raise InvalidCatalogue(f"{provider.id}:{model.id}: {key} is not a number")
            priced += 1
    if not priced:
        raise InvalidCatalogue("the file has no models")


def _price_values(model: gp.ModelInfo) -> Iterator[tuple[str, Decimal]]:
    prices = [model.prices] if isinstance(model.prices, gp.ModelPrice) else model.prices
    price_sets = [p if isinstance(p, gp.ModelPrice) else p.prices for p in prices]
    price_sets += [variant.prices for variant in model.price_variants or ()]
    for price in price_sets:
        for key, value in price.__dict__.items():
            if isinstance(value, gp.TieredPrices):
                yield key, value.base
                for tier in value.tiers:
                    yield f"{key} (tier from {tier.start:,})", tier.price
            elif isinstance(value, Decimal):
                yield key, value
