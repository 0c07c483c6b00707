"""Revenue: amounts per customer and period, spread evenly per day so it lines up with cost."""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import Connection, Engine, Row, delete, select, update

from margindash.db.engine import upsert
from margindash.db.tables import fx_rates, revenue_entries
from margindash.ledger.events import FieldError, Id, IdempotencyKey, InvalidEvent, NoNul
from margindash.ledger.ingest import EventResult, IngestReport
from margindash.ledger.rollups import Measures, RollupDeltas, RollupKey
from margindash.ledger.writer import run_transaction
from margindash.money import NANOS_PER_UNIT, parse_decimal, split_evenly, to_nanos
from margindash.orgs.service import REPORTING_CURRENCY, Org
from margindash.reports.periods import EARLIEST_DAY, LATEST_DAY

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
# A period may start up to this far ahead (a contract signed now that begins next year); later is
# almost surely a typo ("2062-03"), and would sit unseen in reports for decades.
MAX_DAYS_AHEAD = MAX_PERIOD_DAYS
MAX_AMOUNT = Decimal(10) ** 12
# One entry books at most 10^9 reporting-currency units, so rollups that sum several entries
# stay exact in 64-bit nano-units (money.py).
MAX_ENTRY_NANOS = 10**9 * NANOS_PER_UNIT
# FX rates between these bounds: any real pair of currencies fits, and conversions stay finite.
MIN_FX_RATE, MAX_FX_RATE = Decimal("1e-9"), Decimal("1e9")
# More than any published rate carries; the stored decimal string then always fits its column.
FX_RATE_DIGITS = 18


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]


class RevenueIn(BaseModel):
    """One revenue entry as sent to `POST /v1/revenue`."""

    model_config = ConfigDict(extra="ignore")

    revenue_id: IdempotencyKey
    customer_id: Id
    amount: Annotated[str, StringConstraints(max_length=40)] | None = None
    amount_cents: Annotated[int, Field(strict=True, ge=-(10**14), le=10**14)] | None = None
    # `null` means the default, as leaving it out does.
    currency: Currency | None = REPORTING_CURRENCY
    month: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}$")] | None = None
    period_start: date | None = None
    period_end: date | None = None
    description: Annotated[str, StringConstraints(max_length=255), NoNul] | None = None


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


def check_revenue(raw: Any, *, org: Org, rates: dict[str, Decimal], today: date) -> CheckedRevenue:
    """Validate one revenue entry (`today` in the org's time zone); raises InvalidEvent naming
    every bad field."""
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
    currency = (entry.currency or REPORTING_CURRENCY).lower()
    minor = _amount_minor(entry, currency, errors)
    period = _period(entry, errors, today)
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
    if abs(nanos) > MAX_ENTRY_NANOS:
        field = "amount" if entry.amount is not None else "amount_cents"
        raise InvalidEvent([FieldError(field, f"more than 10^9 {org.currency} in one entry")])
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
        amount = parse_decimal(entry.amount)
    except InvalidOperation:
        errors.append(FieldError("amount", 'must be a decimal string such as "233.25"'))
        return None
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        errors.append(FieldError("amount", "must be a finite amount below 10^12"))
        return None
    exponent = minor_unit_exponent(currency)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        errors.append(FieldError("amount", f"{currency} has {exponent} decimal places"))
        return None
    return int(minor)


def _period(entry: RevenueIn, errors: list[FieldError], today: date) -> tuple[date, date] | None:
    period = _month(entry, errors) if entry.month is not None else _days(entry, errors)
    if period is None:
        return None
    # Only days the P&L can report, and not so far ahead that a typo would go unseen.
    start, end = period
    by_month = entry.month is not None
    if start < EARLIEST_DAY or end > LATEST_DAY:
        outside_start = not EARLIEST_DAY <= start <= LATEST_DAY
        field = "month" if by_month else ("period_start" if outside_start else "period_end")
        errors.append(FieldError(field, f"outside {EARLIEST_DAY} to {LATEST_DAY}"))
        return None
    if (start - today).days > MAX_DAYS_AHEAD:
        field = "month" if by_month else "period_start"
        errors.append(FieldError(field, f"starts more than {MAX_DAYS_AHEAD} days after today"))
        return None
    return period


def _month(entry: RevenueIn, errors: list[FieldError]) -> tuple[date, date] | None:
    assert entry.month is not None
    if entry.period_start or entry.period_end:
        errors.append(FieldError("month", "send month or period_start/period_end, not both"))
        return None
    year, month = (int(p) for p in entry.month.split("-"))
    if not 1 <= month <= 12 or year < 1:
        errors.append(FieldError("month", "not a valid YYYY-MM month"))
        return None
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _days(entry: RevenueIn, errors: list[FieldError]) -> tuple[date, date] | None:
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
        value = parse_decimal(str(rate))
    except InvalidOperation as exc:
        raise ValueError("rate: not a decimal number") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError("rate: must be a positive number")
    if not MIN_FX_RATE <= value <= MAX_FX_RATE:
        raise ValueError(f"rate: must be between {MIN_FX_RATE:f} and {MAX_FX_RATE:f}")
    # Counted on the digits as given: `normalize()` would round them to 28 first.
    if len("".join(map(str, value.as_tuple().digits)).rstrip("0")) > FX_RATE_DIGITS:
        raise ValueError(f"rate: at most {FX_RATE_DIGITS} significant digits")
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError("currency: an ISO 4217 code such as eur")
    if currency.lower() == REPORTING_CURRENCY:
        raise ValueError(
            f"currency: {REPORTING_CURRENCY} is the reporting currency and needs no rate"
        )
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
    today = datetime.now(org.zone).date()
    results: list[EventResult] = []
    checked: list[tuple[int, CheckedRevenue]] = []
    for raw in raw_entries:
        try:
            entry = check_revenue(raw, org=org, rates=rates, today=today)
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
        duplicates = [
            results[index]
            for (index, _), was_stored in zip(checked, stored, strict=True)
            if not was_stored
        ]
        if duplicates:
            _report_as_stored(engine, org, duplicates)
    return IngestReport(results)


def _report_as_stored(engine: Engine, org: Org, duplicates: list[EventResult]) -> None:
    """A duplicate reports the amount stored under its id, not the one it sent again."""
    t = revenue_entries
    wanted = {result.request_id for result in duplicates}
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.revenue_id, t.c.amount_nanos).where(
                t.c.org_id == org.id, t.c.revenue_id.in_(wanted)
            )
        ).all()
    amounts = {row.revenue_id: row.amount_nanos for row in rows}
    for result in duplicates:
        result.status = "duplicate"
        result.cost_nanos = amounts.get(result.request_id or "", result.cost_nanos)


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


# Entries kept in step with an outside source (Stripe): unlike `record_revenue`, which stores
# an entry once, these replace, remove or move an entry and its spread in the rollups. They run
# in the caller's transaction, so the entries and the rollups always change together.

_LOCK_CHUNK = 500


class MissingFxRate(ValueError):
    """No FX rate converts the entry's currency into the org's reporting currency."""


def convert_revenue(
    *,
    org: Org,
    rates: Mapping[str, Decimal],
    revenue_id: str,
    customer_id: str,
    amount_minor: int,
    currency: str,
    period_start: date,
    period_end: date,
    description: str | None = None,
    fx_rate: Decimal | None = None,
) -> CheckedRevenue:
    """An entry from minor units of `currency`, converted at `fx_rate` or the org's rate."""
    code = currency.lower()
    rate = fx_rate
    if rate is None:
        rate = Decimal(1) if code == org.currency else rates.get(code)
    if rate is None:
        raise MissingFxRate(
            f"no FX rate from {code} to {org.currency}: set one with "
            f"`margindash fx set {code} RATE` or POST /v1/fx-rates"
        )
    if period_end < period_start:
        raise ValueError(f"{revenue_id}: period ends before it starts")
    major = Decimal(amount_minor).scaleb(-minor_unit_exponent(code))
    return CheckedRevenue(
        revenue_id,
        customer_id,
        amount_minor,
        code,
        rate,
        to_nanos(major * rate),
        period_start,
        period_end,
        description,
    )


def replace_revenue(
    conn: Connection,
    engine: Engine,
    *,
    org_id: str,
    entries: Sequence[CheckedRevenue],
    source: str,
) -> int:
    """Insert entries, or replace stored ones with the same revenue_id; returns how many changed.

    A replaced entry's old spread is taken out of the rollups and the new one booked.
    """
    if len({e.revenue_id for e in entries}) != len(entries):
        raise ValueError("replace_revenue: a revenue_id appears twice")
    current = _locked_entries(conn, org_id, [e.revenue_id for e in entries])
    deltas = RollupDeltas()
    now = datetime.now(UTC)
    changed = 0
    for entry in entries:
        values = {
            "customer_id": entry.customer_id,
            "amount_minor": entry.amount_minor,
            "currency": entry.currency,
            "fx_rate": str(entry.fx_rate),
            "amount_nanos": entry.amount_nanos,
            "period_start": entry.period_start,
            "period_end": entry.period_end,
            "source": source,
            "description": entry.description,
        }
        old = current.get(entry.revenue_id)
        if old is None:
            conn.execute(
                revenue_entries.insert().values(
                    org_id=org_id, revenue_id=entry.revenue_id, created_at=now, **values
                )
            )
        else:
            if all(getattr(old, name) == value for name, value in values.items()):
                continue
            conn.execute(
                update(revenue_entries).where(revenue_entries.c.id == old.id).values(**values)
            )
            if _booked_alike(old, entry):
                changed += 1
                continue
            _spread_row(deltas, org_id, old, sign=-1)
        spread_by_day(
            deltas,
            org_id=org_id,
            customer_id=entry.customer_id,
            start=entry.period_start,
            end=entry.period_end,
            nanos=entry.amount_nanos,
        )
        changed += 1
    deltas.write(conn, engine)
    return changed


def remove_revenue(
    conn: Connection, engine: Engine, *, org_id: str, revenue_ids: Sequence[str]
) -> int:
    """Delete entries and take their spread out of the rollups; returns how many existed."""
    current = _locked_entries(conn, org_id, revenue_ids)
    deltas = RollupDeltas()
    for row in current.values():
        _spread_row(deltas, org_id, row, sign=-1)
        conn.execute(delete(revenue_entries).where(revenue_entries.c.id == row.id))
    deltas.write(conn, engine)
    return len(current)


def move_revenue(
    conn: Connection,
    engine: Engine,
    *,
    org_id: str,
    revenue_ids: Sequence[str],
    customer_id: str,
) -> int:
    """Move entries (same amounts and days) to another customer; returns how many moved."""
    current = _locked_entries(conn, org_id, revenue_ids)
    deltas = RollupDeltas()
    moved = 0
    for row in current.values():
        if row.customer_id == customer_id:
            continue
        _spread_row(deltas, org_id, row, sign=-1)
        spread_by_day(
            deltas,
            org_id=org_id,
            customer_id=customer_id,
            start=row.period_start,
            end=row.period_end,
            nanos=row.amount_nanos,
        )
        conn.execute(
            update(revenue_entries)
            .where(revenue_entries.c.id == row.id)
            .values(customer_id=customer_id)
        )
        moved += 1
    deltas.write(conn, engine)
    return moved


def _locked_entries(
    conn: Connection, org_id: str, revenue_ids: Sequence[str]
) -> dict[str, Row[Any]]:
    """The stored entries with these ids, locked until the transaction ends (PostgreSQL)."""
    found: dict[str, Row[Any]] = {}
    ids = sorted(set(revenue_ids))
    for start in range(0, len(ids), _LOCK_CHUNK):
        query = (
            select(revenue_entries)
            .where(
                revenue_entries.c.org_id == org_id,
                revenue_entries.c.revenue_id.in_(ids[start : start + _LOCK_CHUNK]),
            )
            .order_by(revenue_entries.c.revenue_id)
            .with_for_update()
        )
        found.update((row.revenue_id, row) for row in conn.execute(query))
    return found


def _booked_alike(row: Row[Any], entry: CheckedRevenue) -> bool:
    return (
        row.customer_id == entry.customer_id
        and row.amount_nanos == entry.amount_nanos
        and row.period_start == entry.period_start
        and row.period_end == entry.period_end
    )


def _spread_row(deltas: RollupDeltas, org_id: str, row: Row[Any], *, sign: int) -> None:
    spread_by_day(
        deltas,
        org_id=org_id,
        customer_id=row.customer_id,
        start=row.period_start,
        end=row.period_end,
        nanos=sign * row.amount_nanos,
    )
