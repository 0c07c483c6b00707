"""Logs carry request ids and never an API key."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from margindash.logs import JsonFormatter
from tests.conftest import Tenant
from tests.test_ingest_api import recent


def test_rejected_events_are_logged_with_request_id_and_no_key(
    client: TestClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.post("/v1/usage", json=recent(prompt_tokens=-1), headers=tenant.ingest)
    client.post("/v1/usage", json=recent(), headers={"Authorization": "Bearer md_ingest_nope"})
    rejected = [r for r in caplog.records if r.getMessage() == "usage event rejected"]
    assert rejected and rejected[0].request_id == "req_abc123"  # type: ignore[attr-defined]
    formatted = JsonFormatter().format(rejected[0])
    assert json.loads(formatted)["request_id"] == "req_abc123"
    everything = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    for secret in (tenant.created.ingest_key, tenant.created.admin_key, "md_ingest_nope"):
        assert secret not in everything
