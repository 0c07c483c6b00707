"""The monitor rules. Each reads the rollups (or the sync log) and returns findings.

Comparisons use complete org-local days (yesterday against its history), so a day's numbers
are final when judged; counts of things that should never happen (sync failures, events
without a customer) also look at today so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Engine, String, column, func, inspect, select, table

from margindash.budgets.messages import percent, usd
from margindash.budgets.notifiers import AlertMessage
from margindash.db.tables import daily_rollups
from margindash.db.types import UTCDateTime
from margindash.ledger.events import UNATTRIBUTED
from margindash.money import format_money, margin_pct
from margindash.orgs.service import Org

if TYPE_CHECKING:
    from margindash.budgets.monitors import MonitorConfig

WARNING, CRITICAL = "warning", "critical"
# Owned by the pricing-sync job; read here only if it exists (older schemas lack it).
pricing_sync_runs = table(
    "pricing_sync_runs",
    column("id"),
    column("started_at", UTCDateTime),
    column("status", String),
    column("error", String),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a monitor noticed: `key` makes it fire once; `message` says what."""

    key: str
    message: AlertMessage


Rule = Callable[[Engine, Org, "MonitorConfig", datetime, str], list[Finding]]


def customer_daily_spike(
    engine: Engine, org: Org, config: MonitorConfig, now: datetime, public_url: str
) -> list[Finding]:
    """Yesterday's cost per customer against its average for that weekday in prior weeks."""
    day = _today(org, now) - timedelta(days=1)
    history = [day - timedelta(weeks=w) for w in range(1, config.lookback + 1)]
    costs = _cost_by(engine, org, "customer_id", [day, *history])
    findings = []
    for customer, by_day in sorted(costs.items()):
        cost = by_day.get(day, 0)
        baseline = Decimal(sum(by_day.get(d, 0) for d in history)) / len(history)
        if cost < config.min_volume_nanos or baseline <= 0:
            continue
        if cost * 100 <= baseline * (100 + config.threshold):
            continue
        increase = (Decimal(cost) - baseline) * 100 / baseline
        weekday = f"{day:%A}"
        subject = (
            f"[margindash] {customer} spent {usd(cost)} on {weekday} {day}: "
            f"{percent(increase)} above its {weekday} average ({usd(int(baseline))})"
        )
        body = [
            f"Customer {customer} cost {usd(cost)} on {weekday} {day}, {percent(increase)} more "
            f"than its average for {weekday}s over the prior {len(history)} week(s), "
            f"{usd(int(baseline))}. This monitor alerts above {percent(config.threshold)}.",
            "",
            f"Customer: {public_url.rstrip('/')}/customers/{quote(customer, safe='')}",
        ]
        details = {
            "customer_id": customer,
            "day": day.isoformat(),
            "cost_usd": format_money(cost),
            "baseline_usd": format_money(int(baseline)),
            "increase_pct": _pct(increase),
            "threshold_pct": _pct(config.threshold),
        }
        findings.append(
            _finding(f"{customer}:{day}", "customer_daily_spike", subject, body, details)
        )
    return findings


def feature_daily_growth(
    engine: Engine, org: Org, config: MonitorConfig, now: datetime, public_url: str
) -> list[Finding]:
    """Yesterday's cost per feature against the day before."""
    day = _today(org, now) - timedelta(days=1)
    before = day - timedelta(days=1)
    costs = _cost_by(engine, org, "feature", [day, before])
    findings = []
    for feature, by_day in sorted(costs.items()):
        cost, previous = by_day.get(day, 0), by_day.get(before, 0)
        if not feature or cost < config.min_volume_nanos or previous <= 0:
            continue  # feature "" holds revenue not tied to usage
        if cost * 100 <= previous * (100 + config.threshold):
            continue
        growth = Decimal(cost - previous) * 100 / previous
        subject = (
            f"[margindash] Feature {feature} cost up {percent(growth)} day over day: "
            f"{usd(cost)} on {day} against {usd(previous)}"
        )
        body = [
            f"Feature {feature} cost {usd(cost)} on {day}, {percent(growth)} more than the day "
            f"before ({usd(previous)}). This monitor alerts above {percent(config.threshold)}.",
            "",
            f"Features: {public_url.rstrip('/')}/features",
        ]
        details = {
            "feature": feature,
            "day": day.isoformat(),
            "cost_usd": format_money(cost),
            "previous_usd": format_money(previous),
            "growth_pct": _pct(growth),
            "threshold_pct": _pct(config.threshold),
        }
        findings.append(
            _finding(f"{feature}:{day}", "feature_daily_growth", subject, body, details)
        )
    return findings


def pricing_sync_failed(
    engine: Engine, org: Org, config: MonitorConfig, now: datetime, public_url: str
) -> list[Finding]:
    """Failed price catalogue syncs in the last 24 hours (one alert per day at most)."""
    if not inspect(engine).has_table("pricing_sync_runs"):
        return []
    runs = pricing_sync_runs
    with engine.connect() as conn:
        failures = conn.execute(
            select(runs.c.started_at, runs.c.error)
            .where(runs.c.status == "failed", runs.c.started_at >= now - timedelta(hours=24))
            .order_by(runs.c.started_at.desc())
        ).all()
    if len(failures) <= config.threshold:
        return []
    latest = failures[0]
    subject = f"[margindash] Pricing sync failed {len(failures)} time(s) in the last 24 hours"
    body = [
        f"The price catalogue sync failed {len(failures)} time(s) in the last 24 hours; the last "
        f"failure started at {latest.started_at:%Y-%m-%d %H:%M} UTC:",
        f"  {latest.error or 'no error recorded'}",
        "",
        "Costs keep using the last good catalogue until a sync succeeds.",
        f"Pricing: {public_url.rstrip('/')}/pricing",
    ]
    details = {
        "failures": len(failures),
        "last_failure_at": latest.started_at.isoformat().replace("+00:00", "Z"),
        "last_error": latest.error,
    }
    key = f"{latest.started_at.astimezone(UTC).date()}"
    return [_finding(key, "pricing_sync_failed", subject, body, details, severity=CRITICAL)]


def unattributed_events(
    engine: Engine, org: Org, config: MonitorConfig, now: datetime, public_url: str
) -> list[Finding]:
    """Events booked to `unattributed` (sent without customer_id), yesterday and today."""
    today = _today(org, now)
    r = daily_rollups
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.c.day, func.sum(r.c.events), func.sum(r.c.cost_nanos))
            .where(
                r.c.org_id == org.id,
                r.c.customer_id == UNATTRIBUTED,
                r.c.day.between(today - timedelta(days=1), today),
            )
            .group_by(r.c.day)
        ).all()
    findings = []
    for day, events, cost in sorted(rows, key=lambda row: _as_date(row[0])):
        day = _as_date(day)
        if events is None or int(events) <= config.threshold:
            continue
        so_far = " so far" if day == today else ""
        subject = f"[margindash] {int(events)} usage events without customer_id on {day}{so_far}"
        body = [
            f"{int(events)} usage events on {day}{so_far} had no customer_id and were booked to "
            f"{UNATTRIBUTED!r} ({usd(int(cost or 0))}). Their cost is in no customer's P&L.",
            "",
            "Send customer_id with every event; `margindash doctor` counts what is missing.",
        ]
        details = {
            "day": day.isoformat(),
            "events": int(events),
            "cost_usd": format_money(int(cost or 0)),
        }
        findings.append(_finding(f"{day}", "unattributed_events", subject, body, details))
    return findings


def customer_low_margin(
    engine: Engine, org: Org, config: MonitorConfig, now: datetime, public_url: str
) -> list[Finding]:
    """Customers whose margin % for the month so far is below the threshold (once a month)."""
    today = _today(org, now)
    first = today.replace(day=1)
    r = daily_rollups
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.c.customer_id, func.sum(r.c.revenue_nanos), func.sum(r.c.cost_nanos))
            .where(r.c.org_id == org.id, r.c.day.between(first, today))
            .group_by(r.c.customer_id)
        ).all()
    findings = []
    for customer, revenue, cost in sorted(rows):
        revenue, cost = int(revenue or 0), int(cost or 0)
        # Without revenue there is no margin % to judge (and no revenue data is common early).
        if revenue <= 0 or cost < config.min_volume_nanos:
            continue
        if (revenue - cost) * 100 >= config.threshold * revenue:
            continue
        pct = margin_pct(revenue, cost)
        subject = (
            f"[margindash] {customer} margin {percent(pct or 0)} for {first:%Y-%m} so far "
            f"(below {percent(config.threshold)})"
        )
        body = [
            f"Customer {customer} from {first} to {today}: revenue {usd(revenue)}, cost "
            f"{usd(cost)}, margin {usd(revenue - cost)} ({percent(pct or 0)}).",
            "Reprice or throttle this customer, or move its traffic to a cheaper model.",
            "",
            f"Customer: {public_url.rstrip('/')}/customers/{quote(customer, safe='')}",
        ]
        details = {
            "customer_id": customer,
            "month": f"{first:%Y-%m}",
            "revenue_usd": format_money(revenue),
            "cost_usd": format_money(cost),
            "margin_pct": pct,
            "threshold_pct": _pct(config.threshold),
        }
        key = f"{customer}:{first:%Y-%m}"
        findings.append(_finding(key, "customer_low_margin", subject, body, details))
    return findings


RULES: dict[str, Rule] = {
    "customer_daily_spike": customer_daily_spike,
    "feature_daily_growth": feature_daily_growth,
    "pricing_sync_failed": pricing_sync_failed,
    "unattributed_events": unattributed_events,
    "customer_low_margin": customer_low_margin,
}


def _today(org: Org, now: datetime) -> date:
    return now.astimezone(org.zone).date()


def _cost_by(engine: Engine, org: Org, key: str, days: list[date]) -> dict[str, dict[date, int]]:
    r = daily_rollups
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.c[key], r.c.day, func.sum(r.c.cost_nanos))
            .where(r.c.org_id == org.id, r.c.day.in_(days))
            .group_by(r.c[key], r.c.day)
        ).all()
    costs: dict[str, dict[date, int]] = {}
    for name, day, cost in rows:
        costs.setdefault(name, {})[_as_date(day)] = int(cost or 0)
    return costs


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _pct(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def _finding(
    key: str,
    kind: str,
    subject: str,
    body: list[str],
    details: dict[str, Any],
    *,
    severity: str = WARNING,
) -> Finding:
    message = AlertMessage(
        kind=kind,
        severity=severity,
        subject=subject,
        body="\n".join(body) + "\n",
        details={"monitor": kind, **details},
    )
    return Finding(key=key, message=message)
