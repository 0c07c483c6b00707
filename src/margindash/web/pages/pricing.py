"""The catalogue in force (searchable), the price sync's health, the org's own pricing rules,
and the model names its events sent that nothing prices yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from margindash.api.routers.pricing import alias_json, model_json, override_json, status_json
from margindash.orgs.service import Org
from margindash.pricing.listing import current_catalogue, list_models
from margindash.pricing.overrides import list_aliases, list_overrides
from margindash.pricing.status import pricing_status
from margindash.reports.health import data_health
from margindash.web.tables import Column, DataTable

SHOWN_MODELS = 60
CATALOGUE_COLUMNS = (
    Column("provider", "Provider"),
    Column("model", "Model"),
    Column("name", "Name"),
    Column("input_per_mtok", "Input / 1M", "precise_money"),
    Column("cached_input_per_mtok", "Cached input / 1M", "precise_money"),
    Column("output_per_mtok", "Output / 1M", "precise_money"),
    Column("context_window", "Context", "count"),
    Column("effective_from", "Price since", "date"),
)
UNPRICED_COLUMNS = (Column("model_name", "Model name as sent"), Column("events", "Events", "count"))
ALIAS_COLUMNS = (
    Column("alias", "Your name"),
    Column("model", "Catalogue model"),
    Column("provider", "Provider"),
    Column("effective_from", "From", "date"),
    Column("id", "Id"),
)
OVERRIDE_COLUMNS = (
    Column("kind", "Kind"),
    Column("model", "Model"),
    Column("provider", "Provider"),
    Column("input_per_mtok", "Input / 1M", "precise_money"),
    Column("cached_input_per_mtok", "Cached input / 1M", "precise_money"),
    Column("output_per_mtok", "Output / 1M", "precise_money"),
    Column("discount_pct", "Discount", "pct"),
    Column("effective_from", "From", "date"),
    Column("effective_to", "To", "date"),
    Column("id", "Id"),
)


@dataclass(frozen=True, slots=True)
class PricingView:
    """The catalogue (searched), the sync's status, the org's rules and unpriced names."""

    catalogue: DataTable
    matches: int
    source: str
    providers: list[str]
    sync: dict[str, Any]
    aliases: DataTable
    overrides: DataTable
    unpriced: DataTable

    @property
    def tables(self) -> dict[str, DataTable]:
        tables = (self.catalogue, self.aliases, self.overrides, self.unpriced)
        return {t.name: t for t in tables}

    @property
    def shown_rows(self) -> list[dict[str, Any]]:
        return self.catalogue.rows[:SHOWN_MODELS]


def build_pricing(
    engine: Engine,
    *,
    org: Org,
    search: str | None,
    provider: str | None,
    sort: str | None,
    direction: str | None,
) -> PricingView:
    """The pricing page, with prices per 1M tokens exactly as `GET /v1/models` gives them."""
    catalogue = current_catalogue(engine)
    status = pricing_status(engine)
    providers = sorted({key[0] for key in catalogue.models})
    chosen = provider if provider in providers else None
    models = list_models(catalogue, provider=chosen, search=search or None)
    source = catalogue.source  # computed, so once rather than per model
    rows = [model_json(m, source, status.last_success_at) for m in models]
    health = data_health(engine, org=org)
    return PricingView(
        catalogue=DataTable("catalogue", "Price catalogue", CATALOGUE_COLUMNS, rows).sorted_by(
            sort, direction
        ),
        matches=len(rows),
        source=source,
        providers=providers,
        sync=status_json(status),
        aliases=DataTable(
            "aliases",
            "Aliases",
            ALIAS_COLUMNS,
            [alias_json(a) for a in list_aliases(engine, org_id=org.id)],
        ),
        overrides=DataTable(
            "overrides",
            "Custom prices and discounts",
            OVERRIDE_COLUMNS,
            [override_json(o) for o in list_overrides(engine, org_id=org.id)],
        ),
        unpriced=DataTable(
            "unpriced",
            "Unpriced model names",
            UNPRICED_COLUMNS,
            [{"model_name": name, "events": n} for name, n in health.unpriced_models],
        ),
    )
