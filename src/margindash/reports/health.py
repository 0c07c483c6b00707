"""Data quality of an org's ledger (`margindash doctor`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from margindash.db.tables import ingest_stats, monthly_rollups, usage_events
from margindash.ledger.events import UNATTRIBUTED
from margindash.orgs.service import Org


@dataclass(frozen=True, slots=True)
class DataHealth:
    """Counts that tell whether the P&L can be trusted."""

    events: int
    unattributed_events: int
    unpriced_events: int
    estimated_events: int
    duplicates: int
    unpriced_models: list[tuple[str, int]]


def data_health(engine: Engine, *, org: Org) -> DataHealth:
    """Counts over all time, from the rollups and the (indexed) unpriced events."""
    r = monthly_rollups
    with engine.connect() as conn:
        totals = conn.execute(
            select(
                func.coalesce(func.sum(r.c.events), 0),
                func.coalesce(func.sum(r.c.unpriced_events), 0),
                func.coalesce(func.sum(r.c.estimated_events), 0),
            ).where(r.c.org_id == org.id)
        ).one()
        unattributed = conn.execute(
            select(func.coalesce(func.sum(r.c.events), 0)).where(
                r.c.org_id == org.id, r.c.customer_id == UNATTRIBUTED
            )
        ).scalar_one()
        duplicates = conn.execute(
            select(func.coalesce(func.sum(ingest_stats.c.duplicates), 0)).where(
                ingest_stats.c.org_id == org.id
            )
        ).scalar_one()
        e = usage_events
        unpriced = conn.execute(
            select(e.c.model_name, func.count())
            .where(e.c.org_id == org.id, e.c.cost_nanos.is_(None))
            .group_by(e.c.model_name)
            .order_by(func.count().desc())
        ).all()
    return DataHealth(
        events=int(totals[0]),
        unattributed_events=int(unattributed),
        unpriced_events=int(totals[1]),
        estimated_events=int(totals[2]),
        duplicates=int(duplicates),
        unpriced_models=[(name, int(count)) for name, count in unpriced],
    )
