"""The demo data set reproduces the brief's sample numbers exactly through the API."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient

from margindash.app import create_app
from margindash.config import Settings
from margindash.db.engine import make_engine
from margindash.demo import load_demo
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.orgs.keys import create_api_key
from margindash.orgs.service import create_org
from margindash.pricing.service import Pricer


def test_demo_month_matches_the_brief(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url)
    engine = make_engine(sqlite_url)
    org = create_org(engine, name="demo").org
    ingestor = UsageIngestor(engine=engine, pricer=Pricer(engine), rules=event_rules(settings))
    summary = load_demo(ingestor, org=org, today=date(2026, 3, 20))
    assert summary.calibrated_month == "2026-02"
    headers = {"Authorization": f"Bearer {create_api_key(engine, org_id=org.id, scope='read')}"}
    with TestClient(create_app(settings)) as client:
        pnl = client.get("/v1/pnl?month=2026-02&group_by=customer", headers=headers).json()
        features = client.get("/v1/pnl?month=2026-02&group_by=feature", headers=headers).json()
        models = client.get("/v1/pnl?month=2026-02&group_by=model", headers=headers).json()
    totals = pnl["totals"]
    assert (totals["revenue"], totals["cost"], totals["margin"], totals["margin_pct"]) == (
        "12480.00",
        "8340.00",
        "4140.00",
        33.17,
    )
    rows = {row["key"]: row for row in pnl["rows"]}
    assert len(rows) == 50
    assert (rows["plexo-health"]["margin_pct"], rows["plexo-health"]["negative_months"]) == (
        -18.84,
        2,
    )
    assert rows["helix-robotics"]["margin_pct"] == 5.2
    assert rows["northwind-labs"]["margin_pct"] == -17.5
    assert sum(1 for row in pnl["rows"] if row["action"] == "reprice_or_throttle") >= 4
    assert {"summarize", "translate", "image_generation"} <= {r["key"] for r in features["rows"]}
    assert len(features["rows"]) == 6
    assert len({r["key"] for r in models["rows"]}) == 8
    assert totals["unpriced_events"] == 0
    engine.dispose()
