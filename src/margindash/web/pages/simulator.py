"""The cost simulator: the period's usage re-priced on other models, ranked by intelligence per
dollar, with the effect on each customer's margin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from margindash.config import Settings
from margindash.orgs.service import Org
from margindash.pricing.catalogue import Catalogue
from margindash.reports.pnl import get_pnl
from margindash.simulator.benchmarks import ATTRIBUTION
from margindash.simulator.report import simulation_json
from margindash.simulator.request import SimulateIn, simulation_options
from margindash.simulator.simulation import InvalidOption, simulate
from margindash.web.pages.pnl_tables import customer_href
from margindash.web.period import Period
from margindash.web.tables import Column, DataTable

ROW_COLUMNS = (
    Column("feature", "Feature"),
    Column("model", "Current model"),
    Column("events", "Events", "count"),
    Column("cost", "Cost", "money"),
    Column("simulated_cost", "Simulated cost", "money"),
    Column("savings", "Savings", "money"),
    Column("savings_pct", "Savings %", "pct"),
    Column("best_model", "Suggested model"),
    Column("best_quality", "Quality"),
    Column("quality", "Current quality"),
)
CANDIDATE_COLUMNS = (
    Column("feature", "Feature"),
    Column("current_model", "Current model"),
    Column("rank", "Rank", "count"),
    Column("model", "Candidate"),
    Column("provider", "Provider"),
    Column("quality", "Quality"),
    Column("quality_drop_pct", "Quality drop %"),
    Column("intelligence_per_dollar", "Intelligence per $"),
    Column("simulated_cost", "Simulated cost", "money"),
    Column("savings_pct", "Savings %", "pct"),
    Column("eligible", "Eligible"),
)
CUSTOMER_COLUMNS = (
    Column("customer_id", "Customer"),
    Column("revenue", "Revenue", "money"),
    Column("margin_before", "Margin now", "money"),
    Column("margin_after", "Margin after", "money"),
    Column("margin_pct_before", "Margin % now", "pct"),
    Column("margin_pct_after", "Margin % after", "pct"),
    Column("savings", "Savings", "money"),
    Column("action_after", "Action after", shown=False),
    Column("payback_months", "Payback (months)", shown=False),
)


@dataclass(frozen=True, slots=True)
class SimulatorForm:
    """The simulator's constraints as typed in the form (all optional)."""

    feature: str = ""
    customer_id: str = ""
    max_quality_drop_pct: str = ""
    min_quality: str = ""
    candidates: str = ""

    def request(self, period: Period) -> dict[str, Any]:
        """The form as the body of `POST /v1/simulate` for the period."""
        body: dict[str, Any] = {
            "from": period.date_from.isoformat(),
            "to": period.date_to.isoformat(),
        }
        for name in ("feature", "customer_id", "max_quality_drop_pct", "min_quality"):
            value = getattr(self, name).strip()
            if value:
                body[name] = value
        names = [n.strip() for n in self.candidates.split(",") if n.strip()]
        if names:
            body["candidates"] = names
        return body


@dataclass(frozen=True, slots=True)
class SimulatorView:
    """The form, the features to choose from, and the simulation (unless the form is wrong)."""

    form: SimulatorForm
    features: list[str]
    default_drop_pct: float
    errors: list[str] = field(default_factory=list)
    totals: dict[str, Any] | None = None
    roi: dict[str, Any] | None = None
    rows: DataTable = field(default_factory=lambda: DataTable("savings", "Savings", ROW_COLUMNS))
    candidates: DataTable = field(
        default_factory=lambda: DataTable("candidates", "Candidates", CANDIDATE_COLUMNS)
    )
    customers: DataTable = field(
        default_factory=lambda: DataTable("customers", "Customers", CUSTOMER_COLUMNS)
    )
    attribution: str = ATTRIBUTION

    @property
    def tables(self) -> dict[str, DataTable]:
        return {t.name: t for t in (self.rows, self.candidates, self.customers)}

    def candidates_of(self, feature: str, model: str) -> list[dict[str, Any]]:
        return [
            c
            for c in self.candidates.rows
            if c["feature"] == feature and c["current_model"] == model
        ]


def build_simulator(
    engine: Engine,
    catalogue: Catalogue,
    settings: Settings,
    *,
    org: Org,
    period: Period,
    form: SimulatorForm,
) -> SimulatorView:
    """Run the simulation the form describes over the period (as `POST /v1/simulate` does)."""
    features = [
        line.key
        for line in get_pnl(
            engine, org=org, date_from=period.date_from, date_to=period.date_to, group_by="feature"
        ).rows
    ]
    view = SimulatorView(
        form=form, features=features, default_drop_pct=settings.simulator_max_quality_drop_pct
    )
    try:
        body = SimulateIn.model_validate(form.request(period))
        options = simulation_options(
            body, date_from=period.date_from, date_to=period.date_to, settings=settings
        )
        result = simulation_json(
            simulate(
                engine,
                org=org,
                catalogue=catalogue,
                options=options,
                default_weights=settings.simulator_weights,
                watch_pct=settings.watch_margin_pct,
            )
        )
    except ValidationError as exc:
        return _with_errors(view, [_problem(e) for e in exc.errors()])
    except InvalidOption as exc:
        return _with_errors(view, [f"{exc.field}: {exc.message}"])
    return SimulatorView(
        form=form,
        features=features,
        default_drop_pct=view.default_drop_pct,
        totals=result["totals"],
        roi=result["roi"],
        rows=DataTable("savings", "Savings", ROW_COLUMNS, [_row(r) for r in result["rows"]]),
        candidates=DataTable(
            "candidates", "Candidates", CANDIDATE_COLUMNS, _candidates(result["rows"])
        ),
        customers=DataTable("customers", "Customers", CUSTOMER_COLUMNS, _customers(result)),
        attribution=result["attribution"] or ATTRIBUTION,
    )


def _with_errors(view: SimulatorView, errors: list[str]) -> SimulatorView:
    return SimulatorView(
        form=view.form,
        features=view.features,
        default_drop_pct=view.default_drop_pct,
        errors=errors,
    )


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "form"
    return f"{where}: {error['msg']}"


def _row(row: dict[str, Any]) -> dict[str, Any]:
    best = row["best_candidate"] or {}
    return {
        **row,
        "best_model": best.get("model"),
        "best_quality": best.get("quality"),
        "_note": row["note"],
        "_negative": False,
    }


def _candidates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**candidate, "feature": row["feature"], "current_model": row["model"], "rank": rank}
        for row in rows
        for rank, candidate in enumerate(row["candidates"], start=1)
    ]


def _customers(result: dict[str, Any]) -> list[dict[str, Any]]:
    acting = [c for c in result["customers"] if c["act_on"] or c["turns_positive"]]
    return [
        {
            **c,
            "_negative": c["margin_after"].startswith("-"),
            "_href": customer_href(c["customer_id"]),
        }
        for c in acting
    ]
