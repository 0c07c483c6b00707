"""Fixtures: SDK errors re-raised, a stand-in ingest server, fast-retrying clients."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from margindash_sdk import MarginDash, _guard
from servers import IngestStandIn

# Short waits so failure paths run in milliseconds; production defaults are seconds.
FAST = {
    "flush_interval": 0.05,
    "backoff_base": 0.02,
    "backoff_max": 0.2,
    "max_retries": 5,
    "timeout": 2.0,
    "shutdown_timeout": 1.0,
}

ClientFactory = Callable[..., MarginDash]


@pytest.fixture(autouse=True)
def raise_sdk_errors() -> Iterator[None]:
    """Make SDK-internal errors fail the test instead of being swallowed."""
    _guard.RAISE_INTERNAL_ERRORS = True
    _guard.WORKER_ERRORS.clear()
    yield
    errors = list(_guard.WORKER_ERRORS)
    _guard.RAISE_INTERNAL_ERRORS = False
    assert not errors, f"the SDK worker hit internal errors: {errors!r}"


@pytest.fixture
def ingest() -> Iterator[IngestStandIn]:
    """A stand-in margindash ingest API on loopback."""
    stand_in = IngestStandIn()
    stand_in.server.start()
    yield stand_in
    stand_in.server.stop()


@pytest.fixture
def make_client(ingest: IngestStandIn) -> Iterator[ClientFactory]:
    """Build clients pointed at the stand-in (unless overridden); shut them all down afterwards."""
    made: list[MarginDash] = []

    def make(**overrides: Any) -> MarginDash:
        options: dict[str, Any] = {"api_key": "md_test_key", "base_url": ingest.url, **FAST}
        options.update(overrides)
        client = MarginDash(environ={}, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.shutdown(timeout=1.0)


def require(module: str) -> Any:
    """Import an optional test dependency: skip locally when absent, fail in CI."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(
        module, reason=f"{module} is not installed: pip install -e 'sdk/python[test]'"
    )
