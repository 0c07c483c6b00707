"""The models the simulator can move usage to: price facts, context window, capabilities, maker.

Prices come from the app's `Catalogue` (genai-prices). Context windows come from genai-prices,
else from LiteLLM's table (`pricing/data/reference_prices.json`, mapped to genai-prices ids),
which also gives the capability flags; a fact neither source states is unknown (None), and the
simulator only excludes a model for a fact it knows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from genai_prices import types as gp

from margindash.pricing.catalogue import Catalogue, CatalogueModel, NotPricedPerToken, TokenCounts
from margindash.simulator.benchmarks import ModelScores

# Capability names accepted in `required_capabilities`, and LiteLLM's flag for each.
CAPABILITY_FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "function_calling": "supports_function_calling",
        "tools": "supports_function_calling",
        "vision": "supports_vision",
        "prompt_caching": "supports_prompt_caching",
        "reasoning": "supports_reasoning",
    }
)
# Where each maker (as LLM Stats names it) sells its own models, in genai-prices provider ids.
MAKER_PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "openai",
        "anthropic": "anthropic",
        "google": "google",
        "mistral": "mistral",
        "deepseek": "deepseek",
        "xai": "x-ai",
        "meta": "meta",
    }
)
_MATCH_RANK = {"id": 0, "alias": 1, "rule": 2}
_ZERO_CALL = TokenCounts(0, 0)
_ONE_MTOK_EACH = TokenCounts(1_000_000, 1_000_000)


@dataclass(frozen=True, slots=True)
class ReferenceFacts:
    """What LiteLLM states about a genai-prices model: input window and capability flags."""

    context_window: int | None
    capabilities: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class SimModel:
    """A catalogue model as the simulator sees it."""

    model: CatalogueModel
    key: str  # the genai-prices key the benchmark scores use: `provider_id/model_id`
    family: str  # the maker ("openai", "meta", …) or, when unknown, the provider
    identity: str  # one id per model whoever hosts it: hosts of one model share it
    maker_host: bool
    context_window: int | None
    capabilities: Mapping[str, bool]
    deprecated: bool
    per_call: bool  # tiered or per-request prices: priced call by call, not on totals

    @property
    def provider(self) -> str:
        return self.model.provider_id

    @property
    def name(self) -> str:
        return self.model.model_id


@lru_cache(maxsize=1)
def reference_facts() -> Mapping[tuple[str, str], ReferenceFacts]:
    """LiteLLM's context windows and capability flags per genai-prices (provider, model)."""
    raw = resources.files("margindash.pricing").joinpath("data", "reference_prices.json")
    entries: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for entry in json.loads(raw.read_text(encoding="utf-8"))["models"].values():
        ref = entry.get("genai_prices")
        if ref is None:
            continue
        rank = _MATCH_RANK.get(ref.get("match", "rule"), len(_MATCH_RANK))
        entries.setdefault((ref["provider_id"], ref["model_id"]), []).append((rank, entry))
    return MappingProxyType({key: _merged_facts(found) for key, found in entries.items()})


def _merged_facts(found: list[tuple[int, dict[str, Any]]]) -> ReferenceFacts:
    # Several LiteLLM names can map to one model: trust the closest matches, and of those
    # keep the smallest window and a capability only if all of them state it.
    best = min(rank for rank, _ in found)
    closest = [entry for rank, entry in found if rank == best]
    windows = [e["max_input_tokens"] for e in closest if e.get("max_input_tokens")]
    capabilities = {}
    for flag in set(CAPABILITY_FLAGS.values()):
        stated = [bool(e[flag]) for e in closest if flag in e]
        if stated:
            capabilities[flag] = all(stated)
    return ReferenceFacts(min(windows) if windows else None, MappingProxyType(capabilities))


class ModelDirectory:
    """Every catalogue model, found by name or key, described once per simulation."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        scores_of: Callable[[str], ModelScores | None],
        at: datetime,
    ):
        """`scores_of(key)` gives a model's ModelScores (or None); `at` is "today"."""
        self.catalogue = catalogue
        self.at = at
        self._scores_of = scores_of
        self._by_key: dict[tuple[str, str], CatalogueModel] = {}
        self._by_id: dict[str, CatalogueModel] = {}
        for provider in catalogue.providers:
            for info in provider.models:
                model = CatalogueModel(provider.id, info.id, info, provider)
                self._by_key[(provider.id, info.id)] = model
                self._by_id.setdefault(info.id, model)
        self._described: dict[tuple[str, str], SimModel | None] = {}

    def get(self, provider_id: str, model_id: str) -> SimModel | None:
        """A model by its catalogue ids; None when unknown or not priced per token."""
        key = (provider_id, model_id)
        if key not in self._described:
            found = self._by_key.get(key)
            self._described[key] = None if found is None else self._describe(found)
        return self._described[key]

    def find(self, name: str) -> SimModel | None:
        """A model from a name: `provider/model`, `provider:model`, or a name as apps send it."""
        for separator in (":", "/"):
            provider_id, found, model_id = name.partition(separator)
            if found and (provider_id, model_id) in self._by_key:
                return self.get(provider_id, model_id)
        resolved = self.catalogue.resolve(name) or self._by_id.get(name)
        return None if resolved is None else self.get(resolved.provider_id, resolved.model_id)

    def of_keys(self, keys: Iterable[str]) -> list[SimModel]:
        """The priced models among `provider_id/model_id` keys (for the benchmark catalogue)."""
        found = []
        for key in keys:
            provider_id, _, model_id = key.partition("/")
            model = self.get(provider_id, model_id)
            if model is not None:
                found.append(model)
        return found

    def _describe(self, model: CatalogueModel) -> SimModel | None:
        try:
            per_request = self.catalogue.cost_nanos(model, _ZERO_CALL, self.at) > 0
            priced = self.catalogue.cost_nanos(model, _ONE_MTOK_EACH, self.at) > 0
        except NotPricedPerToken:
            return None
        if not priced:
            return None
        facts = reference_facts().get((model.provider_id, model.model_id))
        key = f"{model.provider_id}/{model.model_id}"
        scores = self._scores_of(key)
        maker = scores.organization if scores is not None else None
        return SimModel(
            model=model,
            key=key,
            family=maker or model.provider_id,
            identity=(scores.llm_stats_id if scores is not None else None) or key,
            maker_host=maker is not None and MAKER_PROVIDERS.get(maker) == model.provider_id,
            context_window=model.info.context_window
            or (facts.context_window if facts is not None else None),
            capabilities=facts.capabilities if facts is not None else MappingProxyType({}),
            deprecated=bool(model.info.deprecated),
            per_call=per_request or _tiered(model.info.get_prices(self.at)),
        )


def _tiered(price: gp.ModelPrice) -> bool:
    """Whether a price depends on each call's prompt size (genai-prices tiers)."""
    return any(isinstance(value, gp.TieredPrices) for value in vars(price).values())


def lacks(model: SimModel, capability: str) -> bool | None:
    """True when the model is known to lack a capability, None when nobody says."""
    stated = model.capabilities.get(CAPABILITY_FLAGS[capability])
    return None if stated is None else not stated
