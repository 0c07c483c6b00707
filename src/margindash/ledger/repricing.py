"""Re-price stored events (after an alias or custom price arrives) and move their rollups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from margindash.db.tables import usage_events
from margindash.ledger.rollups import Measures, RollupDeltas, RollupKey
from margindash.ledger.writer import run_transaction
from margindash.orgs.service import Org
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.service import Pricer

_BATCH = 5_000


@dataclass(slots=True)
class RepriceSummary:
    """How many events were looked at and priced, and the cost they gained (nano-USD)."""

    examined: int = 0
    priced: int = 0
    cost_nanos: int = 0


def _measures(row: Any, cost_nanos: int | None) -> Measures:
    return Measures(
        events=1,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        cache_write_tokens=row.cache_write_tokens,
        reasoning_tokens=row.reasoning_tokens,
        cost_nanos=cost_nanos or 0,
        unpriced_events=0 if cost_nanos is not None else 1,
        estimated_events=1 if row.estimated else 0,
        revenue_nanos=(row.revenue_cents or 0) * 10_000_000,
        max_prompt_tokens=row.prompt_tokens,
    )


def reprice_unpriced(pricer: Pricer, *, org: Org) -> RepriceSummary:
    """Price every unpriced event of the org that its rules or the catalogue now cover."""
    pricer.rules.invalidate(org.id)
    summary = RepriceSummary()
    last_id = 0
    while True:
        after = last_id
        batch: tuple[int, int, int, int] | None = run_transaction(
            pricer.engine,
            lambda c: _reprice_batch(c, pricer, org, after),  # noqa: B023
        )
        if batch is None:
            return summary
        last_id, examined, priced, cost = batch
        summary.examined += examined
        summary.priced += priced
        summary.cost_nanos += cost


def _reprice_batch(
    conn: Connection, pricer: Pricer, org: Org, after_id: int
) -> tuple[int, int, int, int] | None:
    t = usage_events
    rows = conn.execute(
        select(t)
        .where(t.c.org_id == org.id, t.c.cost_nanos.is_(None), t.c.id > after_id)
        .order_by(t.c.id)
        .limit(_BATCH)
    ).all()
    if not rows:
        return None
    deltas = RollupDeltas()
    priced = cost = 0
    for row in rows:
        quote = pricer.price(
            org_id=org.id,
            model_name=row.model_name,
            provider=row.provider,
            tokens=TokenCounts(
                row.prompt_tokens,
                row.completion_tokens,
                row.cached_tokens,
                row.cache_write_tokens,
                row.reasoning_tokens,
            ),
            at=row.occurred_at,
        )
        if quote.cost_nanos is None:
            continue
        conn.execute(
            update(t)
            .where(t.c.id == row.id)
            .values(
                model=quote.model,
                provider=quote.provider,
                cost_nanos=quote.cost_nanos,
                price_source=quote.price_source,
                price_ref=quote.price_ref,
            )
        )
        deltas.add(
            RollupKey(org.id, row.day, row.customer_id, row.feature, row.model),
            _measures(row, None),
            sign=-1,
        )
        deltas.add(
            RollupKey(org.id, row.day, row.customer_id, row.feature, quote.model),
            _measures(row, quote.cost_nanos),
        )
        priced += 1
        cost += quote.cost_nanos
    deltas.write(conn, pricer.engine)
    return rows[-1].id, len(rows), priced, cost
