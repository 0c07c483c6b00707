"""Periodic jobs: the budget sweep, alert delivery retries and the monitors.

Each is safe to run in several processes at once: alerts are unique per dedupe key, and a
delivery is claimed before it is retried.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from margindash.budgets.alerts import deliver_due
from margindash.budgets.evaluator import sweep_budgets
from margindash.budgets.monitors import run_monitors
from margindash.budgets.notifiers import notifiers_from
from margindash.db.tables import orgs
from margindash.jobs.scheduler import Job, JobContext, register
from margindash.orgs.service import Org


def run_budget_sweep(context: JobContext) -> None:
    """Evaluate every budget: new periods, events written outside the API, missed commits."""
    settings = context.settings
    sweep_budgets(context.engine, settings=settings, notifiers=notifiers_from(settings))


def run_alert_retries(context: JobContext) -> None:
    """Retry the alert deliveries that failed and are due again."""
    settings = context.settings
    deliver_due(context.engine, notifiers=notifiers_from(settings), settings=settings)


def run_monitor_checks(context: JobContext) -> None:
    """Run every org's monitors."""
    settings = context.settings
    notifiers = notifiers_from(settings)
    with context.engine.connect() as conn:
        rows = conn.execute(select(orgs.c.id, orgs.c.name, orgs.c.timezone, orgs.c.currency))
        every_org = [Org(row.id, row.name, row.timezone, row.currency) for row in rows]
    for org in every_org:
        run_monitors(context.engine, org=org, settings=settings, notifiers=notifiers)


BUDGET_SWEEP = register(Job("budget-sweep", timedelta(minutes=1), run_budget_sweep))
ALERT_RETRIES = register(Job("alert-retries", timedelta(seconds=30), run_alert_retries))
MONITORS = register(Job("monitors", timedelta(hours=1), run_monitor_checks))
