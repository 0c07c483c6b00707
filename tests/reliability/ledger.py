"""What a fault test checks afterwards: each event stored once, rollups matching the events."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from margindash.db.tables import daily_rollups, monthly_rollups, revenue_entries, usage_events
from margindash.money import NANOS_PER_CENT


def stored_request_ids(engine: Engine, org_id: str) -> list[str]:
    """Every stored request id of the org, one entry per stored row."""
    with engine.connect() as conn:
        return list(
            conn.scalars(select(usage_events.c.request_id).where(usage_events.c.org_id == org_id))
        )


def assert_rollups_match_events(engine: Engine, org_id: str) -> int:
    """Daily and monthly rollups add up to exactly the stored events and revenue; returns events.

    A write that stored events without their rollups (or the reverse) breaks this.
    """
    e, r = usage_events.c, revenue_entries.c
    with engine.connect() as conn:
        events = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(e.prompt_tokens), 0),
                func.coalesce(func.sum(e.completion_tokens), 0),
                func.coalesce(func.sum(e.cost_nanos), 0),
                func.coalesce(func.sum(e.revenue_cents), 0),
            ).where(e.org_id == org_id)
        ).one()
        entries = conn.execute(
            select(func.coalesce(func.sum(r.amount_nanos), 0)).where(r.org_id == org_id)
        ).scalar_one()
        expected = (
            events[0],
            events[1],
            events[2],
            events[3],
            events[4] * NANOS_PER_CENT + entries,
        )
        for table in (daily_rollups, monthly_rollups):
            t = table.c
            totals = conn.execute(
                select(
                    func.coalesce(func.sum(t.events), 0),
                    func.coalesce(func.sum(t.prompt_tokens), 0),
                    func.coalesce(func.sum(t.completion_tokens), 0),
                    func.coalesce(func.sum(t.cost_nanos), 0),
                    func.coalesce(func.sum(t.revenue_nanos), 0),
                ).where(t.org_id == org_id)
            ).one()
            assert tuple(int(v) for v in totals) == tuple(int(v) for v in expected), table.name
    return int(events[0])
