"""Wrappers for provider clients; each works without importing the provider package itself."""

from .anthropic import instrument_anthropic, uninstrument_anthropic
from .openai import instrument_openai, uninstrument_openai

__all__ = [
    "instrument_anthropic",
    "instrument_openai",
    "uninstrument_anthropic",
    "uninstrument_openai",
]
