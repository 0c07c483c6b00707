"""Reading from Stripe's API with the official client (a restricted, read-only key suffices)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stripe import StripeClient

from margindash.config import Settings

PAGE_SIZE = 100


def stripe_client(settings: Settings, *, max_network_retries: int = 2) -> StripeClient | None:
    """A client for STRIPE_API_KEY, or None when no key is configured."""
    if not settings.stripe_api_key:
        return None
    return StripeClient(
        api_key=settings.stripe_api_key,
        base_addresses={"api": settings.stripe_api_base.rstrip("/")},
        max_network_retries=max_network_retries,
    )


def key_livemode(api_key: str | None) -> bool | None:
    """Whether a Stripe key reads live or test data (`rk_live_…`, `sk_test_…`), if it says."""
    kind = (api_key or "").split("_")[1:2]
    return {"live": True, "test": False}.get(kind[0]) if kind else None


def as_dict(obj: Any) -> dict[str, Any]:
    """A Stripe object as the plain JSON a webhook would carry."""
    result: dict[str, Any] = obj.to_dict(for_json=True)
    return result


def invoice_lines(client: StripeClient, invoice_id: str) -> list[dict[str, Any]]:
    """Every line of an invoice, page after page."""
    pages = client.v1.invoices.line_items.list(invoice_id, params={"limit": PAGE_SIZE})
    return [as_dict(line) for line in pages.auto_paging_iter()]


def invoice_payments(client: StripeClient, payment_intent: str) -> list[dict[str, Any]]:
    """The invoice payments a payment intent made (which invoices it paid)."""
    pages = client.v1.invoice_payments.list(
        params={
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
            "limit": PAGE_SIZE,
        }
    )
    return [as_dict(item) for item in pages.auto_paging_iter()]


def customer(client: StripeClient, customer_id: str) -> dict[str, Any]:
    """One customer (for its metadata, name and e-mail)."""
    return as_dict(client.v1.customers.retrieve(customer_id))


def listing(
    client: StripeClient, resource: str, params: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Every object of a list endpoint (`invoices`, `credit_notes`, `refunds`, `customers`)."""
    service = getattr(client.v1, resource)
    for item in service.list(params={"limit": PAGE_SIZE, **params}).auto_paging_iter():
        yield as_dict(item)
