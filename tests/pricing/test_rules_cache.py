"""A running server re-reads each org's pricing rules every few seconds; re-reading rules
that did not change must not throw away how names were priced under them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from margindash.pricing import overrides
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.overrides import add_override
from margindash.pricing.service import Pricer
from tests.conftest import Tenant

AT = datetime.now(UTC).replace(microsecond=0)


def _cost(pricer: Pricer, org_id: str, model: str) -> int | None:
    return pricer.price(
        org_id=org_id, model_name=model, provider=None, tokens=TokenCounts(1_000, 0), at=AT
    ).cost_nanos


def test_unchanged_rules_keep_their_plans_and_changed_rules_replace_them(
    engine: Engine, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overrides, "_RULES_TTL_S", 0.0)  # every look-up re-reads the rules
    org_id = tenant.org.id
    pricer = Pricer(engine)
    assert _cost(pricer, org_id, "acme-llama") is None  # unknown: unpriced
    rules = pricer.rules.get(engine, org_id)
    assert rules.plans and pricer.rules.get(engine, org_id) is rules

    # Written by another process: only the periodic re-read can see it.
    add_override(
        engine,
        org_id=org_id,
        model="acme-llama",
        provider=None,
        input_per_mtok="2",
        output_per_mtok="8",
    )
    changed = pricer.rules.get(engine, org_id)
    assert changed is not rules and not changed.plans
    assert _cost(pricer, org_id, "acme-llama") == 2_000_000  # 1,000 tokens at $2 per 1M: $0.002
