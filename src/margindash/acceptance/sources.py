"""Where `reconcile` reads margindash's numbers: the HTTP API of any deployment, or this
machine's database (`--org`), which also gives customer amounts to the nano-dollar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote

from sqlalchemy import Engine, select

from margindash.acceptance.api_client import ApiClient
from margindash.acceptance.outcomes import expect, money, required_field
from margindash.db.tables import usage_events
from margindash.money import from_nanos
from margindash.orgs.service import Org
from margindash.reports.periods import parse_month, this_month
from margindash.reports.pnl import get_pnl

_CENT = Decimal("0.01")
_CHUNK = 500


class SourceError(Exception):
    """The period cannot be read from the database; the message says why."""


@dataclass(frozen=True, slots=True)
class Period:
    """The reporting period asked for: a month, from/to, or neither (this month)."""

    month: str | None = None
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True, slots=True)
class CustomerFigures:
    """One customer's revenue, cost and margin as margindash reports them."""

    revenue: Decimal
    cost: Decimal
    margin: Decimal


@dataclass(frozen=True, slots=True)
class CustomerNumbers:
    """Every customer's figures over the period margindash used."""

    date_from: str
    date_to: str
    customers: dict[str, CustomerFigures]


class NumbersSource(Protocol):
    """margindash's side of the comparison."""

    label: str
    # Customer amounts are rounded to this (None: exact); local figures are compared at it.
    customer_precision: Decimal | None

    def request_costs(self, request_ids: Sequence[str]) -> dict[str, Decimal | None]:
        """Cost per stored request (None when unpriced); unknown ids are left out."""
        ...

    def customer_numbers(self, period: Period) -> CustomerNumbers:
        """Per-customer P&L over the period."""
        ...


class HttpNumbers:
    """`GET /v1/usage/{request_id}` and `GET /v1/pnl` of a running server."""

    customer_precision: Decimal | None = _CENT  # the P&L reports amounts to the cent

    def __init__(self, api: ApiClient):
        self.api = api
        self.label = api.base

    def request_costs(self, request_ids: Sequence[str]) -> dict[str, Decimal | None]:
        found: dict[str, Decimal | None] = {}
        for request_id in request_ids:
            answer = self.api.get(f"/usage/{quote(request_id, safe='')}")
            if answer.status == 404:
                continue
            cost = expect(answer, 200).get("cost_usd")
            found[request_id] = None if cost is None else money(cost, f"{request_id} cost_usd")
        return found

    def customer_numbers(self, period: Period) -> CustomerNumbers:
        params = {"group_by": "customer"}
        if period.month:
            params["month"] = period.month
        if period.date_from and period.date_to:
            params["from"], params["to"] = period.date_from.isoformat(), period.date_to.isoformat()
        body = expect(self.api.get("/pnl", params), 200)
        rows = required_field(body, "rows", "GET /v1/pnl")
        return CustomerNumbers(
            str(body.get("from")),
            str(body.get("to")),
            {str(row["key"]): _figures(row) for row in rows},
        )


class DatabaseNumbers:
    """The same numbers read from the database of this machine's settings."""

    customer_precision: Decimal | None = None

    def __init__(self, engine: Engine, org: Org, *, watch_pct: float):
        self.engine = engine
        self.org = org
        self.watch_pct = watch_pct
        self.label = f"org {org.name} (database)"

    def request_costs(self, request_ids: Sequence[str]) -> dict[str, Decimal | None]:
        found: dict[str, Decimal | None] = {}
        events = usage_events.c
        with self.engine.connect() as conn:
            for start in range(0, len(request_ids), _CHUNK):
                chunk = list(request_ids[start : start + _CHUNK])
                rows = conn.execute(
                    select(events.request_id, events.cost_nanos).where(
                        events.org_id == self.org.id, events.request_id.in_(chunk)
                    )
                )
                for request_id, nanos in rows:
                    found[request_id] = None if nanos is None else from_nanos(nanos)
        return found

    def customer_numbers(self, period: Period) -> CustomerNumbers:
        start, end = self._dates(period)
        report = get_pnl(
            self.engine,
            org=self.org,
            date_from=start,
            date_to=end,
            group_by="customer",
            watch_pct=self.watch_pct,
        )
        return CustomerNumbers(
            start.isoformat(),
            end.isoformat(),
            {
                line.key: CustomerFigures(
                    from_nanos(line.revenue_nanos),
                    from_nanos(line.cost_nanos),
                    from_nanos(line.margin_nanos),
                )
                for line in report.rows
            },
        )

    def _dates(self, period: Period) -> tuple[date, date]:
        if period.month:
            try:
                return parse_month(period.month)
            except ValueError as exc:
                raise SourceError(str(exc)) from None
        if period.date_from and period.date_to:
            if period.date_to < period.date_from:
                raise SourceError("--to is before --from")
            return period.date_from, period.date_to
        return this_month(self.org.zone)


def _figures(row: dict[str, Any]) -> CustomerFigures:
    key = row.get("key")
    return CustomerFigures(
        money(row.get("revenue"), f"{key} revenue"),
        money(row.get("cost"), f"{key} cost"),
        money(row.get("margin"), f"{key} margin"),
    )
