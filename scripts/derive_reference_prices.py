"""Derive the pricing audit's reference prices from LiteLLM's model price file.

LiteLLM (MIT, BerriAI/litellm) publishes per-token prices, context windows and capability flags
in ``model_prices_and_context_window.json``. This keeps the chat/completion entries of the major
providers that genai-prices can resolve, converts every price exactly to USD per 1M tokens as a
decimal string (``Decimal(repr(x)) * 1_000_000``, normalised), and writes one JSON file with
sorted keys, so the audit can compare the primary catalogue (genai-prices) with a second source.

    python scripts/derive_reference_prices.py \
        --source model_prices_and_context_window_litellm-1.110.2.json \
        --out src/margindash/pricing/data/reference_prices.json

Each entry records the genai-prices model that prices the same name (as
``find_provider_model`` resolves it; a provider's fallback, e.g. Azure to OpenAI, is recorded as
the model's own provider) and how it matched: ``id`` (the name is the model id), ``alias`` (the
model's rule lists the name) or ``rule`` (a prefix/contains rule: worth a look when prices
differ). Region-scoped keys (``azure/eu/...``, ``bedrock/us-east-1/...``) and provisioned
throughput keys are left out: they carry regional surcharges or hourly prices.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot

# LiteLLM provider -> genai-prices provider id.
PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex_ai-language-models": "google",
    "vertex_ai-anthropic_models": "google",
    "mistral": "mistral",
    "codestral": "mistral",
    "text-completion-codestral": "mistral",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "groq": "groq",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "azure": "azure",
    "azure_ai": "azure",
}
MODES = frozenset({"chat", "completion"})
# Route prefixes LiteLLM puts in front of a provider's own model name.
ROUTE_PREFIXES = frozenset(
    {
        "openai",
        "gemini",
        "vertex_ai",
        "mistral",
        "codestral",
        "text-completion-codestral",
        "deepseek",
        "xai",
        "groq",
        "bedrock",
        "azure",
        "azure_ai",
    }
)
# Providers whose model names never contain "/": a remaining "/" is a region or commitment path.
FLAT_NAMES = frozenset({"aws", "azure"})
PRICES = {
    "input_mtok": "input_cost_per_token",
    "output_mtok": "output_cost_per_token",
    "cache_read_mtok": "cache_read_input_token_cost",
    "cache_write_mtok": "cache_creation_input_token_cost",
}
FLAGS = (
    "supports_function_calling",
    "supports_prompt_caching",
    "supports_reasoning",
    "supports_vision",
)
TOKENS_PER_MTOK = 1_000_000


def per_million(per_token: Any) -> str:
    """LiteLLM's per-token float as an exact decimal string per 1M tokens."""
    if isinstance(per_token, bool) or not isinstance(per_token, int | float):
        raise ValueError(f"price {per_token!r} is not a number")
    value = (Decimal(repr(per_token)) * TOKENS_PER_MTOK).normalize()
    return format(value, "f")


def model_ref(key: str) -> str:
    """The LiteLLM key without its route prefix ("gemini/", "azure/", ...)."""
    head, _, rest = key.partition("/")
    return rest if rest and head in ROUTE_PREFIXES else key


def explicit_names(clause: Any) -> set[str]:
    """Names a genai-prices match rule accepts by plain equality (not under an AND)."""
    if hasattr(clause, "equals"):
        return {str(clause.equals).lower()}
    if hasattr(clause, "or_"):
        return set().union(*(explicit_names(sub) for sub in clause.or_))
    return set()


class Resolver:
    def __init__(self) -> None:
        self.snapshot = data_snapshot.get_snapshot()
        self.owner = {id(m): p.id for p in self.snapshot.providers for m in p.models}

    def resolve(self, ref: str, provider_id: str) -> dict[str, str] | None:
        try:
            _, model = self.snapshot.find_provider_model(ref, None, provider_id, None)
        except LookupError:
            return None
        if ref.lower() == model.id.lower():
            how = "id"
        elif ref.lower() in explicit_names(model.match):
            how = "alias"
        else:
            how = "rule"
        return {"match": how, "model_id": model.id, "provider_id": self.owner[id(model)]}


def reference_entry(
    key: str, entry: Mapping[str, Any], resolver: Resolver
) -> tuple[dict[str, Any] | None, str | None]:
    """The stored entry for one LiteLLM key, or None and why it was left out."""
    provider_id = PROVIDERS[entry["litellm_provider"]]
    ref = model_ref(key)
    if provider_id in FLAT_NAMES and "/" in ref:
        return None, "region-scoped or provisioned key"
    if "input_cost_per_token" not in entry or "output_cost_per_token" not in entry:
        return None, "no token prices"
    genai = resolver.resolve(ref, provider_id)
    if genai is None:
        return None, "not in genai-prices"
    stored: dict[str, Any] = {
        "genai_prices": genai,
        "litellm_provider": entry["litellm_provider"],
        "mode": entry["mode"],
    }
    for field, source_field in PRICES.items():
        if entry.get(source_field) is not None:
            stored[field] = per_million(entry[source_field])
    for field in ("max_input_tokens", "max_output_tokens"):
        if isinstance(entry.get(field), int):
            stored[field] = entry[field]
    for flag in FLAGS:
        if isinstance(entry.get(flag), bool):
            stored[flag] = entry[flag]
    if any(re.search(r"_above_\d+k?_tokens$", name) for name in entry):
        stored["has_tiered_prices"] = True
    return stored, None


def derive(source: Path, *, litellm_version: str) -> tuple[dict[str, Any], list[str]]:
    """Build the reference document and the lines of the printed summary."""
    raw = json.loads(source.read_text())
    resolver = Resolver()
    models: dict[str, Any] = {}
    skipped: dict[str, int] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("litellm_provider") not in PROVIDERS:
            continue
        if entry.get("mode") not in MODES:
            continue
        stored, reason = reference_entry(key, entry, resolver)
        if stored is None:
            label = f"{entry['litellm_provider']}: {reason}"
            skipped[label] = skipped.get(label, 0) + 1
            continue
        models[key] = stored
    document = {
        "genai_prices_version": version("genai-prices"),
        "license": "MIT, BerriAI/litellm",
        "models": models,
        "prices": "USD per 1M tokens, decimal strings converted exactly from LiteLLM's floats",
        "source": "LiteLLM model_prices_and_context_window.json",
        "source_url": "https://github.com/BerriAI/litellm",
        "version": litellm_version,
    }
    return document, summary_lines(models, skipped)


def summary_lines(models: Mapping[str, Any], skipped: Mapping[str, int]) -> list[str]:
    per_provider: dict[str, int] = {}
    per_match: dict[str, int] = {}
    for entry in models.values():
        target = entry["genai_prices"]["provider_id"]
        label = f"{entry['litellm_provider']} -> {target}"
        per_provider[label] = per_provider.get(label, 0) + 1
        per_match[entry["genai_prices"]["match"]] = (
            per_match.get(entry["genai_prices"]["match"], 0) + 1
        )
    lines = [f"entries kept: {len(models)}"]
    lines += [f"  {k}: {v}" for k, v in sorted(per_provider.items())]
    lines += [f"  matched by {k}: {v}" for k, v in sorted(per_match.items())]
    lines.append(f"entries left out: {sum(skipped.values())}")
    lines += [f"  {k}: {v}" for k, v in sorted(skipped.items())]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="LiteLLM price JSON file")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--version", help="LiteLLM version (default: from the file name)")
    args = parser.parse_args(argv)

    found = re.search(r"(\d+\.\d+\.\d+)", args.source.name)
    litellm_version = args.version or (found.group(1) if found else None)
    if not litellm_version:
        parser.error("no version in --source's file name: pass --version")
    document, summary = derive(args.source, litellm_version=litellm_version)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print("\n".join(summary))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
