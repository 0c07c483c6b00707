"""Hand-made hostile input on SQLite and PostgreSQL: huge numbers, unicode and NUL in ids, 10 MB
and deeply nested bodies, wrong content types, duplicate keys. Each gets its exact status and
either is stored exactly as sent or leaves the database untouched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.app import create_app
from tests.conftest import Tenant, db_state
from tests.security.operations import operations, safe_settings
from tests.test_ingest_api import recent

JSON = {"Content-Type": "application/json"}
TEN_MB = 10 * 1024 * 1024


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(safe_settings(database_url, tmp_path))) as client:
        yield client


def revenue(**overrides: Any) -> dict[str, Any]:
    entry = {"revenue_id": "inv_1", "customer_id": "acct_123", "amount": "10.00"}
    return {**entry, "month": "2026-01", **overrides}


def fields(response: Any) -> list[str]:
    return [d["field"] for d in response.json()["error"]["details"]]


HUGE_NUMBERS = [
    ("/v1/usage", recent(prompt_tokens=2**63), "prompt_tokens"),
    ("/v1/usage", recent(completion_tokens=2**64 + 1), "completion_tokens"),
    ("/v1/usage", recent(prompt_tokens=-(2**63) - 1), "prompt_tokens"),
    ("/v1/usage", recent(revenue_amount_cents=2**63), "revenue_amount_cents"),
    # The largest per-event revenue that still sums exactly in 64-bit nano-USD rollups.
    ("/v1/usage", recent(revenue_amount_cents=10**12), "revenue_amount_cents"),
    ("/v1/usage", recent(timestamp="0001-01-01T00:00:00+01:00"), "timestamp"),
    ("/v1/usage", recent(timestamp="9999-12-31T23:59:59-01:00"), "timestamp"),
    ("/v1/revenue", revenue(amount="1e999999"), "amount"),
    ("/v1/revenue", revenue(amount="sNaN"), "amount"),
    ("/v1/revenue", revenue(amount="-Infinity"), "amount"),
    ("/v1/revenue", revenue(amount="9" * 39), "amount"),
    ("/v1/revenue", revenue(amount="1000000000000"), "amount"),
    ("/v1/revenue", revenue(amount=None, amount_cents=10**14), "amount_cents"),
    ("/v1/revenue", revenue(amount=None, amount_cents=2**63), "amount_cents"),
    ("/v1/fx-rates", {"currency": "eur", "rate": "1e999999"}, "rate"),
    ("/v1/fx-rates", {"currency": "eur", "rate": "1e-999999"}, "rate"),
    # Within the range, but 35 digits: more than the stored rate may hold.
    ("/v1/fx-rates", {"currency": "eur", "rate": "1." + "0" * 33 + "1E-5"}, "rate"),
]


def test_huge_numbers_are_422_naming_the_field(
    api: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    wrong = []
    for path, body, field in HUGE_NUMBERS:
        response = api.post(path, json=body, headers=tenant.admin)
        if response.status_code != 422 or field not in fields(response):
            wrong.append(f"{path} {field}: {response.status_code} {response.text[:200]}")
    assert wrong == []
    # Numbers a double cannot hold are not JSON this API can read.
    for number in (b"1e400", b"-1e400", b"1" * 400, b"NaN", b"Infinity"):
        body = b'{"request_id": "x", "prompt_tokens": ' + number + b"}"
        response = api.post("/v1/usage", content=body, headers={**tenant.ingest, **JSON})
        assert response.status_code == 400, number
        assert response.json()["error"]["code"] == "malformed_json", number
    assert db_state(engine) == before


def test_biggest_accepted_amounts_are_stored_exactly(api: TestClient, tenant: Tenant) -> None:
    event = recent(revenue_amount_cents=10**10)
    assert api.post("/v1/usage", json=event, headers=tenant.ingest).json()["accepted"] == 1
    entry = revenue(amount="999999999.99", month=datetime.now(UTC).strftime("%Y-%m"))
    assert api.post("/v1/revenue", json=entry, headers=tenant.ingest).json()["accepted"] == 1
    totals = api.get("/v1/pnl", headers=tenant.read).json()["totals"]
    assert totals["revenue"] == "1099999999.99"


UNICODE_IDS = [
    "😀" * 255,  # the longest id: 255 characters, 1020 bytes of UTF-8
    "عميل-٤٢",  # right-to-left, Arabic-Indic digits
    "\u202eevil\u202c",  # RTL override characters
    "e\u0301\u0301\u0301",  # combining accents
    "\U0001d518\U0001d52b / ?#%&=+",  # astral plane, and characters URLs reserve
]


def test_unicode_ids_round_trip_exactly(api: TestClient, tenant: Tenant, engine: Engine) -> None:
    for ident in UNICODE_IDS:
        assert_round_trip(api, tenant, ident)
    before = db_state(engine)
    too_long = api.post("/v1/usage", json=recent(request_id="😀" * 256), headers=tenant.ingest)
    assert too_long.status_code == 422 and fields(too_long) == ["request_id"]
    assert db_state(engine) == before


def assert_round_trip(api: TestClient, tenant: Tenant, ident: str) -> None:
    event = recent(request_id=ident, customer_id=ident, feature=ident)
    response = api.post("/v1/usage", json=event, headers=tenant.ingest)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["request_id"] == ident
    stored = api.get(f"/v1/usage/{quote(ident, safe='')}", headers=tenant.read)
    assert stored.status_code == 200, stored.text
    assert (stored.json()["request_id"], stored.json()["customer_id"]) == (ident, ident)
    rows = api.get("/v1/pnl", params={"customer_id": ident}, headers=tenant.read).json()["rows"]
    assert [row["key"] for row in rows] == [ident]
    customer = api.get(f"/v1/customers/{quote(ident, safe='')}/pnl", headers=tenant.read)
    assert customer.status_code == 200 and customer.json()["customer_id"] == ident


NUL_IDS = [
    ("/v1/usage", recent(request_id="req\u0000abc"), "request_id"),
    ("/v1/usage", recent(customer_id="\u0000"), "customer_id"),
    ("/v1/usage", recent(model_name="gpt-4o\u0000"), "model_name"),
    ("/v1/usage", recent(feature="a\u0000b"), "feature"),
    ("/v1/usage", recent(provider="openai\u0000"), "provider"),
    ("/v1/usage/dry-run", recent(request_id="req\u0000abc"), "request_id"),
    ("/v1/revenue", revenue(revenue_id="inv\u0000"), "revenue_id"),
    ("/v1/revenue", revenue(customer_id="acct\u0000"), "customer_id"),
    ("/v1/revenue", revenue(description="\u0000"), "description"),
]


def test_nul_in_an_id_is_422_on_every_database(
    api: TestClient, tenant: Tenant, engine: Engine
) -> None:
    # PostgreSQL text cannot hold NUL; SQLite could, so both reject it to behave alike.
    before = db_state(engine)
    wrong = []
    for path, body, field in NUL_IDS:
        response = api.post(path, json=body, headers=tenant.ingest)
        if response.status_code != 422 or fields(response) != [field]:
            wrong.append(f"{path} {field}: {response.status_code} {response.text[:200]}")
    assert wrong == []
    assert db_state(engine) == before
    # Metadata is stored as JSON, where NUL is the escape `\u0000`: accepted.
    event = recent(metadata={"k\u0000": "v\u0000"})
    assert api.post("/v1/usage", json=event, headers=tenant.ingest).json()["accepted"] == 1


def test_nul_in_a_url_is_422(api: TestClient, tenant: Tenant) -> None:
    for url, field in [
        ("/v1/usage/req%00abc", "path"),
        ("/v1/customers/acct%00/pnl", "path"),
        ("/v1/pnl?customer_id=a%00b", "customer_id"),
        ("/v1/pnl?feature=%00&model=gpt-4o", "feature"),
        ("/v1/models/gpt-4o%00/price", "path"),
    ]:
        response = api.get(url, headers=tenant.read)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        assert fields(response) == [field]


def test_ten_megabyte_bodies_are_413_on_every_operation(
    api: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    huge = b'{"events": [' + b'"' + b"x" * TEN_MB + b'"]}'
    wrong = []
    for op in operations(api.app):  # type: ignore[arg-type]
        if not op.has_body:
            continue
        for headers in (tenant.admin, {}):  # with and without a key
            response = api.request(op.method, op.url({}), content=huge, headers={**headers, **JSON})
            if response.status_code != 413:
                wrong.append(f"{op}: {response.status_code}")
    assert wrong == []
    assert db_state(engine) == before


def test_ten_megabytes_without_content_length_are_413(
    api: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)

    def chunks() -> Iterator[bytes]:  # sent chunked: the size is only known by reading
        yield b'{"events": ["'
        for _ in range(10):
            yield b"x" * (1024 * 1024)
        yield b'"]}'

    # Checked before the key, as an announced Content-Length is: the same answer either way.
    for headers in (tenant.admin, {}, {"Authorization": "Bearer md_admin_not-a-real-key"}):
        for path in ("/v1/usage", "/v1/revenue", "/v1/pricing/aliases", "/v1/budgets"):
            response = api.post(path, content=chunks(), headers={**headers, **JSON})
            assert response.status_code == 413, (path, headers)
            assert response.json()["error"]["code"] == "payload_too_large"
    assert db_state(engine) == before

    def small() -> Iterator[bytes]:  # chunked, but within the limit: read and used as sent
        yield b'{"request_id": "chunked", '
        yield orjson.dumps(recent())[1:].replace(b'"request_id":"req_abc123",', b"")

    assert api.post("/v1/usage", content=small(), headers=JSON).status_code == 401
    response = api.post("/v1/usage", content=small(), headers={**tenant.ingest, **JSON})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["request_id"] == "chunked"


def nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b'"x"' + b"}" * depth


def test_deeply_nested_bodies(api: TestClient, tenant: Tenant, engine: Engine) -> None:
    before = db_state(engine)
    head = b'{"request_id": "deep", "customer_id": "c", "model_name": "gpt-4o", '
    thousand = head + b'"prompt_tokens": 1, "completion_tokens": 1, "metadata": ' + nested(1000)
    response = api.post("/v1/usage", content=thousand + b"}", headers={**tenant.ingest, **JSON})
    assert response.status_code == 422 and fields(response) == ["metadata.a"]
    for path in ("/v1/usage", "/v1/revenue", "/v1/pricing/aliases", "/v1/budgets"):
        response = api.post(path, content=nested(100_000), headers={**tenant.admin, **JSON})
        assert response.status_code == 400, (path, response.text)
    assert db_state(engine) == before


def test_wrong_content_types(api: TestClient, tenant: Tenant, engine: Engine) -> None:
    before = db_state(engine)
    body = '{"request_id": "r", "customer_id": "c"}'.encode("utf-16")
    for content_type, status in [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/xml", 415),
        ("application/json; charset=utf-16", 400),
    ]:
        for path in ("/v1/usage", "/v1/revenue"):
            headers = {**tenant.ingest, "Content-Type": content_type}
            response = api.post(path, content=body, headers=headers)
            assert response.status_code == status, (path, content_type, response.text)
    assert db_state(engine) == before


def test_duplicate_json_keys_take_the_last_value(api: TestClient, tenant: Tenant) -> None:
    ts = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = (
        '{"request_id": "first", "customer_id": "c", "model_name": "gpt-4o-mini", '
        f'"prompt_tokens": 1, "completion_tokens": 1, "timestamp": "{ts}", '
        '"request_id": "second", "prompt_tokens": 7}'
    )
    response = api.post("/v1/usage", content=body, headers={**tenant.ingest, **JSON})
    assert response.json()["results"][0]["request_id"] == "second"
    assert api.get("/v1/usage/first", headers=tenant.read).status_code == 404
    assert api.get("/v1/usage/second", headers=tenant.read).json()["prompt_tokens"] == 7


def test_dates_at_the_ends_of_the_calendar_are_422(api: TestClient, tenant: Tenant) -> None:
    for url, field in [
        ("/v1/pnl?from=0001-01-01&to=0001-01-31", "from"),
        ("/v1/pnl?from=9999-12-01&to=9999-12-31", "from"),
        ("/v1/pnl?from=2026-01-01&to=9999-12-31", "to"),
        ("/v1/pnl?month=9999-12", "month"),
        ("/v1/pnl?month=0001-01&group_by=customer", "month"),
        ("/v1/customers/acct_123/pnl?month=9999-12", "month"),
        ("/v1/customers/acct_123/pnl?from=0001-01-01&to=0001-12-31", "from"),
    ]:
        response = api.get(url, headers=tenant.read)
        assert response.status_code == 422, response.text
        assert fields(response) == [field], url


VALID_BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/usage", recent()),
    ("POST", "/v1/revenue", revenue(description="d")),
    ("POST", "/v1/fx-rates", {"currency": "eur", "rate": "1.1"}),
    ("POST", "/v1/pricing/aliases", {"alias": "a", "model": "gpt-4o", "provider": "openai"}),
    (
        "POST",
        "/v1/pricing/overrides",
        {"model": "m", "input_per_mtok": "1", "output_per_mtok": "1"},
    ),
    ("POST", "/v1/pricing/overrides", {"provider": "openai", "discount_pct": "10"}),
    ("POST", "/v1/pricing/reprice", {"from": "2026-01-01", "to": "2026-01-31", "model": "gpt-4o"}),
    (
        "POST",
        "/v1/budgets",
        {
            "name": "b",
            "scope": {"type": "feature", "value": "f"},
            "period": "month",
            "limit_usd": "1.00",
            "thresholds": [50],
            "action": "warn",
            "notify": {"emails": ["ops@example.com"]},
        },
    ),
    ("PUT", "/v1/stripe/mappings/cus_1", {"customer_id": "c"}),
    ("PUT", "/v1/stripe/settings", {"webhook_secrets": ["whsec_1"], "mode": "test"}),
    (
        "POST",
        "/v1/simulate",
        {"from": "2026-01-01", "to": "2026-01-31", "feature": "f", "customer_id": "c"},
    ),
]


def with_nul_in_each_string(body: Any) -> Iterator[tuple[str, Any]]:
    """Copies of `body`, each with NUL appended to one of its strings, and that string's path."""
    if isinstance(body, str):
        yield "", body + "\u0000"
    elif isinstance(body, dict | list):
        items = body.items() if isinstance(body, dict) else enumerate(body)
        for key, value in items:
            for path, changed in with_nul_in_each_string(value):
                copy = dict(body) if isinstance(body, dict) else list(body)
                copy[key] = changed  # type: ignore[index]
                yield f"{key}.{path}".rstrip("."), copy


def test_nul_in_any_string_of_any_body_is_never_a_server_error(
    api: TestClient, tenant: Tenant
) -> None:
    wrong = []
    for method, path, body in VALID_BODIES:
        for field, changed in with_nul_in_each_string(body):
            response = api.request(method, path, json=changed, headers=tenant.admin)
            if response.status_code >= 500:
                wrong.append(f"{method} {path} {field}: {response.status_code}")
    assert wrong == []


# What Python's `int()`/`Decimal()` read but no JSON client means: "1_000" is not 1000.
PYTHON_LITERALS = [
    ("POST", "/v1/usage", recent(prompt_tokens="1_000"), "prompt_tokens"),
    ("POST", "/v1/usage", recent(revenue_amount_cents="1_000"), "revenue_amount_cents"),
    ("POST", "/v1/revenue", revenue(amount="1_000"), "amount"),
    ("POST", "/v1/revenue", revenue(amount="\u0661\u0662"), "amount"),  # Arabic-Indic 12
    ("POST", "/v1/revenue", revenue(amount=None, amount_cents="1000"), "amount_cents"),
    ("POST", "/v1/fx-rates", {"currency": "eur", "rate": "1_0"}, "rate"),
    (
        "POST",
        "/v1/pricing/overrides",
        {"model": "acme-llama", "input_per_mtok": "0_20", "output_per_mtok": "0.60"},
        "input_per_mtok",
    ),
    (
        "POST",
        "/v1/pricing/overrides",
        {"provider": "openai", "discount_pct": "1_0"},
        "discount_pct",
    ),
    (
        "POST",
        "/v1/budgets",
        {"name": "b", "scope": {"type": "org"}, "period": "month", "limit_usd": "1_000"},
        "limit_usd",
    ),
    ("PATCH", "/v1/monitors/customer_low_margin", {"min_volume_usd": "1_000"}, "min_volume_usd"),
    ("POST", "/v1/simulate", {"limit": "10"}, "limit"),
    ("POST", "/v1/simulate", {"min_quality": "5_0"}, "min_quality"),
    ("POST", "/v1/simulate", {"hourly_rate": "1_00"}, "hourly_rate"),
    ("POST", "/v1/simulate", {"token_ratios": {"gpt": {"input": "1_0"}}}, "token_ratios.gpt.input"),
]


def test_numbers_in_python_literal_syntax_are_422(
    api: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    wrong = []
    for method, path, body, field in PYTHON_LITERALS:
        response = api.request(method, path, json=body, headers=tenant.admin)
        if response.status_code != 422 or field not in fields(response):
            wrong.append(f"{path} {field}: {response.status_code} {response.text[:200]}")
    assert wrong == []
    assert db_state(engine) == before
    # Plain numbers as text are still read: the dashboard's forms send what was typed.
    accepted = api.post("/v1/revenue", json=revenue(amount=" 1e2 "), headers=tenant.ingest)
    assert accepted.json()["results"][0]["amount_usd"] == "100.00"
    simulate = {"min_quality": "50", "hourly_rate": "100", "limit": 5}
    assert api.post("/v1/simulate", json=simulate, headers=tenant.read).status_code == 200


QUERY_LIMITS = [
    "/v1/alerts",
    "/v1/pricing/sync-runs",
    "/v1/pricing/snapshots",
    "/v1/pricing/repricings",
    "/v1/stripe/events",
]


@pytest.mark.parametrize("value", ["1_0", "\u0665", "+5", " 5", "5.0"])
def test_query_numbers_in_python_literal_syntax_are_422(
    api: TestClient, tenant: Tenant, value: str
) -> None:
    """`?limit=1_0` is not 10, nor is an Arabic-Indic digit a digit: each list names the field."""
    wrong = []
    for path in QUERY_LIMITS:
        response = api.get(path, params={"limit": value}, headers=tenant.admin)
        if response.status_code != 422 or fields(response) != ["limit"]:
            wrong.append(f"{path}: {response.status_code} {response.text[:200]}")
    audit = api.get("/v1/pricing/audit", params={"threshold_pct": "1_0"}, headers=tenant.admin)
    if audit.status_code != 422 or fields(audit) != ["threshold_pct"]:
        wrong.append(f"/v1/pricing/audit: {audit.status_code} {audit.text[:200]}")
    assert wrong == []


def test_query_numbers_written_plainly_are_read(api: TestClient, tenant: Tenant) -> None:
    for path in QUERY_LIMITS:
        assert api.get(path, params={"limit": "10"}, headers=tenant.admin).status_code == 200
    audit = api.get("/v1/pricing/audit", params={"threshold_pct": "2.5"}, headers=tenant.admin)
    assert audit.status_code == 200
    schema = api.get("/openapi.json").json()["paths"]["/v1/alerts"]["get"]["parameters"]
    limit = next(p["schema"] for p in schema if p["name"] == "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 500)
