"""The catalogue as people read it: models, prices per 1M tokens, and when each was checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, select

from margindash.db.tables import model_prices
from margindash.pricing.catalogue import Catalogue, CatalogueModel
from margindash.pricing.payload import bundled_label
from margindash.pricing.rows import (
    ModelKey,
    PriceRow,
    by_model,
    catalogue_rows,
    in_force,
    model_rows,
)
from margindash.pricing.snapshots import (
    SnapshotInfo,
    current_snapshot,
    get_snapshot_info,
    row_dates,
    snapshot_rows,
)

RowDates = dict[tuple[Any, ...], datetime | None]


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One catalogue model and its standard price in force, per 1M tokens."""

    provider: str
    model: str
    name: str | None
    input_per_mtok: Decimal | None
    cached_input_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    tiered: bool
    time_window: str | None
    context_window: int | None
    effective_from: date | None  # when this price took effect, where known
    deprecated: bool
    checked_at: datetime | None  # when a sync last confirmed it (None: bundled, never synced)
    snapshot_id: int | None


@dataclass(frozen=True, slots=True)
class CurrentCatalogue:
    """The catalogue in force, as rows."""

    snapshot: SnapshotInfo | None  # None: nothing stored yet, the bundled data is in force
    models: dict[ModelKey, tuple[PriceRow, ...]]
    since: RowDates

    @property
    def source(self) -> str:
        return self.snapshot.source if self.snapshot else bundled_label()


@lru_cache(maxsize=1)
def _bundled_models() -> dict[ModelKey, tuple[PriceRow, ...]]:
    return by_model(catalogue_rows(Catalogue().providers))


def current_catalogue(engine: Engine) -> CurrentCatalogue:
    """The rows of the snapshot in force (or of the bundled data before the first one)."""
    with engine.connect() as conn:
        snapshot = current_snapshot(conn)
        if snapshot is None:
            return CurrentCatalogue(None, _bundled_models(), {})
        return CurrentCatalogue(
            snapshot, by_model(snapshot_rows(conn, snapshot.id)), row_dates(conn, snapshot.id)
        )


def describe_rows(
    rows: tuple[PriceRow, ...],
    *,
    at: datetime,
    since: RowDates,
    snapshot: SnapshotInfo | None,
) -> ListedModel:
    """A model's price in force at `at`, from its rows."""
    row = in_force(rows, at)
    first_seen = since.get((row.provider, row.model, row.starts_on, row.time_window))
    known = [d for d in (row.starts_on, first_seen.date() if first_seen else None) if d]
    return ListedModel(
        provider=row.provider,
        model=row.model,
        name=row.name,
        input_per_mtok=row.input_per_mtok,
        cached_input_per_mtok=row.cached_input_per_mtok,
        cache_write_per_mtok=row.cache_write_per_mtok,
        output_per_mtok=row.output_per_mtok,
        tiered=row.tiered,
        time_window=row.time_window,
        context_window=row.context_window,
        effective_from=max(known) if known else None,
        deprecated=row.deprecated,
        checked_at=snapshot.checked_at if snapshot else None,
        snapshot_id=snapshot.id if snapshot else None,
    )


def describe(catalogue: Catalogue, model: CatalogueModel, at: datetime) -> ListedModel:
    """A resolved model's price in force at `at`, from the catalogue alone (no database)."""
    rows = tuple(model_rows(model.provider, model.info))
    return describe_rows(rows, at=at, since={}, snapshot=None)


def list_models(
    catalogue: CurrentCatalogue | Catalogue,
    *,
    provider: str | None = None,
    search: str | None = None,
    include_deprecated: bool = False,
    at: datetime | None = None,
) -> list[ListedModel]:
    """Models priced per token, optionally filtered, sorted by provider and model."""
    at = at or datetime.now(UTC)
    if isinstance(catalogue, Catalogue):
        catalogue = CurrentCatalogue(None, by_model(catalogue_rows(catalogue.providers)), {})
    needle = search.lower() if search else None
    found = []
    for (prov, model), rows in catalogue.models.items():
        if provider is not None and prov != provider:
            continue
        if needle and needle not in model.lower() and needle not in (rows[0].name or "").lower():
            continue
        listed = describe_rows(rows, at=at, since=catalogue.since, snapshot=catalogue.snapshot)
        if listed.deprecated and not include_deprecated:
            continue
        if listed.input_per_mtok is None and listed.output_per_mtok is None:
            continue
        found.append(listed)
    return sorted(found, key=lambda m: (m.provider, m.model))


def describe_resolved(
    engine: Engine, catalogue: Catalogue, model: CatalogueModel, *, at: datetime
) -> ListedModel:
    """How the catalogue that prices `at` lists a resolved model."""
    since: RowDates = {}
    snapshot = None
    if catalogue.snapshot_id is not None:
        t = model_prices
        with engine.connect() as conn:
            snapshot = get_snapshot_info(conn, catalogue.snapshot_id)
            rows = conn.execute(
                select(t.c.provider, t.c.model, t.c.starts_on, t.c.time_window, t.c.since).where(
                    t.c.snapshot_id == catalogue.snapshot_id,
                    t.c.provider == model.provider_id,
                    t.c.model == model.model_id,
                )
            )
            since = {(r.provider, r.model, r.starts_on, r.time_window): r.since for r in rows}
    return describe_rows(
        tuple(model_rows(model.provider, model.info)), at=at, since=since, snapshot=snapshot
    )
