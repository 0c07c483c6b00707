"""The words of budget alerts: subject, plain-text body and figures for e-mail and webhooks."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import quote

from margindash.budgets.notifiers import AlertMessage
from margindash.budgets.spec import threshold_number, threshold_text
from margindash.budgets.spend import Drivers
from margindash.budgets.status import HUNDRED, BudgetStatus
from margindash.money import format_money

BUDGET_THRESHOLD = "budget_threshold"
_CENT = Decimal("0.01")


def usd(nanos: int) -> str:
    """`$1,453.69`: an amount for people, rounded half-even to the cent."""
    return f"${Decimal(format_money(nanos)):,.2f}".replace("$-", "-$")


def percent(value: float | Decimal) -> str:
    """`91%`, `90.5%`: a percentage for people, at most 2 decimals."""
    number = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_EVEN).normalize()
    return f"{number:f}%"


def budget_alert(
    status: BudgetStatus, threshold: Decimal, *, drivers: Drivers, public_url: str
) -> AlertMessage:
    """The alert sent when a budget reaches `threshold` percent of its limit."""
    spec = status.budget.spec
    severity = status.severity(threshold)
    figures = f"{usd(status.spent_nanos)} of {usd(status.limit_nanos)} ({percent(status.used_pct)})"
    if threshold >= HUNDRED and spec.action == "block":
        subject = f"[margindash] {spec.name} budget is now blocking calls: {figures}"
        headline = f'Budget "{spec.name}" has used its whole limit and now blocks calls.'
    else:
        # No quotes here: a quoted phrase makes the Subject header fold badly.
        subject = f"[margindash] {spec.name} budget passed {threshold_text(threshold)}%: {figures}"
        headline = (
            f'Budget "{spec.name}" has passed its {threshold_text(threshold)}% threshold '
            f"({severity})."
        )
    base = public_url.rstrip("/")
    lines = [
        headline,
        "",
        f"  Scope:      {spec.scope.describe()}",
        f"  Period:     {_period_text(status)}",
        f"  Spent:      {figures}",
        f"  Projected:  {_projection_text(status)}",
        f"  Action:     {_action_text(status)}",
        "",
        *_driver_lines("Top customers this period", drivers.customers),
        *_driver_lines("Top models this period", drivers.models),
        f"Budgets:       {base}/budgets",
        *(
            f"Top customer:  {base}/customers/{quote(customer, safe='')}"
            for customer, _ in drivers.customers[:1]
        ),
        "",
        "You get this e-mail once per threshold and period.",
    ]
    return AlertMessage(
        kind=BUDGET_THRESHOLD,
        severity=severity,
        subject=subject,
        body="\n".join(lines) + "\n",
        details=_details(status, threshold, drivers),
    )


def _period_text(status: BudgetStatus) -> str:
    period = status.period
    return f"{period.label()} ({period.first_day} to {period.last_day})"


def _projection_text(status: BudgetStatus) -> str:
    if status.projected_nanos is None:
        return "too early in the period to project"
    suffix = " (over the limit)" if status.projected_to_exceed else ""
    return f"{usd(status.projected_nanos)} by the end of the period{suffix}"


def _action_text(status: BudgetStatus) -> str:
    if status.budget.spec.action == "block":
        return "block (calls are refused once the limit is reached)"
    return "warn (calls are not blocked)"


def _driver_lines(title: str, rows: list[tuple[str, int]]) -> list[str]:
    if not rows:
        return []
    width = max(len(key) for key, _ in rows)
    return [f"{title}:", *(f"  {key:<{width}}  {usd(nanos):>12}" for key, nanos in rows), ""]


def _details(status: BudgetStatus, threshold: Decimal, drivers: Drivers) -> dict[str, Any]:
    budget = status.budget
    return {
        "budget_id": budget.id,
        "budget_name": budget.spec.name,
        "scope": {"type": budget.spec.scope.type, "value": budget.spec.scope.value},
        "period": budget.spec.period,
        "period_start": status.period.first_day.isoformat(),
        "period_end": status.period.last_day.isoformat(),
        "threshold": threshold_number(threshold),
        "limit_usd": format_money(status.limit_nanos),
        "spent_usd": format_money(status.spent_nanos),
        "used_pct": status.used_pct,
        "projected_usd": (
            None if status.projected_nanos is None else format_money(status.projected_nanos)
        ),
        "action": budget.spec.action,
        "top_customers": [{"key": k, "cost_usd": format_money(n)} for k, n in drivers.customers],
        "top_models": [{"key": k, "cost_usd": format_money(n)} for k, n in drivers.models],
    }
