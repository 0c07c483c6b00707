"""The audit lists catalogue prices that differ from the second source by more than 10%."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.pricing.audit import audit_catalogue
from margindash.pricing.listing import current_catalogue
from margindash.pricing.sync import sync_prices
from tests.conftest import Tenant
from tests.pricing.payloads import CatalogueServer, catalogue_doc, set_price

# DeepSeek's off-peak window is not in force at 12:00 UTC: the standard prices are compared.
NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_the_bundled_catalogue_is_audited_against_litellm(engine: Engine) -> None:
    report = audit_catalogue(current_catalogue(engine), at=NOON)
    assert report.reference == "LiteLLM model_prices_and_context_window.json 1.110.2"
    assert report.compared_models > 200 and report.compared_prices > 500
    found = {(d.reference_key, d.field): d for d in report.differences}
    reasoner = found[("deepseek-reasoner", "output_per_mtok")]
    assert (reasoner.catalogue, reasoner.reference) == (Decimal("2.19"), Decimal("0.42"))
    assert reasoner.difference_pct == Decimal("421.43") and reasoner.match == "id"
    assert all(d.difference_pct is None or d.difference_pct > 10 for d in report.differences)
    assert ("gpt-4o-mini", "input_per_mtok") not in found
    stricter = audit_catalogue(current_catalogue(engine), threshold_pct=Decimal(400), at=NOON)
    assert len(stricter.differences) < len(report.differences)


def test_a_wrong_upstream_price_is_caught(
    engine: Engine, client: TestClient, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    doc = catalogue_doc()
    set_price(doc, "openai", "gpt-3.5-turbo", "input_mtok", 0.56)  # 12% above LiteLLM's 0.5
    prices_server.serve(doc)
    assert sync_prices(engine, source=prices_server.url, triggered_by="test").status == "success"
    body = client.get("/v1/pricing/audit", headers=tenant.read).json()
    wrong = [d for d in body["differences"] if d["model"] == "gpt-3.5-turbo"]
    assert wrong == [
        {
            "provider": "openai",
            "model": "gpt-3.5-turbo",
            "field": "input_per_mtok",
            "catalogue": "0.56",
            "reference": "0.5",
            "difference_pct": 12.0,
            "reference_key": "gpt-3.5-turbo",
            "match": "id",
        }
    ]
    looser = client.get(
        "/v1/pricing/audit", params={"threshold_pct": "15"}, headers=tenant.read
    ).json()
    assert not [d for d in looser["differences"] if d["model"] == "gpt-3.5-turbo"]
    bad = client.get("/v1/pricing/audit", params={"threshold_pct": "-1"}, headers=tenant.read)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "threshold_pct"
