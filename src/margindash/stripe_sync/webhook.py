"""Receiving a webhook: verify the signature on the raw body, store the event, then apply it.

The signature is checked with the official `stripe` library against every configured secret
(several while a secret is rotated) and a 300 s timestamp tolerance. Nothing is stored unless it
verifies. A verified event is stored before it is applied, so it is never lost: if applying fails
it waits, marked failed, for Stripe's retry or the retry sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import stripe
from sqlalchemy import Engine

from margindash.config import Settings
from margindash.ledger.writer import DatabaseUnavailable
from margindash.orgs.service import Org
from margindash.stripe_sync.client import stripe_client
from margindash.stripe_sync.events import (
    HANDLED_TYPES,
    PROCESSED,
    InvalidStripeEvent,
    StoredEvent,
    check_event,
    store_event,
)
from margindash.stripe_sync.processing import (
    Outcome,
    needs_api,
    process_event,
    snapshots_for_event,
)
from margindash.stripe_sync.snapshots import StripeDataError

TOLERANCE_S = 300
log = logging.getLogger(__name__)


class InvalidSignature(ValueError):
    """The body is not signed by any of the org's webhook secrets (or too long ago)."""


def verify_event(
    payload: bytes, signature: str | None, secrets: Sequence[str], *, tolerance: int = TOLERANCE_S
) -> dict[str, Any]:
    """The event in a webhook body whose signature matches one of `secrets`."""
    if not secrets:
        raise InvalidSignature(
            "no webhook signing secret is configured for this org: set STRIPE_WEBHOOK_SECRET "
            "or `margindash stripe configure --secret whsec_…`"
        )
    if not signature:
        raise InvalidSignature("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("the body is not UTF-8") from None
    problems = []
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, signature, secret, tolerance)
            break
        except stripe.SignatureVerificationError as exc:
            problems.append(str(exc.user_message or exc))
    else:
        stale = [p for p in problems if "tolerance" in p]
        raise InvalidSignature(
            f"timestamp older than {tolerance} s (replayed or delayed request)"
            if stale
            else "the Stripe-Signature header matches none of the webhook secrets"
        )
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidStripeEvent(f"the body is not valid JSON: {exc}") from None
    return dict(check_event(event))


@dataclass(frozen=True, slots=True)
class Received:
    """A verified event and what became of it."""

    event_id: str
    type: str
    outcome: Outcome
    stored: StoredEvent | None


def receive_event(
    engine: Engine, *, settings: Settings, org: Org, event: dict[str, Any], payload: bytes
) -> tuple[Received, bool]:
    """Store a verified event and apply it now, or after replying when that may take long.

    Returns the result and whether the caller should apply it after replying (`apply_later`).
    """
    if event["type"] not in HANDLED_TYPES:
        return Received(event["id"], event["type"], Outcome("ignored"), None), False
    stored = store_event(engine, org_id=org.id, event=event, payload=payload.decode("utf-8"))
    if not stored.new and stored.status == PROCESSED:
        return Received(event["id"], event["type"], Outcome("duplicate"), stored), False
    try:
        snapshots = snapshots_for_event(event)
    except StripeDataError:
        snapshots = []  # applying records the problem on the event
    # A customer change can move years of revenue: like API calls, it runs after replying.
    later = needs_api(snapshots, settings) or any(s.object_type == "customer" for s in snapshots)
    if later:
        return Received(event["id"], event["type"], Outcome("queued"), stored), True
    outcome = process_event(engine, settings=settings, org=org, stored=stored)
    return Received(event["id"], event["type"], outcome, stored), False


def apply_later(engine: Engine, *, settings: Settings, org: Org, stored: StoredEvent) -> None:
    """Apply an event after the webhook has been answered (Stripe's API, a customer change)."""
    try:
        process_event(
            engine, settings=settings, org=org, stored=stored, client=stripe_client(settings)
        )
    except DatabaseUnavailable as exc:  # the event stays stored; the retry sweep applies it
        log.warning("stripe event %s waits for the database: %s", stored.event_id, exc)
