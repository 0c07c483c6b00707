"""Revenue: amounts per customer and period, spread evenly per day so it lines up with cost."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import Connection, Engine, select

from margindash.db.engine import upsert
from margindash.db.tables import fx_rates, revenue_entries
from margindash.ledger.events import FieldError, InvalidEvent
from margindash.ledger.ingest import EventResult, IngestReport
from margindash.ledger.rollups import Measures, RollupDeltas, RollupKey
from margindash.ledger.writer import run_transaction
from margindash.money import NANOS_PER_UNIT, split_evenly
from margindash.orgs.service import Org

# ISO 4217 currencies whose minor unit is not 1/100 (Stripe's list of zero-decimal ones).
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
MAX_PERIOD_DAYS = 731
MAX_AMOUNT = Decimal(10) ** 12

Id = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]


class RevenueIn(BaseModel):
    """One revenue entry as sent to `POST /v1/revenue`."""

    model_config = ConfigDict(extra="ignore")

    revenue_id: Id
    customer_id: Id
    amount: Annotated[str, StringConstraints(max_length=40)] | None = None
    amount_cents: Annotated[int, Field(strict=True, ge=-(10**14), le=10**14)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")] = "usd"
    month: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}$")] | None = None
    period_start: date | None = None
    period_end: date | None = None
    description: Annotated[str, StringConstraints(max_length=255)] | None = None


@dataclass(frozen=True, slots=True)
class CheckedRevenue:
    """A valid revenue entry with its amount in the org's reporting currency."""

    revenue_id: str
    customer_id: str
    amount_minor: int
    currency: str
    fx_rate: Decimal
    amount_nanos: int
    period_start: date
    period_end: date
    description: str | None


def minor_unit_exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit (JPY 0, USD 2, KWD 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def check_revenue(raw: Any, *, org: Org, rates: dict[str, Decimal]) -> CheckedRevenue:
    """Validate one revenue entry; raises InvalidEvent naming every bad field."""
    if not isinstance(raw, dict):
        raise InvalidEvent([FieldError("body", "each revenue entry must be a JSON object")])
    try:
        entry = RevenueIn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(
            [
                FieldError(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
                for e in exc.errors(include_url=False)
            ]
        ) from None
    errors: list[FieldError] = []
    currency = entry.currency.lower()
    minor = _amount_minor(entry, currency, errors)
    period = _period(entry, errors)
    rate = Decimal(1) if currency == org.currency else rates.get(currency)
    if rate is None:
        errors.append(
            FieldError(
                "currency",
                f"no FX rate from {currency} to {org.currency}: set one with "
                f"`margindash fx set {currency} RATE` or POST /v1/fx-rates",
            )
        )
    if errors:
        raise InvalidEvent(errors)
    assert minor is not None and period is not None and rate is not None
    major = Decimal(minor).scaleb(-minor_unit_exponent(currency))
    nanos = int((major * rate * NANOS_PER_UNIT).to_integral_value(rounding=ROUND_HALF_EVEN))
    return CheckedRevenue(
        entry.revenue_id,
        entry.customer_id,
        minor,
        currency,
        rate,
        nanos,
        *period,
        entry.description,
    )


def _amount_minor(entry: RevenueIn, currency: str, errors: list[FieldError]) -> int | None:
    if (entry.amount is None) == (entry.amount_cents is None):
        errors.append(FieldError("amount", "send exactly one of amount or amount_cents"))
        return None
    if entry.amount_cents is not None:
        return entry.amount_cents
    assert entry.amount is not None
    try:
        amount = Decimal(entry.amount)
    except InvalidOperation:
        errors.append(FieldError("amount", 'must be a decimal string such as "233.25"'))
        return None
    exponent = minor_unit_exponent(currency)
    minor = amount.scaleb(exponent)
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        errors.append(FieldError("amount", "must be a finite amount below 10^12"))
        return None
    if minor != minor.to_integral_value():
        errors.append(FieldError("amount", f"{currency} has {exponent} decimal places"))
        return None
    return int(minor)


def _period(entry: RevenueIn, errors: list[FieldError]) -> tuple[date, date] | None:
    if entry.month is not None:
        if entry.period_start or entry.period_end:
            errors.append(FieldError("month", "send month or period_start/period_end, not both"))
            return None
        year, month = (int(p) for p in entry.month.split("-"))
        if not 1 <= month <= 12 or year < 1970:
            errors.append(FieldError("month", "not a valid YYYY-MM month"))
            return None
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    if entry.period_start is None or entry.period_end is None:
        errors.append(FieldError("period_start", "send month, or period_start and period_end"))
        return None
    if entry.period_end < entry.period_start:
        errors.append(FieldError("period_end", "is before period_start"))
        return None
    if (entry.period_end - entry.period_start).days >= MAX_PERIOD_DAYS:
        errors.append(FieldError("period_end", f"period longer than {MAX_PERIOD_DAYS} days"))
        return None
    return entry.period_start, entry.period_end


def spread_by_day(
    deltas: RollupDeltas, *, org_id: str, customer_id: str, start: date, end: date, nanos: int
) -> None:
    """Book an amount evenly over each day of [start, end] (exact: the parts sum to it)."""
    days = (end - start).days + 1
    for offset, part in enumerate(split_evenly(nanos, days)):
        key = RollupKey(org_id, start + timedelta(days=offset), customer_id, "", "")
        deltas.add(key, Measures(revenue_nanos=part))


def load_fx_rates(engine: Engine, org_id: str) -> dict[str, Decimal]:
    """The org's FX rates into its reporting currency."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(fx_rates.c.currency, fx_rates.c.rate).where(fx_rates.c.org_id == org_id)
        )
        return {row.currency: Decimal(row.rate) for row in rows}


def set_fx_rate(engine: Engine, *, org_id: str, currency: str, rate: str | Decimal) -> Decimal:
    """Set how many units of the reporting currency one unit of `currency` is worth."""
    try:
        value = Decimal(str(rate))
    except InvalidOperation as exc:
        raise ValueError("rate: not a decimal number") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError("rate: must be a positive number")
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError("currency: an ISO 4217 code such as eur")
    stmt = upsert(engine, fx_rates).values(
        org_id=org_id, currency=currency.lower(), rate=str(value), updated_at=datetime.now(UTC)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id", "currency"],
        set_={"rate": stmt.excluded.rate, "updated_at": stmt.excluded.updated_at},
    )
    with engine.begin() as conn:
        conn.execute(stmt)
    return value


def record_revenue(
    engine: Engine, *, org: Org, raw_entries: Sequence[Any], source: str = "api"
) -> IngestReport:
    """Store revenue entries once per revenue_id and book them in the rollups."""
    rates = load_fx_rates(engine, org.id)
    results: list[EventResult] = []
    checked: list[tuple[int, CheckedRevenue]] = []
    for raw in raw_entries:
        try:
            entry = check_revenue(raw, org=org, rates=rates)
        except InvalidEvent as exc:
            ident = raw.get("revenue_id") if isinstance(raw, dict) else None
            results.append(
                EventResult(
                    ident if isinstance(ident, str) else None, "rejected", errors=exc.errors
                )
            )
            continue
        checked.append((len(results), entry))
        results.append(EventResult(entry.revenue_id, "accepted", cost_nanos=entry.amount_nanos))
    if checked:
        stored = run_transaction(
            engine, lambda conn: _store(conn, engine, org, [c for _, c in checked], source)
        )
        for (index, _), was_stored in zip(checked, stored, strict=True):
            if not was_stored:
                results[index].status = "duplicate"
    return IngestReport(results)


def _store(
    conn: Connection, engine: Engine, org: Org, entries: list[CheckedRevenue], source: str
) -> list[bool]:
    now = datetime.now(UTC)
    stmt = (
        upsert(engine, revenue_entries)
        .on_conflict_do_nothing(index_elements=["org_id", "revenue_id"])
        .returning(revenue_entries.c.revenue_id)
    )
    params = [
        {
            "org_id": org.id,
            "revenue_id": e.revenue_id,
            "customer_id": e.customer_id,
            "amount_minor": e.amount_minor,
            "currency": e.currency,
            "fx_rate": str(e.fx_rate),
            "amount_nanos": e.amount_nanos,
            "period_start": e.period_start,
            "period_end": e.period_end,
            "source": source,
            "description": e.description,
            "created_at": now,
        }
        for e in entries
    ]
    inserted = {row.revenue_id for row in conn.execute(stmt, params)}
    deltas = RollupDeltas()
    stored = []
    for e in entries:
        new = e.revenue_id in inserted
        inserted.discard(e.revenue_id)
        stored.append(new)
        if new:
            spread_by_day(
                deltas,
                org_id=org.id,
                customer_id=e.customer_id,
                start=e.period_start,
                end=e.period_end,
                nanos=e.amount_nanos,
            )
    deltas.write(conn, engine)
    return stored
