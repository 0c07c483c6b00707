"""Periodic Stripe jobs: retry events not applied yet, and reconcile recent weeks daily."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from margindash.jobs.scheduler import Job, JobContext, register
from margindash.stripe_sync.backfill import backfill
from margindash.stripe_sync.client import stripe_client
from margindash.stripe_sync.org_config import default_org
from margindash.stripe_sync.processing import process_unapplied

log = logging.getLogger(__name__)


def retry_events(context: JobContext) -> None:
    """Apply stored events that failed (a missing FX rate, an outage) or were never applied."""
    counts = process_unapplied(
        context.engine, settings=context.settings, client=stripe_client(context.settings)
    )
    if counts:
        log.info("stripe events retried: %s", counts)


def reconcile(context: JobContext) -> None:
    """Re-read recent Stripe objects with STRIPE_API_KEY into the default org (idempotent)."""
    settings = context.settings
    client = stripe_client(settings)
    days = settings.stripe_reconcile_days
    if client is None or days == 0:
        return
    org = default_org(context.engine, settings)
    if org is None:
        return
    since = (datetime.now(UTC) - timedelta(days=days)).date()
    report = backfill(
        context.engine, settings=settings, org=org, client=client, since=since, restart=True
    )
    log.info("stripe reconciliation since %s: %s", since, report.objects)


RETRY_EVENTS = register(Job("stripe-retry-events", timedelta(minutes=5), retry_events))
RECONCILE = register(Job("stripe-reconcile", timedelta(days=1), reconcile))
