"""Monitors: the brief's "alert thresholds to add to monitoring", per org, configurable.

Each monitor has defaults (below) that an org can change: on/off, threshold, a minimum volume
that keeps small customers and features from paging anyone, a look-back, and its channels.
The rules themselves are in `monitor_rules.py`; every finding is an alert with a dedupe key,
so it fires once however often the hourly job runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Engine, select

from margindash.budgets.alerts import NewAlert, deliver_alert, record_alert
from margindash.budgets.monitor_rules import RULES, Finding
from margindash.budgets.notifiers import Notifier
from margindash.budgets.spec import InvalidBudget, parse_emails, parse_webhook_url
from margindash.config import Settings
from margindash.db.engine import upsert
from margindash.db.tables import monitor_settings
from margindash.ledger.events import FieldError
from margindash.money import NANOS_PER_UNIT, parse_decimal, to_nanos
from margindash.orgs.service import Org

MAX_LOOKBACK = 8
_FIELDS = ("enabled", "threshold", "min_volume_usd", "lookback", "notify")


@dataclass(frozen=True, slots=True)
class MonitorKind:
    """What a monitor watches, its defaults, and what its threshold and look-back mean."""

    kind: str
    watches: str
    threshold: Decimal
    threshold_means: str
    min_volume_usd: Decimal
    lookback: int = 1
    whole_threshold: bool = False  # a count of events or failures, not a percentage


KINDS: dict[str, MonitorKind] = {
    k.kind: k
    for k in (
        MonitorKind(
            "customer_daily_spike",
            "a customer's daily cost against its average for the same weekday",
            Decimal(10),
            "percent above the average of the same weekday over the prior `lookback` weeks",
            Decimal(5),
        ),
        MonitorKind(
            "feature_daily_growth",
            "a feature's cost day over day",
            Decimal(5),
            "percent growth over the day before",
            Decimal(5),
        ),
        MonitorKind(
            "pricing_sync_failed",
            "failed price catalogue syncs in the last 24 hours",
            Decimal(0),
            "failed syncs tolerated in 24 hours",
            Decimal(0),
            whole_threshold=True,
        ),
        MonitorKind(
            "unattributed_events",
            "usage events without customer_id (booked to `unattributed`), per day",
            Decimal(0),
            "unattributed events tolerated per day",
            Decimal(0),
            whole_threshold=True,
        ),
        MonitorKind(
            "customer_low_margin",
            "a customer's margin % for the month so far",
            Decimal(0),
            "margin % below which a customer alerts",
            Decimal(10),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """An org's settings for one monitor (the defaults when it has changed nothing)."""

    kind: str
    enabled: bool
    threshold: Decimal
    min_volume_nanos: int
    lookback: int
    emails: tuple[str, ...] = ()
    webhook_url: str | None = None


class InvalidMonitor(ValueError):
    """Monitor settings that cannot be stored; `errors` names each bad field."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def default_config(kind: str) -> MonitorConfig:
    """The settings a monitor has until an org changes them."""
    spec = KINDS[kind]
    return MonitorConfig(
        kind=kind,
        enabled=True,
        threshold=spec.threshold,
        min_volume_nanos=to_nanos(spec.min_volume_usd),
        lookback=spec.lookback,
    )


def monitor_configs(engine: Engine, *, org_id: str) -> list[MonitorConfig]:
    """Every monitor's settings for the org, in a fixed order."""
    with engine.connect() as conn:
        rows = conn.execute(select(monitor_settings).where(monitor_settings.c.org_id == org_id))
        stored = {row.kind: _from_row(row) for row in rows if row.kind in KINDS}
    return [stored.get(kind) or default_config(kind) for kind in KINDS]


def configure_monitor(
    engine: Engine,
    *,
    org_id: str,
    kind: str,
    changes: Mapping[str, Any],
    now: datetime | None = None,
) -> MonitorConfig:
    """Change some of a monitor's settings; InvalidMonitor names any bad field."""
    if kind not in KINDS:
        raise KeyError(kind)
    current = next(c for c in monitor_configs(engine, org_id=org_id) if c.kind == kind)
    updated = _apply(current, changes)
    row = {
        "org_id": org_id,
        "kind": kind,
        "enabled": updated.enabled,
        "threshold": format(updated.threshold.normalize(), "f"),
        "min_volume_nanos": updated.min_volume_nanos,
        "lookback": updated.lookback,
        "emails": orjson.dumps(list(updated.emails)).decode(),
        "webhook_url": updated.webhook_url,
        "updated_at": now or datetime.now(UTC),
    }
    stmt = upsert(engine, monitor_settings).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id", "kind"],
        set_={k: v for k, v in row.items() if k not in ("org_id", "kind")},
    )
    with engine.begin() as conn:
        conn.execute(stmt)
    return updated


def run_monitors(
    engine: Engine,
    *,
    org: Org,
    settings: Settings,
    notifiers: Mapping[str, Notifier],
    now: datetime | None = None,
) -> list[int]:
    """Check every enabled monitor of the org; record and deliver new findings. Their ids."""
    now = now or datetime.now(UTC)
    fired = []
    for config in monitor_configs(engine, org_id=org.id):
        if not config.enabled:
            continue
        for finding in RULES[config.kind](engine, org, config, now, settings.dashboard_url):
            alert_id = record_alert(engine, _alert(org, config, finding), now=now)
            if alert_id is not None:
                fired.append(alert_id)
                deliver_alert(
                    engine, alert_id=alert_id, notifiers=notifiers, settings=settings, now=now
                )
    return fired


def _alert(org: Org, config: MonitorConfig, finding: Finding) -> NewAlert:
    return NewAlert(
        org_id=org.id,
        dedupe_key=f"monitor:{config.kind}:{finding.key}",
        message=finding.message,
        emails=config.emails,
        webhook_url=config.webhook_url,
    )


def _apply(current: MonitorConfig, changes: Mapping[str, Any]) -> MonitorConfig:
    errors = [
        FieldError(key, f"unknown field; expected one of {', '.join(_FIELDS)}")
        for key in changes
        if key not in _FIELDS
    ]
    values: dict[str, Any] = {}
    readers = {
        "enabled": _enabled,
        "threshold": lambda v: _threshold(v, KINDS[current.kind]),
        "min_volume_usd": _min_volume,
        "lookback": _lookback,
        "notify": _notify,
    }
    for key, read in readers.items():
        if key not in changes:
            continue
        try:
            values.update(read(changes[key]))
        except InvalidMonitor as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidMonitor(errors)
    return replace(current, **values)


def _enabled(value: Any) -> dict[str, Any]:
    if not isinstance(value, bool):
        raise InvalidMonitor([FieldError("enabled", "must be true or false")])
    return {"enabled": value}


def _threshold(value: Any, kind: MonitorKind) -> dict[str, Any]:
    number = _number(value)
    if number is None or abs(number) > 1000 or number != number.quantize(Decimal("0.01")):
        raise InvalidMonitor(
            [FieldError("threshold", "must be a number between -1000 and 1000, 2 decimals")]
        )
    if kind.whole_threshold and (number < 0 or number != number.to_integral_value()):
        raise InvalidMonitor([FieldError("threshold", "must be a whole number of 0 or more")])
    if kind.kind != "customer_low_margin" and number < 0:
        raise InvalidMonitor([FieldError("threshold", "must be 0 or more")])
    return {"threshold": number}


def _min_volume(value: Any) -> dict[str, Any]:
    amount = _number(value, strings=True)
    if amount is None or amount < 0 or amount > Decimal(1_000_000_000):
        raise InvalidMonitor(
            [FieldError("min_volume_usd", 'must be a USD amount of 0 or more, e.g. "5.00"')]
        )
    nanos = to_nanos(amount)
    if Decimal(nanos) != amount * NANOS_PER_UNIT:
        raise InvalidMonitor([FieldError("min_volume_usd", "at most 9 decimal places")])
    return {"min_volume_nanos": nanos}


def _lookback(value: Any) -> dict[str, Any]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOOKBACK:
        raise InvalidMonitor([FieldError("lookback", f"must be a whole number 1-{MAX_LOOKBACK}")])
    return {"lookback": value}


def _notify(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value) - {"emails", "webhook_url"}:
        raise InvalidMonitor(
            [FieldError("notify", 'must be an object: {"emails": [...], "webhook_url": ...}')]
        )
    try:
        emails = parse_emails(value.get("emails"), "notify.emails")
        webhook = parse_webhook_url(value.get("webhook_url"), "notify.webhook_url")
    except InvalidBudget as exc:
        raise InvalidMonitor(exc.errors) from None
    return {"emails": emails, "webhook_url": webhook}


def _number(value: Any, *, strings: bool = False) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    if isinstance(value, str) and not strings:
        return None
    try:
        number = parse_decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _from_row(row: Any) -> MonitorConfig:
    return MonitorConfig(
        kind=row.kind,
        enabled=bool(row.enabled),
        threshold=Decimal(row.threshold),
        min_volume_nanos=int(row.min_volume_nanos),
        lookback=int(row.lookback),
        emails=tuple(orjson.loads(row.emails)),
        webhook_url=row.webhook_url,
    )
