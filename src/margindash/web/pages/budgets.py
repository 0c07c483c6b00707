"""Budgets with where they stand, the form that creates or edits one, and the alert history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import InvalidOperation
from typing import Any

from sqlalchemy import Engine

from margindash.api.routers.alerts import alert_json
from margindash.api.routers.budgets import budget_json
from margindash.budgets.alerts import list_alerts
from margindash.budgets.service import list_budgets
from margindash.budgets.spec import ACTIONS, PERIODS, SCOPE_TYPES
from margindash.budgets.status import budget_statuses
from margindash.money import parse_decimal
from margindash.orgs.service import Org
from margindash.web.tables import Column, DataTable

ALERTS_SHOWN = 50
BUDGET_COLUMNS = (
    Column("name", "Budget"),
    Column("scope_type", "Scope"),
    Column("scope_value", "Of"),
    Column("period", "Period"),
    Column("limit_usd", "Limit", "money"),
    Column("spent_usd", "Spent", "money"),
    Column("used_pct", "Used", "pct"),
    Column("projected_usd", "Projected", "money"),
    Column("state", "State"),
    Column("action", "Action"),
    Column("id", "Id"),
)
ALERT_COLUMNS = (
    Column("created_at", "Fired", "timestamp"),
    Column("severity", "Severity"),
    Column("subject", "Alert", "wrap"),
    Column("status", "Delivery"),
    Column("deliveries", "Channels", "wrap"),
)
SCOPE_LABELS = {
    "org": "Whole organisation",
    "feature": "Feature",
    "customer": "Customer",
    "model": "Model",
    "customer_feature": "Customer + feature (customer:feature)",
}


@dataclass(frozen=True, slots=True)
class BudgetForm:
    """The create/edit form's values, as typed (kept when the form is sent back with errors)."""

    name: str = ""
    scope_type: str = "feature"
    scope_value: str = ""
    period: str = "month"
    limit_usd: str = ""
    thresholds: str = "75, 90"
    action: str = "warn"
    emails: str = ""
    webhook_url: str = ""

    def request(self) -> dict[str, Any]:
        """The form as the body of `POST /v1/budgets`."""
        scope: dict[str, Any] = {"type": self.scope_type}
        if self.scope_type != "org":
            scope["value"] = self.scope_value.strip()
        emails = [e.strip() for e in self.emails.replace(";", ",").split(",") if e.strip()]
        return {
            "name": self.name.strip() or None,
            "scope": scope,
            "period": self.period,
            "limit_usd": self.limit_usd.strip().lstrip("$").replace(",", "") or None,
            "thresholds": [_number(t) for t in self.thresholds.split(",") if t.strip()],
            "action": self.action,
            "notify": {"emails": emails, "webhook_url": self.webhook_url.strip() or None},
        }


def _number(text: str) -> Any:
    """A threshold typed as text, as the JSON number the API expects (text if not a number)."""
    try:
        value = parse_decimal(text.strip().rstrip("%"))
    except InvalidOperation:
        return text.strip()
    return int(value) if value == value.to_integral_value() else float(value)


def form_of(budget: dict[str, Any]) -> BudgetForm:
    """The form that edits a budget (given as `budget_json`)."""
    scope = budget["scope"]
    return BudgetForm(
        name=budget["name"],
        scope_type=scope["type"],
        scope_value=scope["value"] or "",
        period=budget["period"],
        limit_usd=budget["limit_usd"],
        thresholds=", ".join(str(t) for t in budget["thresholds"]),
        action=budget["action"],
        emails=", ".join(budget["notify"]["emails"]),
        webhook_url=budget["notify"]["webhook_url"] or "",
    )


@dataclass(frozen=True, slots=True)
class BudgetsView:
    """The org's budgets and recent alerts."""

    budgets: DataTable
    alerts: DataTable
    form: BudgetForm = field(default_factory=BudgetForm)
    editing: str | None = None
    scope_types: tuple[str, ...] = SCOPE_TYPES
    scope_labels: dict[str, str] = field(default_factory=lambda: dict(SCOPE_LABELS))
    periods: tuple[str, ...] = PERIODS
    actions: tuple[str, ...] = ACTIONS

    @property
    def tables(self) -> dict[str, DataTable]:
        return {t.name: t for t in (self.budgets, self.alerts)}


def budget_rows(engine: Engine, *, org: Org) -> list[dict[str, Any]]:
    """Every budget as `GET /v1/budgets` shows it, plus flat scope columns for tables."""
    statuses = budget_statuses(
        engine, org=org, budgets=list_budgets(engine, org_id=org.id), now=datetime.now(UTC)
    )
    rows = [budget_json(status) for status in statuses]
    for row in rows:
        row["scope_type"] = row["scope"]["type"]
        row["scope_value"] = row["scope"]["value"]
    return rows


def _alert_rows(engine: Engine, org: Org) -> list[dict[str, Any]]:
    rows = []
    for alert in list_alerts(engine, org_id=org.id, limit=ALERTS_SHOWN):
        body = alert_json(alert)
        body["deliveries"] = "; ".join(
            f"{d['channel']} {d['target']}: {d['status']}"
            + (f" ({d['error']})" if d["error"] else "")
            for d in body["deliveries"]
        )
        rows.append(body)
    return rows


def build_budgets(
    engine: Engine, *, org: Org, form: BudgetForm | None = None, editing: str | None = None
) -> BudgetsView:
    """The budgets page; `editing` fills the form with that budget unless `form` is given."""
    rows = budget_rows(engine, org=org)
    if form is None and editing is not None:
        found = next((row for row in rows if row["id"] == editing), None)
        form, editing = (form_of(found), editing) if found else (None, None)
    return BudgetsView(
        budgets=DataTable("budgets", "Budgets", BUDGET_COLUMNS, rows),
        alerts=DataTable("alerts", "Alerts", ALERT_COLUMNS, _alert_rows(engine, org)),
        form=form or BudgetForm(),
        editing=editing,
    )


def customer_budgets(rows: list[dict[str, Any]], customer_id: str) -> list[dict[str, Any]]:
    """The budgets that count a customer's spending specifically."""
    return [
        row
        for row in rows
        if row["scope"]["type"] in ("customer", "customer_feature")
        and (row["scope"].get("customer_id") or row["scope"]["value"]) == customer_id
    ]
