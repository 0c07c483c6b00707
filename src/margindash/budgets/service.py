"""An org's budgets: create, replace, delete, list, and apply a budget file by name."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from margindash.budgets.spec import BudgetSpec, Notify, Scope, threshold_text
from margindash.db.tables import budgets
from margindash.pricing.service import Pricer


@dataclass(frozen=True, slots=True)
class Budget:
    """A stored budget."""

    id: str
    org_id: str
    spec: BudgetSpec
    revision: int
    blocked_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ApplySummary:
    """What applying a budget file changed, by budget name."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]


class BudgetExists(ValueError):
    """Another budget of the org already has this name."""


def create_budget(
    engine: Engine,
    *,
    org_id: str,
    spec: BudgetSpec,
    pricer: Pricer,
    now: datetime | None = None,
) -> Budget:
    """Store a new budget; BudgetExists when the org already has one with its name.

    A model scope is stored as the model events of that name are booked under (`pricer`).
    """
    now = now or datetime.now(UTC)
    spec = booked_spec(spec, org_id=org_id, pricer=pricer)
    budget_id = f"bud_{secrets.token_hex(8)}"
    try:
        with engine.begin() as conn:
            _check_name_free(conn, org_id=org_id, name=spec.name, budget_id=None)
            conn.execute(insert(budgets).values(_new_row(budget_id, org_id, spec, now)))
    except IntegrityError:
        raise BudgetExists(f"a budget named {spec.name!r} already exists") from None
    found = get_budget(engine, org_id=org_id, budget_id=budget_id)
    assert found is not None
    return found


def replace_budget(
    engine: Engine,
    *,
    org_id: str,
    budget_id: str,
    spec: BudgetSpec,
    pricer: Pricer,
    now: datetime | None = None,
) -> Budget | None:
    """Replace a budget's definition; None when the org has no such budget."""
    now = now or datetime.now(UTC)
    spec = booked_spec(spec, org_id=org_id, pricer=pricer)
    try:
        with engine.begin() as conn:
            row = conn.execute(_by_id(org_id, budget_id)).first()
            if row is None:
                return None
            _check_name_free(conn, org_id=org_id, name=spec.name, budget_id=budget_id)
            _update(conn, _from_row(row), spec, now)
    except IntegrityError:
        raise BudgetExists(f"a budget named {spec.name!r} already exists") from None
    return get_budget(engine, org_id=org_id, budget_id=budget_id)


def delete_budget(engine: Engine, *, org_id: str, budget_id: str) -> bool:
    """Delete a budget (its alert history stays); False when there is no such budget."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(budgets).where(budgets.c.org_id == org_id, budgets.c.id == budget_id)
        )
    return result.rowcount == 1


def get_budget(engine: Engine, *, org_id: str, budget_id: str) -> Budget | None:
    """One budget of the org, or None."""
    with engine.connect() as conn:
        row = conn.execute(_by_id(org_id, budget_id)).first()
    return _from_row(row) if row else None


def find_budget(engine: Engine, *, org_id: str, id_or_name: str) -> Budget | None:
    """A budget of the org by id or by name."""
    with engine.connect() as conn:
        row = conn.execute(
            select(budgets).where(
                budgets.c.org_id == org_id,
                or_(budgets.c.id == id_or_name, budgets.c.name == id_or_name),
            )
        ).first()
    return _from_row(row) if row else None


def list_budgets(engine: Engine, *, org_id: str) -> list[Budget]:
    """The org's budgets, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(budgets).where(budgets.c.org_id == org_id).order_by(budgets.c.name)
        ).all()
    return [_from_row(row) for row in rows]


def orgs_with_budgets(engine: Engine) -> list[str]:
    """Ids of the orgs that have at least one budget."""
    with engine.connect() as conn:
        return list(conn.execute(select(budgets.c.org_id).distinct()).scalars())


def apply_budgets(
    engine: Engine,
    *,
    org_id: str,
    specs: Sequence[BudgetSpec],
    pricer: Pricer,
    prune: bool = False,
    now: datetime | None = None,
) -> ApplySummary:
    """Make the org's budgets match a file, by name, in one transaction.

    `prune` also deletes the org's budgets the file does not name.
    """
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError("a budget file names the same budget twice")
    now = now or datetime.now(UTC)
    specs = [booked_spec(spec, org_id=org_id, pricer=pricer) for spec in specs]
    summary = ApplySummary([], [], [], [])
    with engine.begin() as conn:
        rows = conn.execute(select(budgets).where(budgets.c.org_id == org_id)).all()
        existing = {row.name: _from_row(row) for row in rows}
        for spec in specs:
            current = existing.get(spec.name)
            if current is None:
                row = _new_row(f"bud_{secrets.token_hex(8)}", org_id, spec, now)
                conn.execute(insert(budgets).values(row))
                summary.created.append(spec.name)
            elif current.spec == spec:
                summary.unchanged.append(spec.name)
            else:
                _update(conn, current, spec, now)
                summary.updated.append(spec.name)
        for name, budget in existing.items():
            if prune and name not in names:
                conn.execute(delete(budgets).where(budgets.c.id == budget.id))
                summary.deleted.append(name)
    return summary


def booked_spec(spec: BudgetSpec, *, org_id: str, pricer: Pricer) -> BudgetSpec:
    """The spec with its model scope named as the org's events of that model are stored
    (`gpt-4o-mini-2024-07-18` and `openai/gpt-4o-mini` are `gpt-4o-mini`): spend is summed,
    and the guard matches calls, by that name. A model nothing prices keeps its name, trimmed
    and in lower case, as its unpriced events do."""
    model = spec.scope.model
    if spec.scope.type != "model" or model is None:
        return spec
    booked = pricer.booked_model(org_id=org_id, model_name=model)
    return replace(spec, scope=replace(spec.scope, model=booked))


def set_blocked_until(
    engine: Engine, *, budget_id: str, until: datetime | None, revision: int
) -> bool:
    """Record that a block budget is exhausted until `until` (None: no longer).

    Only the revision that was evaluated is changed, so a budget edited meanwhile is left
    to its next evaluation. Returns whether anything changed.
    """
    current = budgets.c.blocked_until
    changed: ColumnElement[bool] = current.is_(None) if until is not None else current.is_not(None)
    if until is not None:
        changed = or_(changed, current != until)
    with engine.begin() as conn:
        result = conn.execute(
            update(budgets)
            .where(budgets.c.id == budget_id, budgets.c.revision == revision, changed)
            .values(blocked_until=until)
        )
    return result.rowcount == 1


def _check_name_free(conn: Connection, *, org_id: str, name: str, budget_id: str | None) -> None:
    query = select(budgets.c.id).where(budgets.c.org_id == org_id, budgets.c.name == name)
    if budget_id is not None:
        query = query.where(budgets.c.id != budget_id)
    if conn.execute(query).first():
        raise BudgetExists(f"a budget named {name!r} already exists")


def _update(conn: Connection, current: Budget, spec: BudgetSpec, now: datetime) -> None:
    old = current.spec
    # A threshold is a percentage of a limit over a scope and period: if those change, the
    # alerts already fired this period no longer say anything about the new budget.
    meaning_changed = (old.scope, old.period, old.limit_nanos) != (
        spec.scope,
        spec.period,
        spec.limit_nanos,
    )
    values = _spec_values(spec)
    values.update(updated_at=now, revision=current.revision + (1 if meaning_changed else 0))
    if meaning_changed or old.action != spec.action:
        values["blocked_until"] = None  # the next evaluation decides afresh
    conn.execute(update(budgets).where(budgets.c.id == current.id).values(values))


def _by_id(org_id: str, budget_id: str) -> Any:
    return select(budgets).where(budgets.c.org_id == org_id, budgets.c.id == budget_id)


def _new_row(budget_id: str, org_id: str, spec: BudgetSpec, now: datetime) -> dict[str, Any]:
    return {
        "id": budget_id,
        "org_id": org_id,
        **_spec_values(spec),
        "revision": 1,
        "blocked_until": None,
        "created_at": now,
        "updated_at": now,
    }


def _spec_values(spec: BudgetSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "scope_type": spec.scope.type,
        "customer_id": spec.scope.customer_id,
        "feature": spec.scope.feature,
        "model": spec.scope.model,
        "period": spec.period,
        "limit_nanos": spec.limit_nanos,
        "thresholds": orjson.dumps([threshold_text(t) for t in spec.thresholds]).decode(),
        "action": spec.action,
        "emails": orjson.dumps(list(spec.notify.emails)).decode(),
        "webhook_url": spec.notify.webhook_url,
    }


def _from_row(row: Any) -> Budget:
    spec = BudgetSpec(
        name=row.name,
        scope=Scope(row.scope_type, row.customer_id, row.feature, row.model),
        period=row.period,
        limit_nanos=int(row.limit_nanos),
        thresholds=tuple(Decimal(t) for t in orjson.loads(row.thresholds)),
        action=row.action,
        notify=Notify(tuple(orjson.loads(row.emails)), row.webhook_url),
    )
    return Budget(
        id=row.id,
        org_id=row.org_id,
        spec=spec,
        revision=int(row.revision),
        blocked_until=row.blocked_until,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
