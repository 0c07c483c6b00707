"""The budget lines of `verify`: a small `warn` budget for the test customer, pushed past 90%.

The limit is chosen so that the spend already recorded sits near 47% of it and the next batch of
events lands at 95%: the alert must come from crossing 90%, not from creating the budget. The
budget is deleted at the end, also when a line before that failed or the run was interrupted.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import quote

from margindash.acceptance.api_client import Answer, ApiClient, ServerUnreachable
from margindash.acceptance.outcomes import CheckFailed, NotAvailable, expect, required_field

THRESHOLD = 90
_LANDING_PCT = Decimal(95)
_NANO = Decimal("1e-9")
_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class BudgetTarget:
    """Who the test budget watches and where its alert goes."""

    customer_id: str
    email: str
    timeout: float


def budget_limit(*, spent: Decimal, push: Decimal) -> Decimal:
    """A limit that `spent + push` reaches at 95% (rounded down, so never below it)."""
    return ((spent + push) * 100 / _LANDING_PCT).quantize(_NANO, rounding=ROUND_DOWN)


class BudgetProbe:
    """Creates the test budget, watches `GET /v1/alerts` for its alert, and deletes it."""

    def __init__(self, api: ApiClient, target: BudgetTarget):
        self.api = api
        self.target = target
        self.budget_id: str | None = None
        self.available: bool | None = None
        self.deleted = False

    def create(self, *, limit: Decimal) -> dict[str, Any]:
        """POST /v1/budgets; NotAvailable when the server has no budgets API."""
        answer = self.api.post(
            "/budgets",
            {
                "name": f"margindash verify {self.target.customer_id}",
                "scope": {"type": "customer", "value": self.target.customer_id},
                "period": "month",
                "limit_usd": format(limit, "f"),
                "thresholds": [THRESHOLD],
                "action": "warn",
                "notify": {"emails": [self.target.email], "webhook_url": None},
            },
        )
        if answer.status in (404, 405):
            self.available = False
            raise NotAvailable("the budgets API (POST /v1/budgets) is not available on this server")
        created = expect(answer, 200, 201)
        self.available = True
        self.budget_id = str(required_field(created, "id", "the new budget"))
        return dict(created)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts fired for the test budget, newest first."""
        assert self.budget_id is not None
        answer = self.api.get("/alerts", {"budget_id": self.budget_id, "limit": "50"})
        if answer.status in (404, 405):
            raise NotAvailable("GET /v1/alerts is not available on this server")
        found = required_field(expect(answer, 200), "alerts", "GET /v1/alerts")
        if not isinstance(found, list):
            raise CheckFailed("GET /v1/alerts: `alerts` is not a list")
        # Filtered here too: a server that ignores `budget_id` still answers correctly.
        return [a for a in found if isinstance(a, dict) and a.get("budget_id") == self.budget_id]

    def wait_for_alert(self) -> dict[str, Any] | None:
        """The budget's first alert, polled until it appears or the timeout passes."""
        deadline = time.monotonic() + self.target.timeout
        while True:
            found = self.alerts()
            if found:
                return found[-1]
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_S)

    def wait_for_email(self, alert_id: Any) -> tuple[dict[str, Any] | None, str]:
        """The alert's e-mail delivery once it is no longer pending (or at the timeout), with
        the alert's own status."""
        deadline = time.monotonic() + self.target.timeout
        while True:
            alert = next((a for a in self.alerts() if a.get("id") == alert_id), None)
            if alert is None:
                raise CheckFailed(f"alert {alert_id} is no longer listed by GET /v1/alerts")
            delivery = _email_delivery(alert)
            settled = delivery is not None and delivery.get("status") != "pending"
            if settled or time.monotonic() >= deadline:
                return delivery, str(alert.get("status"))
            time.sleep(_POLL_S)

    def delete(self) -> str:
        """DELETE the test budget."""
        assert self.budget_id is not None
        answer = self.api.delete(f"/budgets/{quote(self.budget_id, safe='')}")
        self.deleted = answer.status in (200, 204)
        if not self.deleted:
            raise CheckFailed(_leftover(answer, self.budget_id))
        return f"budget {self.budget_id} deleted"

    def discard(self) -> None:
        """Delete the test budget if it still exists; errors are ignored (best effort)."""
        if self.budget_id is not None and not self.deleted:
            with contextlib.suppress(ServerUnreachable, CheckFailed):
                self.delete()


def _email_delivery(alert: dict[str, Any]) -> dict[str, Any] | None:
    deliveries = alert.get("deliveries")
    if not isinstance(deliveries, list):
        return None
    return next(
        (d for d in deliveries if isinstance(d, dict) and d.get("channel") == "email"), None
    )


def _leftover(answer: Answer, budget_id: str) -> str:
    return f"{answer.describe()}; delete budget {budget_id} by hand"
