"""margindash SDK: report per-call LLM usage and revenue to a self-hosted margindash server."""

from ._version import __version__
from .budgets import BudgetExceeded
from .client import MarginDash
from .config import SETTINGS
from .context import margindash_context
from .integrations import (
    instrument_anthropic,
    instrument_openai,
    uninstrument_anthropic,
    uninstrument_openai,
)
from .rollout import rollout_bucket
from .worker import Stats

__all__ = [
    "SETTINGS",
    "BudgetExceeded",
    "MarginDash",
    "Stats",
    "__version__",
    "instrument_anthropic",
    "instrument_openai",
    "margindash_context",
    "rollout_bucket",
    "uninstrument_anthropic",
    "uninstrument_openai",
]
