"""Every operation checks the API key and its scope: no key or a bad one → 401, a key without
the scope → 403 and nothing written. The table is API.md's contract, one line per operation."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from margindash.app import create_app
from margindash.db.tables import api_keys
from margindash.orgs.keys import create_api_key, hash_key, revoke_api_key
from tests.conftest import Tenant, db_state
from tests.security.operations import Operation, operations, safe_settings, schema_operations

# None: public. "signature": Stripe webhooks, authenticated by their signature, not a key.
REQUIRED_SCOPE: dict[str, str | None] = {
    "POST /v1/usage": "ingest",
    "POST /v1/usage/dry-run": "ingest",
    "GET /v1/usage/{request_id}": "read",
    "POST /v1/revenue": "ingest",
    "GET /v1/fx-rates": "read",
    "POST /v1/fx-rates": "admin",
    "GET /v1/pnl": "read",
    "GET /v1/customers/{customer_id}/pnl": "read",
    "GET /v1/models": "read",
    "GET /v1/models/{model_name}/price": "read",
    "POST /v1/pricing/sync": "admin",
    "GET /v1/pricing/status": "read",
    "GET /v1/pricing/sync-runs": "read",
    "GET /v1/pricing/snapshots": "read",
    "GET /v1/pricing/snapshots/{snapshot_id}": "read",
    "GET /v1/pricing/aliases": "read",
    "POST /v1/pricing/aliases": "admin",
    "DELETE /v1/pricing/aliases/{alias_id}": "admin",
    "GET /v1/pricing/overrides": "read",
    "POST /v1/pricing/overrides": "admin",
    "DELETE /v1/pricing/overrides/{override_id}": "admin",
    "POST /v1/pricing/reprice": "admin",
    "GET /v1/pricing/repricings": "read",
    "GET /v1/pricing/audit": "read",
    "GET /v1/budgets": "read",
    "POST /v1/budgets": "admin",
    "GET /v1/budgets/blocklist": "ingest",
    "GET /v1/budgets/check": "ingest",
    "GET /v1/budgets/{budget_id}": "read",
    "PUT /v1/budgets/{budget_id}": "admin",
    "DELETE /v1/budgets/{budget_id}": "admin",
    "GET /v1/alerts": "read",
    "GET /v1/monitors": "read",
    "PATCH /v1/monitors/{kind}": "admin",
    "POST /v1/simulate": "read",
    "POST /v1/stripe/webhook": "signature",
    "POST /v1/stripe/webhook/{org_id}": "signature",
    "GET /v1/stripe/customers": "read",
    "GET /v1/stripe/mappings": "read",
    "PUT /v1/stripe/mappings/{stripe_customer_id}": "admin",
    "DELETE /v1/stripe/mappings/{stripe_customer_id}": "admin",
    "GET /v1/stripe/settings": "admin",
    "PUT /v1/stripe/settings": "admin",
    "GET /v1/stripe/events": "read",
    "GET /healthz": None,
    "GET /metrics": None,
}
GRANTED_BY = {"ingest": {"ingest", "admin"}, "read": {"read", "admin"}, "admin": {"admin"}}


def test_every_operation_has_a_required_scope() -> None:
    missing = [str(op) for op in schema_operations() if str(op) not in REQUIRED_SCOPE]
    assert missing == [], "add each new operation's scope (API.md) to REQUIRED_SCOPE"


def call(client: TestClient, op: Operation, headers: dict[str, str]) -> int:
    body = {"json": {}} if op.has_body else {}
    return client.request(op.method, op.url({}), headers=headers, **body).status_code


def revoke(engine: Engine, org_id: str, secret: str) -> None:
    with engine.connect() as conn:
        key_id = conn.scalar(select(api_keys.c.id).where(api_keys.c.key_hash == hash_key(secret)))
    assert key_id and revoke_api_key(engine, org_id=org_id, key_id=key_id)


def test_keys_and_scopes_on_every_operation(
    database_url: str, engine: Engine, tenant: Tenant, tmp_path: Path
) -> None:
    keys = {
        "ingest": tenant.created.ingest_key,
        "read": tenant.read_key,
        "admin": create_api_key(engine, org_id=tenant.org.id, scope="admin"),
    }
    revoked = tenant.created.admin_key
    revoke(engine, tenant.org.id, revoked)
    bad_credentials = {
        "no key": {},
        "an unknown key": {"Authorization": "Bearer md_admin_" + "A" * 32},
        "a revoked key": {"Authorization": f"Bearer {revoked}"},
    }
    wrong: list[str] = []
    app = create_app(safe_settings(database_url, tmp_path))
    with TestClient(app, raise_server_exceptions=False) as client:
        before = db_state(engine)
        allowed: list[tuple[Operation, str]] = []
        for op in operations(app):
            scope = REQUIRED_SCOPE[str(op)]
            if scope is None:
                status = call(client, op, {})
                if status != 200:
                    wrong.append(f"{op} is public but answered {status}")
                continue
            for name, headers in bad_credentials.items():
                status = call(client, op, headers)
                if status != 401 and not (scope == "signature" and 400 <= status < 500):
                    wrong.append(f"{op} with {name}: {status}")
            for key_scope, secret in keys.items():
                if scope != "signature" and key_scope in GRANTED_BY[scope]:
                    allowed.append((op, secret))
                    continue
                status = call(client, op, {"Authorization": f"Bearer {secret}"})
                if status != 403 and not (scope == "signature" and 400 <= status < 500):
                    wrong.append(f"{op} with a {key_scope} key: {status}")
        assert db_state(engine) == before, "a refused request wrote something"
        for op, secret in allowed:
            status = call(client, op, {"Authorization": f"Bearer {secret}"})
            if status in (401, 403) or status >= 500:
                wrong.append(f"{op} with a key that has the scope: {status}")
    assert wrong == []


def test_malformed_authorization_headers_are_401(client: TestClient, tenant: Tenant) -> None:
    admin_key = tenant.created.admin_key
    for header in (f"Basic {admin_key}", admin_key, "Bearer ", "Bearer", f"Token {admin_key}"):
        response = client.get("/v1/pnl", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
    assert (
        client.get("/v1/pnl", headers={"Authorization": f"bearer {admin_key}"}).status_code == 200
    )
