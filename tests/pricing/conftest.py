"""Fixtures of the pricing tests: a loopback server that serves catalogue files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pricing.payloads import CatalogueServer, catalogue_doc, catalogue_server


@pytest.fixture
def prices_server() -> Iterator[CatalogueServer]:
    """A loopback HTTP server serving the fixture catalogue (replace it with `serve`)."""
    with catalogue_server() as server:
        server.serve(catalogue_doc())
        yield server
