"""Pricing endpoints at the edges of what dates, ids and prices can hold: 422, never a 500,
and nothing written (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.app import create_app
from tests.conftest import Tenant, db_state
from tests.security.operations import safe_settings

TOO_BIG_ID = str(2**63)  # one past the largest 64-bit id
EDGES = [
    ("GET", "/v1/models/gpt-4o/price?at=0001-01-01T00:00:00%2B01:00", None, "at"),
    ("GET", "/v1/models/gpt-4o/price?at=9999-12-31T23:59:59-01:00", None, "at"),
    ("POST", "/v1/pricing/reprice", {"from": "0001-01-01", "to": "2026-01-31"}, "from"),
    ("POST", "/v1/pricing/reprice", {"from": "2026-01-01", "to": "9999-12-31"}, "to"),
    ("POST", "/v1/pricing/overrides", {"model": "m", "input_per_mtok": "1e30"}, "input_per_mtok"),
    (
        "POST",
        "/v1/pricing/overrides",
        {"model": "m", "input_per_mtok": "1", "output_per_mtok": "100000.000000001"},
        "output_per_mtok",
    ),
    ("GET", f"/v1/pricing/snapshots/{TOO_BIG_ID}", None, "snapshot_id"),
    ("GET", "/v1/pricing/snapshots/99999999999999999999", None, "snapshot_id"),
    ("DELETE", f"/v1/pricing/aliases/{TOO_BIG_ID}", None, "alias_id"),
    ("DELETE", f"/v1/pricing/overrides/{TOO_BIG_ID}", None, "override_id"),
    ("DELETE", "/v1/pricing/overrides/0", None, "override_id"),
]


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(safe_settings(database_url, tmp_path))) as client:
        yield client


def test_out_of_range_values_are_422_naming_the_field(
    api: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    wrong = []
    for method, path, body, field in EDGES:
        response = api.request(method, path, json=body, headers=tenant.admin)
        named = [d["field"] for d in response.json()["error"]["details"]]
        if response.status_code != 422 or field not in named:
            wrong.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
    assert wrong == []
    assert db_state(engine) == before


def test_the_largest_allowed_price_and_id_still_work(api: TestClient, tenant: Tenant) -> None:
    body = {"model": "m", "input_per_mtok": "100000", "output_per_mtok": "100000"}
    assert api.post("/v1/pricing/overrides", json=body, headers=tenant.admin).status_code == 201
    missing = api.delete(f"/v1/pricing/overrides/{2**63 - 1}", headers=tenant.admin)
    assert missing.status_code == 404
