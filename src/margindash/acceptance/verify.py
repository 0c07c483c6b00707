"""`margindash verify`: the acceptance checklist run against a live server, over HTTP only.

A throw-away test customer (`md-verify-<random>`) sends usage events and revenue the way an app
would; each line then checks the server's answer against what was sent: events stored and priced,
a re-sent request counted once, the dry run priced like ingest, the customer's P&L exact to the
cent, and a budget e-mail at 90%. The customer's few cents of usage and its revenue stay in the
ledger (there is no delete in the API); run it against a dedicated org to keep them out of reports.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from margindash.acceptance.api_client import ApiClient, ServerUnreachable
from margindash.acceptance.budget_probe import THRESHOLD, BudgetProbe, BudgetTarget, budget_limit
from margindash.acceptance.outcomes import (
    FAIL,
    NOT_AVAILABLE,
    PASS,
    SKIPPED,
    CheckFailed,
    LineResult,
    NotAvailable,
    Skipped,
    expect,
    money,
    required_field,
)
from margindash.money import format_money, margin_pct, to_nanos

CUSTOMER_PREFIX = "md-verify-"
FEATURE = "margindash-verify"
DEFAULT_EMAIL = "margindash-verify@example.com"
# Each event differs a little, so a mix-up between events shows in their costs.
_PROMPT_STEP, _COMPLETION_STEP = 1000, 250
_MAX_PROBLEMS = 3


@dataclass(frozen=True, slots=True)
class VerifyPlan:
    """What one run sends: the test customer, its events and revenue, the budget e-mail."""

    customer_id: str
    day: date
    model: str = "gpt-4o-mini"
    events: int = 10
    prompt_tokens: int = 20_000
    completion_tokens: int = 5_000
    revenue: Decimal = Decimal("1.00")
    alert_email: str = DEFAULT_EMAIL
    alert_timeout: float = 30.0


def new_plan(**options: Any) -> VerifyPlan:
    """A plan with a fresh customer id (`md-verify-<8 hex>`) and today's UTC date."""
    customer_id = CUSTOMER_PREFIX + secrets.token_hex(4)
    return VerifyPlan(customer_id=customer_id, day=datetime.now(UTC).date(), **options)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Every line of one run; `passed` when each one passed or is not available."""

    url: str
    customer_id: str
    lines: list[LineResult]

    @property
    def passed(self) -> bool:
        return all(line.status in (PASS, NOT_AVAILABLE) for line in self.lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "customer_id": self.customer_id,
            "passed": self.passed,
            "lines": [line.as_json() for line in self.lines],
        }


@dataclass(frozen=True, slots=True)
class ExpectedPnl:
    """The customer's P&L row as the API must show it."""

    revenue: str
    cost: str
    margin: str
    margin_pct: float | None
    events: int

    @classmethod
    def of(cls, *, revenue: Decimal, costs: Iterable[Decimal], events: int) -> ExpectedPnl:
        # Amounts are summed exactly and rounded once, to the cent, as API.md documents.
        revenue_nanos = to_nanos(revenue)
        cost_nanos = sum(to_nanos(cost) for cost in costs)
        return cls(
            revenue=format_money(revenue_nanos),
            cost=format_money(cost_nanos),
            margin=format_money(revenue_nanos - cost_nanos),
            margin_pct=margin_pct(revenue_nanos, cost_nanos),
            events=events,
        )

    def mismatches(self, row: dict[str, Any], where: str) -> list[str]:
        """`cost: expected 0.07, server says 0.08` for each field of `row` that differs."""
        found = []
        for name in ("revenue", "cost", "margin"):
            want, got = Decimal(getattr(self, name)), money(row.get(name), f"{where} {name}")
            if got != want:
                found.append(f"{name}: expected {want}, server says {got}")
        got_pct = row.get("margin_pct")
        if _pct(got_pct) != _pct(self.margin_pct):
            found.append(f"margin_pct: expected {self.margin_pct}, server says {got_pct}")
        if row.get("events") != self.events:
            found.append(
                f"events: expected {self.events} (a duplicate counts once), "
                f"server says {row.get('events')}"
            )
        if row.get("unpriced_events", 0) != 0:
            found.append(f"unpriced_events: expected 0, server says {row.get('unpriced_events')}")
        return found

    def describe(self) -> str:
        pct = "n/a" if self.margin_pct is None else f"{self.margin_pct}%"
        return (
            f"revenue ${self.revenue}, cost ${self.cost}, margin ${self.margin} ({pct}), "
            f"{self.events} events"
        )


def _pct(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass
class Checklist:
    """The state one run builds up, line by line."""

    api: ApiClient
    plan: VerifyPlan
    events: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, Decimal] = field(default_factory=dict)
    budget: BudgetProbe = field(init=False)

    def __post_init__(self) -> None:
        target = BudgetTarget(self.plan.customer_id, self.plan.alert_email, self.plan.alert_timeout)
        self.budget = BudgetProbe(self.api, target)

    def event(self, index: int, kind: str) -> dict[str, Any]:
        """Test event `index` of a kind (`usage`, `dry`, `budget`); same index, same tokens."""
        plan = self.plan
        return {
            "request_id": f"{plan.customer_id}-{kind}-{index}",
            "customer_id": plan.customer_id,
            "feature": FEATURE,
            "model_name": plan.model,
            "prompt_tokens": plan.prompt_tokens + _PROMPT_STEP * index,
            "completion_tokens": plan.completion_tokens + _COMPLETION_STEP * index,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }

    def check_health(self) -> str:
        body = expect(self.api.health(), 200)
        if body.get("status") != "ok":
            raise CheckFailed(f"GET /healthz says status {body.get('status')!r}")
        return f"database {body.get('database')}, version {body.get('version')}"

    def check_ingest(self) -> str:
        events = [self.event(i, "usage") for i in range(self.plan.events)]
        self.costs.update(self._send("/usage", events))
        self.events = events
        total = sum(self.costs.values(), Decimal(0))
        return f"{len(events)} events of {self.plan.model} accepted and priced, ${total} in all"

    def check_stored(self) -> str:
        problems = []
        for event in self.events:
            request_id = event["request_id"]
            answer = self.api.get(f"/usage/{quote(request_id, safe='')}")
            if answer.status == 404:
                problems.append(f"{request_id}: not found")
                continue
            problems.extend(_stored_problems(expect(answer, 200), event, self.costs[request_id]))
        _raise_if(problems)
        return f"all {len(self.events)} found by request_id with their customer, tokens and cost"

    def check_duplicate(self) -> str:
        first = self.events[0]
        body = expect(self.api.post("/usage", first), 200)
        result = _results(body, 1, "POST /v1/usage")[0]
        if result.get("status") != "duplicate" or body.get("duplicates") != 1:
            raise CheckFailed(
                f"re-sent {first['request_id']} came back {result.get('status')!r}, not 'duplicate'"
            )
        return f"re-sent {first['request_id']}: duplicate (the P&L line checks it counts once)"

    def check_dry_run(self) -> str:
        samples = [self.event(i, "dry") for i in range(self.plan.events)]
        priced = self._send("/usage/dry-run", samples)
        problems = []
        for index, sample in enumerate(samples):
            ingested = self.costs[self.events[index]["request_id"]]
            if priced[sample["request_id"]] != ingested:
                problems.append(
                    f"{sample['request_id']}: dry run ${priced[sample['request_id']]}, "
                    f"ingest ${ingested} for the same tokens"
                )
        stored = self.api.get(f"/usage/{quote(samples[0]['request_id'], safe='')}")
        if stored.status != 404:
            problems.append(f"dry-run event {samples[0]['request_id']} was stored")
        _raise_if(problems)
        return f"{len(samples)} events priced exactly like ingest; none stored"

    def check_revenue(self) -> str:
        plan = self.plan
        entry = {
            "revenue_id": f"{plan.customer_id}-revenue",
            "customer_id": plan.customer_id,
            "amount": format(plan.revenue, "f"),
            "currency": "usd",
            "period_start": plan.day.isoformat(),
            "period_end": plan.day.isoformat(),
        }
        body = expect(self.api.post("/revenue", entry), 200)
        result = _results(body, 1, "POST /v1/revenue")[0]
        if result.get("status") != "accepted":
            raise CheckFailed(f"revenue {entry['revenue_id']}: {_why(result)}")
        return f"${plan.revenue} for {plan.day}"

    def check_pnl(self) -> str:
        expected = ExpectedPnl.of(
            revenue=self.plan.revenue, costs=self.costs.values(), events=len(self.events)
        )
        customer = self.plan.customer_id
        params = self._period() | {"group_by": "customer", "customer_id": customer}
        body = expect(self.api.get("/pnl", params), 200)
        rows = [r for r in required_field(body, "rows", "GET /v1/pnl") if r.get("key") == customer]
        if len(rows) != 1:
            raise CheckFailed(f"GET /v1/pnl has {len(rows)} rows for {customer}, expected 1")
        problems = expected.mismatches(rows[0], "GET /v1/pnl")
        one = expect(
            self.api.get(f"/customers/{quote(customer, safe='')}/pnl", self._period()), 200
        )
        totals = required_field(one, "totals", f"GET /v1/customers/{customer}/pnl")
        problems += [
            f"customer P&L {p}" for p in expected.mismatches(totals, "customer P&L totals")
        ]
        _raise_if(problems)
        return expected.describe()

    def check_budget_alert(self) -> str:
        spent = sum(self.costs.values(), Decimal(0))
        push = [self.event(i, "budget") for i in range(self.plan.events)]
        # The push mirrors the first events token for token, so it costs what they cost.
        created = self.budget.create(limit=budget_limit(spent=spent, push=spent))
        if self.budget.alerts():
            raise CheckFailed(
                f"an alert fired when the budget was created, at {created.get('used_pct')}%"
            )
        self.costs.update(self._send("/usage", push))
        alert = self.budget.wait_for_alert()
        if alert is None:
            raise CheckFailed(
                f"no alert for budget {self.budget.budget_id} within "
                f"{self.plan.alert_timeout:g} s of usage passing {THRESHOLD}%"
            )
        details: dict[str, Any] = alert.get("details") or {}
        if details.get("threshold", THRESHOLD) != THRESHOLD:
            raise CheckFailed(f"the alert is for {details.get('threshold')}%, not {THRESHOLD}%")
        used = details.get("used_pct", "?")
        return f"at {used}% of ${details.get('limit_usd', '?')}: {alert.get('subject')}"

    def check_budget_email(self) -> str:
        alerts = self.budget.alerts()
        if not alerts:
            raise CheckFailed("the alert is gone from GET /v1/alerts")
        delivery, status = self.budget.wait_for_email(alerts[-1].get("id"))
        if delivery is None:
            raise CheckFailed(f"the alert has no e-mail delivery (alert status {status!r})")
        target, state = delivery.get("target"), delivery.get("status")
        if state == "delivered":
            return f"to {target} at {delivery.get('delivered_at')}"
        if state == "pending":
            raise CheckFailed(
                f"e-mail to {target} still pending after {self.plan.alert_timeout:g} s"
            )
        raise CheckFailed(
            f"e-mail to {target} {state} after {delivery.get('attempts')} attempt(s): "
            f"{delivery.get('error')} (check the server's SMTP_* settings)"
        )

    def check_budget_deleted(self) -> str:
        if self.budget.budget_id is None:
            if self.budget.available is False:
                raise NotAvailable("the budgets API is not available on this server")
            raise Skipped("no test budget was created")
        return self.budget.delete()

    def _period(self) -> dict[str, str]:
        # A day either side: the org's time zone may put "now" on another date than UTC.
        day = self.plan.day
        return {
            "from": (day - timedelta(days=1)).isoformat(),
            "to": (day + timedelta(days=1)).isoformat(),
        }

    def _send(self, path: str, events: list[dict[str, Any]]) -> dict[str, Decimal]:
        """POST events; each must be accepted and priced. Their costs by request_id."""
        body = expect(self.api.post(path, {"events": events}), 200)
        costs, problems = {}, []
        for event, result in zip(
            events, _results(body, len(events), f"POST /v1{path}"), strict=True
        ):
            request_id = event["request_id"]
            if result.get("status") != "accepted":
                problems.append(f"{request_id}: {_why(result)}")
            elif not result.get("priced") or result.get("cost_usd") is None:
                problems.append(
                    f"{request_id}: not priced: {self.plan.model!r} is unknown to this server "
                    "(pass --model with one from GET /v1/models)"
                )
            else:
                costs[request_id] = money(result["cost_usd"], f"{request_id} cost_usd")
        _raise_if(problems)
        return costs


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the checklist: what it checks, how, and which lines it builds on."""

    key: str
    title: str
    run: Callable[[Checklist], str]
    needs: tuple[str, ...] = ()


LINES: tuple[Line, ...] = (
    Line("health", "Server healthy (GET /healthz)", Checklist.check_health),
    Line(
        "ingest",
        "Usage events accepted and priced (POST /v1/usage)",
        Checklist.check_ingest,
        ("health",),
    ),
    Line(
        "stored",
        "Each event stored with its price (GET /v1/usage/{request_id})",
        Checklist.check_stored,
        ("ingest",),
    ),
    Line(
        "duplicate",
        "A re-sent request_id is a duplicate",
        Checklist.check_duplicate,
        ("ingest",),
    ),
    Line(
        "dry_run",
        "Dry run prices like ingest, stores nothing (POST /v1/usage/dry-run)",
        Checklist.check_dry_run,
        ("ingest",),
    ),
    Line("revenue", "Revenue recorded (POST /v1/revenue)", Checklist.check_revenue, ("health",)),
    Line(
        "pnl",
        "Per-customer P&L exact: revenue, cost, margin, margin % (GET /v1/pnl)",
        Checklist.check_pnl,
        ("ingest", "revenue"),
    ),
    Line(
        "budget_alert",
        f"Budget alert fires at {THRESHOLD}% (POST /v1/budgets, GET /v1/alerts)",
        Checklist.check_budget_alert,
        ("ingest",),
    ),
    Line(
        "budget_email",
        "Budget alert e-mail delivered",
        Checklist.check_budget_email,
        ("budget_alert",),
    ),
    Line(
        "budget_deleted",
        "Test budget deleted (DELETE /v1/budgets/{id})",
        Checklist.check_budget_deleted,
    ),
)


def run_verification(
    *, api: ApiClient, plan: VerifyPlan, on_line: Callable[[LineResult], None] | None = None
) -> VerifyReport:
    """Run every line in order; `on_line` sees each result as soon as it is known."""
    checklist = Checklist(api, plan)
    done: dict[str, LineResult] = {}
    try:
        for line in LINES:
            done[line.key] = _run_line(line, checklist, done)
            if on_line is not None:
                on_line(done[line.key])
    finally:
        checklist.budget.discard()
    return VerifyReport(url=api.base, customer_id=plan.customer_id, lines=list(done.values()))


def _run_line(line: Line, checklist: Checklist, done: dict[str, LineResult]) -> LineResult:
    started = time.perf_counter()
    blocked = [done[key] for key in line.needs if done[key].status != PASS]
    if blocked:
        first = blocked[0]
        if first.status == NOT_AVAILABLE:
            status, detail = NOT_AVAILABLE, first.detail
        else:
            status, detail = SKIPPED, f"not run: needs “{first.title}”"
        return LineResult(line.key, line.title, status, detail, 0.0)
    try:
        status, detail = PASS, line.run(checklist)
    except CheckFailed as exc:
        status, detail = FAIL, str(exc)
    except NotAvailable as exc:
        status, detail = NOT_AVAILABLE, str(exc)
    except Skipped as exc:
        status, detail = SKIPPED, str(exc)
    except ServerUnreachable as exc:
        status, detail = FAIL, f"no answer from the server: {exc}"
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        status, detail = FAIL, f"unexpected answer from the server: {type(exc).__name__}: {exc}"
    return LineResult(line.key, line.title, status, detail, time.perf_counter() - started)


def _results(body: dict[str, Any], count: int, where: str) -> list[dict[str, Any]]:
    results = body.get("results")
    if not isinstance(results, list) or len(results) != count:
        raise CheckFailed(f"{where}: expected {count} results, got {results!r:.200}")
    return results


def _stored_problems(stored: dict[str, Any], sent: dict[str, Any], cost: Decimal) -> list[str]:
    request_id = sent["request_id"]
    problems = [
        f"{request_id}: {name} is {stored.get(name)!r}, sent {sent[name]!r}"
        for name in ("customer_id", "feature", "model_name", "prompt_tokens", "completion_tokens")
        if stored.get(name) != sent[name]
    ]
    if stored.get("priced") is not True:
        problems.append(f"{request_id}: stored unpriced")
    elif money(stored.get("cost_usd"), f"{request_id} cost_usd") != cost:
        problems.append(
            f"{request_id}: stored cost ${stored.get('cost_usd')}, ingest answered ${cost}"
        )
    return problems


def _why(result: dict[str, Any]) -> str:
    error = result.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return f"{result.get('status')}: {message}" if message else str(result.get("status"))


def _raise_if(problems: list[str]) -> None:
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        suffix = f"; and {more} more" if more > 0 else ""
        raise CheckFailed("; ".join(problems[:_MAX_PROBLEMS]) + suffix)
