"""Turn a model name as providers, gateways and SDKs report it into catalogue look-ups.

`gpt-4o-mini-2024-07-18`, `GPT-4o-mini `, `openai/gpt-4o-mini`, `models/gemini-2.0-flash`,
`us.anthropic.claude-3-5-haiku-20241022-v1:0` and Bedrock ARNs all name catalogue models; each
name yields an ordered list of (model reference, provider) candidates to try.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Provider names as users and gateways spell them → genai-prices provider ids.
PROVIDER_IDS = {
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "aws": "aws",
    "bedrock": "aws",
    "mistral": "mistral",
    "mistralai": "mistral",
    "deepseek": "deepseek",
    "x-ai": "x-ai",
    "xai": "x-ai",
    "groq": "groq",
    "openrouter": "openrouter",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "meta": "meta",
    "meta-llama": "meta",
    "moonshotai": "moonshotai",
    "cerebras": "cerebras",
}

_BEDROCK_ARN = re.compile(r"^arn:aws[\w-]*:bedrock:[^:]*:[^:]*:[\w-]+/(?P<id>.+)$")
# Bedrock model ids: optional cross-region prefix, vendor, model, version suffix.
_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|ap|au|ca|jp|global|us-gov)\.)?"
    r"(?:anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|qwen|writer)\.[\w.:-]+$"
)


class Candidate(NamedTuple):
    """One way to look a model up: the reference and the provider id (None: any)."""

    ref: str
    provider: str | None


def canonical_name(model_name: str) -> str:
    """The name used as the key for unpriced models and aliases: trimmed, lower case."""
    return model_name.strip().lower()


def provider_id(hint: str | None) -> str | None:
    """A provider hint as a genai-prices provider id (unknown hints pass through)."""
    if hint is None:
        return None
    cleaned = hint.strip().lower()
    return PROVIDER_IDS.get(cleaned, cleaned) or None


def candidates(model_name: str, provider_hint: str | None = None) -> list[Candidate]:
    """Catalogue look-ups to try, most specific first."""
    name = canonical_name(model_name)
    provider = provider_id(provider_hint)
    if arn := _BEDROCK_ARN.match(name):
        name, provider = arn.group("id"), provider or "aws"
    if name.startswith("models/"):
        name = name.removeprefix("models/")

    found: list[Candidate] = []
    if _BEDROCK_ID.match(name) and provider in (None, "aws"):
        found.append(Candidate(name, "aws"))
    if "/" in name and provider != "openrouter":
        vendor, _, bare = name.partition("/")
        vendor_provider = PROVIDER_IDS.get(vendor)
        if vendor_provider is not None:
            found.append(Candidate(bare, vendor_provider))
        found.append(Candidate(name, "openrouter"))
    if provider is not None:
        found.append(Candidate(name, provider))
    found.append(Candidate(name, None))
    return list(dict.fromkeys(found))
