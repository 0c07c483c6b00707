"""The price sync against a loopback server: every outcome is logged, only `success` changes
what prices new events, and a failed or held sync keeps the last good catalogue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from margindash.config import Settings
from margindash.db.engine import make_engine
from margindash.db.tables import price_snapshots, pricing_sync_runs
from margindash.jobs.scheduler import JOBS, JobContext
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.service import Pricer
from margindash.pricing.snapshots import (
    SnapshotNotFound,
    approve_snapshot,
    current_snapshot,
    snapshot_changes,
)
from margindash.pricing.status import pricing_is_stale, pricing_status
from margindash.pricing.sync import run_scheduled_sync, sync_prices
from tests.conftest import Tenant, db_state, make_tenant
from tests.pricing.payloads import (
    FIXTURE,
    CatalogueServer,
    add_model,
    catalogue_doc,
    remove_model,
    set_price,
)

T0 = datetime(2026, 8, 21, 6, 0, tzinfo=UTC)
MILLION_IN = TokenCounts(1_000_000, 0)


def sync(engine: Engine, server: CatalogueServer, at: datetime = T0):  # type: ignore[no-untyped-def]
    return sync_prices(engine, source=server.url, triggered_by="test", now=at)


def runs(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(pricing_sync_runs.c.status, pricing_sync_runs.c.error).order_by(
                pricing_sync_runs.c.id
            )
        ).all()
    return [(r.status, r.error) for r in rows]


def snapshot_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(price_snapshots)).scalar_one())


def input_price_nanos(engine: Engine, tenant: Tenant, model: str, at: datetime) -> int | None:
    """What 1M input tokens of `model` cost at `at`, as a fresh process would price them."""
    quote = Pricer(engine).price(
        org_id=tenant.org.id, model_name=model, provider=None, tokens=MILLION_IN, at=at
    )
    return quote.cost_nanos


def test_first_sync_stores_the_catalogue_after_the_bundled_seed(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    result = sync(engine, prices_server)
    assert result.status == "success" and result.error is None
    assert result.model_count == 209 and prices_server.requests == 1
    with engine.connect() as conn:
        current = current_snapshot(conn)
        snapshots = conn.execute(
            select(price_snapshots.c.id, price_snapshots.c.source, price_snapshots.c.status)
        ).all()
    assert current is not None and current.id == result.snapshot_id
    assert current.effective_from == T0 and current.model_count == 209
    assert len(current.sha256) == 64
    assert sorted((s.source.endswith("(bundled)"), s.status) for s in snapshots) == [
        (False, "accepted"),
        (True, "accepted"),
    ]
    assert runs(engine) == [("success", None)]


def test_the_same_catalogue_again_is_unchanged_and_stores_nothing(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    first = sync(engine, prices_server)
    # Same content, other formatting: still the same catalogue.
    prices_server.serve(FIXTURE.read_bytes())
    again = sync(engine, prices_server, T0 + timedelta(days=1))
    assert again.status == "unchanged" and again.snapshot_id == first.snapshot_id
    assert again.sha256 == first.sha256 and not again.changes
    assert snapshot_count(engine) == 2  # the seed and the first sync
    with engine.connect() as conn:
        current = current_snapshot(conn)
    assert current is not None and current.checked_at == T0 + timedelta(days=1)
    assert current.effective_from == T0
    assert [s for s, _ in runs(engine)] == ["success", "unchanged"]


def test_a_changed_catalogue_is_stored_with_its_diff(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    sync(engine, prices_server)
    changed = catalogue_doc()
    set_price(changed, "openai", "gpt-3.5-turbo", "input_mtok", 0.45)
    remove_model(changed, "openai", "o1-mini")
    add_model(changed, "openai", "acme-gpt-test", 1.0, 2.0)
    prices_server.serve(changed)

    result = sync(engine, prices_server, T0 + timedelta(days=1))
    assert result.status == "success"
    summary = {(c.change, c.provider, c.model) for c in result.changes}
    assert summary == {
        ("repriced", "openai", "gpt-3.5-turbo"),
        ("removed", "openai", "o1-mini"),
        ("added", "openai", "acme-gpt-test"),
    }
    repriced = next(c for c in result.changes if c.change == "repriced")
    assert repriced.field_changes(T0) == [("input_per_mtok", Decimal("0.5"), Decimal("0.45"))]
    stored = snapshot_changes(engine, result.snapshot_id or 0)
    assert [(c.change, c.model) for c in stored] == [
        ("added", "acme-gpt-test"),
        ("repriced", "gpt-3.5-turbo"),
        ("removed", "o1-mini"),
    ]
    assert stored[1].field_changes(T0) == [("input_per_mtok", Decimal("0.5"), Decimal("0.45"))]
    with engine.connect() as conn:
        run = conn.execute(
            select(pricing_sync_runs).order_by(pricing_sync_runs.c.id.desc())
        ).first()
    assert run is not None
    assert (run.models_added, run.models_removed, run.models_repriced) == (1, 1, 1)
    assert run.snapshot_id == result.snapshot_id and run.finished_at >= run.started_at


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not JSON"),
        (b'{"providers": []}', "expected a JSON array of providers"),
        (b'[{"id": "openai", "models": [{"id": "x"}]}]', "not a genai-prices catalogue"),
        (b"[]", "the file has no models"),
    ],
)
def test_a_malformed_file_fails_and_keeps_the_last_good_catalogue(
    engine: Engine, tenant: Tenant, prices_server: CatalogueServer, body: bytes, expected: str
) -> None:
    good = sync(engine, prices_server)
    before = db_state(engine)
    prices_server.serve(body)
    result = sync(engine, prices_server, T0 + timedelta(hours=1))
    assert result.status == "failed" and expected in (result.error or "")
    after = db_state(engine)
    assert after.pop("pricing_sync_runs") == before.pop("pricing_sync_runs") + 1
    assert after == before  # nothing but the run's log line was written
    with engine.connect() as conn:
        current = current_snapshot(conn)
    assert current is not None and current.id == good.snapshot_id
    assert (
        input_price_nanos(engine, tenant, "gpt-3.5-turbo", T0 + timedelta(hours=2)) == 500_000_000
    )


def test_a_negative_price_fails_naming_the_model(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    doc = catalogue_doc()
    set_price(doc, "openai", "gpt-3.5-turbo", "output_mtok", -1.5)
    prices_server.serve(doc)
    result = sync(engine, prices_server)
    assert result.status == "failed"
    assert result.error == "openai:gpt-3.5-turbo: output_mtok is negative (-1.5)"


def test_a_tenfold_jump_is_held_for_review_until_approved(
    engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    good = sync(engine, prices_server)
    jumped = catalogue_doc()
    set_price(jumped, "openai", "gpt-3.5-turbo", "input_mtok", 5.5)  # 0.5 → 5.5: 11x
    prices_server.serve(jumped)
    held = sync(engine, prices_server, T0 + timedelta(days=1))
    assert held.status == "held"
    assert "openai:gpt-3.5-turbo input_per_mtok 0.5 → 5.5 (11x)" in (held.error or "")
    with engine.connect() as conn:
        current = current_snapshot(conn)
    assert current is not None and current.id == good.snapshot_id  # still the last good one
    later = T0 + timedelta(days=2)
    assert input_price_nanos(engine, tenant, "gpt-3.5-turbo", later) == 500_000_000

    again = sync(engine, prices_server, T0 + timedelta(days=2))
    assert again.status == "held" and again.snapshot_id == held.snapshot_id
    assert snapshot_count(engine) == 3  # seed, good, held: the held one is not stored twice

    approved = approve_snapshot(
        engine, snapshot_id=held.snapshot_id or 0, reviewed_by="reviewer", now=later
    )
    assert approved.status == "accepted" and approved.effective_from == later
    assert input_price_nanos(engine, tenant, "gpt-3.5-turbo", later) == 5_500_000_000
    # Events before the approval keep the price in force then.
    just_before = later - timedelta(hours=1)
    assert input_price_nanos(engine, tenant, "gpt-3.5-turbo", just_before) == 500_000_000
    with pytest.raises(ValueError, match="not held"):
        approve_snapshot(engine, snapshot_id=approved.id, reviewed_by="reviewer")


def test_an_approval_never_reaches_back_before_the_catalogue_in_force(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    sync(engine, prices_server)
    jumped = catalogue_doc()
    set_price(jumped, "openai", "gpt-3.5-turbo", "input_mtok", 50)
    prices_server.serve(jumped)
    held = sync(engine, prices_server, T0 + timedelta(days=1))
    with pytest.raises(ValueError, match="effective_from: must not be before"):
        approve_snapshot(
            engine,
            snapshot_id=held.snapshot_id or 0,
            reviewed_by="r",
            effective_from=T0 - timedelta(days=1),
            now=T0 + timedelta(days=2),
        )
    with pytest.raises(SnapshotNotFound):
        approve_snapshot(engine, snapshot_id=999, reviewed_by="r")
    backdated = approve_snapshot(
        engine,
        snapshot_id=held.snapshot_id or 0,
        reviewed_by="r",
        effective_from=T0 + timedelta(hours=12),
        now=T0 + timedelta(days=2),
    )
    assert backdated.effective_from == T0 + timedelta(hours=12)
    assert [c.model for c in snapshot_changes(engine, backdated.id)] == ["gpt-3.5-turbo"]


def test_pricing_goes_on_when_the_catalogue_cannot_be_reread(
    sqlite_url: str, prices_server: CatalogueServer
) -> None:
    engine = make_engine(sqlite_url)
    sync(engine, prices_server)
    org = make_tenant(engine, "acme").org
    pricer = Pricer(engine)
    quote = pricer.price(
        org_id=org.id, model_name="gpt-3.5-turbo", provider=None, tokens=MILLION_IN, at=T0
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE price_snapshots RENAME TO price_snapshots_gone")
    pricer.reload()  # fails to read the list of snapshots, keeps the catalogue it has
    again = pricer.price(
        org_id=org.id, model_name="gpt-3.5-turbo", provider=None, tokens=MILLION_IN, at=T0
    )
    assert again == quote and quote.price_source == "genai-prices snapshot 2"
    engine.dispose()


def test_a_sentinel_price_that_differs_holds_the_catalogue(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    doc = catalogue_doc()
    set_price(doc, "openai", "gpt-4o-mini", "input_mtok", 0.16)
    prices_server.serve(doc)
    result = sync(engine, prices_server)
    assert result.status == "held"
    assert "sentinel openai:gpt-4o-mini input_per_mtok is 0.16, expected 0.15" in (
        result.error or ""
    )
    remove_model(doc, "openai", "gpt-4o")
    prices_server.serve(doc)
    result = sync(engine, prices_server)
    assert "sentinel model openai:gpt-4o is missing" in (result.error or "")


def test_server_down_fails_is_counted_and_keeps_the_last_good_catalogue(
    engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    good = sync(engine, prices_server)
    prices_server.stop()
    failed = sync(engine, prices_server, T0 + timedelta(hours=1))
    assert failed.status == "failed"
    assert (failed.error or "").startswith(f"cannot fetch {prices_server.url}: ConnectError")
    with engine.connect() as conn:
        current = current_snapshot(conn)
    assert current is not None and current.id == good.snapshot_id
    status = pricing_status(engine, now=T0 + timedelta(hours=2))
    assert (status.runs_7d, status.successes_7d, status.failures_7d) == (2, 1, 1)
    assert status.success_rate_7d == 50.0
    assert status.last_run is not None and status.last_run.status == "failed"
    assert status.last_success_at is not None and not status.stale
    two_hours_later = T0 + timedelta(hours=2)
    assert input_price_nanos(engine, tenant, "gpt-3.5-turbo", two_hours_later) == 500_000_000


def test_an_http_error_status_fails(engine: Engine, prices_server: CatalogueServer) -> None:
    prices_server.status = 503
    result = sync(engine, prices_server)
    assert result.status == "failed" and result.error == f"{prices_server.url} answered HTTP 503"


def test_a_local_file_is_a_source_too(engine: Engine, tmp_path: Path) -> None:
    result = sync_prices(engine, source=str(FIXTURE), triggered_by="test", now=T0)
    assert result.status == "success" and result.model_count == 209
    missing = sync_prices(engine, source=str(tmp_path / "nope.json"), triggered_by="test")
    assert missing.status == "failed" and "cannot read" in (missing.error or "")


def test_staleness_is_24_hours_without_a_successful_sync(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    assert pricing_is_stale(engine, T0)  # never synced
    sync(engine, prices_server)
    assert not pricing_is_stale(engine, T0 + timedelta(hours=23))
    assert pricing_is_stale(engine, T0 + timedelta(hours=25))
    prices_server.stop()
    sync(engine, prices_server, T0 + timedelta(hours=25))  # a failure does not refresh it
    assert pricing_is_stale(engine, T0 + timedelta(hours=26))


def test_the_scheduled_job_syncs_when_due(
    engine: Engine, database_url: str, prices_server: CatalogueServer
) -> None:
    assert any(job.name == "pricing_sync" for job in JOBS)
    settings = Settings(database_url=database_url, pricing_url=prices_server.url)
    context = JobContext(settings=settings, engine=engine)
    run_scheduled_sync(context)
    run_scheduled_sync(context)  # not due again yet
    assert [s for s, _ in runs(engine)] == ["success"]
    off = JobContext(
        settings=Settings(database_url=database_url, pricing_sync_hours=0), engine=engine
    )
    run_scheduled_sync(off)
    assert len(runs(engine)) == 1


def test_sync_and_status_over_the_api(
    database_url: str, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    from margindash.app import create_app

    settings = Settings(database_url=database_url, pricing_url=prices_server.url)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/pricing/sync", headers=tenant.read).status_code == 403
        response = client.post("/v1/pricing/sync", headers=tenant.admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success" and body["model_count"] == 209
        status = client.get("/v1/pricing/status", headers=tenant.read).json()
        assert status["stale"] is False and status["success_rate_7d"] == 100.0
        assert status["last_run"]["status"] == "success"
        assert status["snapshot"]["id"] == body["snapshot_id"]
        runs_body = client.get("/v1/pricing/sync-runs", headers=tenant.read).json()
        assert [r["status"] for r in runs_body["runs"]] == ["success"]
        detail = client.get(f"/v1/pricing/snapshots/{body['snapshot_id']}", headers=tenant.read)
        assert detail.status_code == 200 and detail.json()["changes"]
        assert client.get("/v1/pricing/snapshots/999", headers=tenant.read).status_code == 404
        models = client.get("/v1/models", headers=tenant.read).json()
        assert models["count"] >= 100 and models["snapshot_id"] == body["snapshot_id"]
        gpt = next(m for m in models["models"] if m["model"] == "gpt-4o-mini")
        assert (gpt["input_per_mtok"], gpt["output_per_mtok"]) == ("0.15", "0.6")
        assert gpt["checked_at"] and gpt["last_sync"] and gpt["provider"] == "openai"
        metrics = client.get("/metrics").text
        assert "margindash_pricing_stale 0.0" in metrics
        assert 'margindash_pricing_sync_runs_7d{status="success"} 1.0' in metrics
        assert "margindash_pricing_sync_success_ratio_7d 1.0" in metrics


def test_the_bundled_data_can_be_synced_like_any_source(
    engine: Engine, prices_server: CatalogueServer
) -> None:
    sync(engine, prices_server)
    back = sync_prices(engine, source="bundled", triggered_by="test", now=T0 + timedelta(days=1))
    assert back.status == "success" and back.count("added") > 0
    with engine.connect() as conn:
        current = current_snapshot(conn)
    assert current is not None and current.source == "bundled"
