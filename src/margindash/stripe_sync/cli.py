"""`margindash stripe …`: backfill, verify, map customers, configure the webhook, replay events.

The `stripe` library takes a while to import, so commands import what needs it when they run:
every other `margindash` command starts as fast as before.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table
from sqlalchemy import Engine

from margindash.config import Settings, get_settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.ledger.revenue import minor_unit_exponent
from margindash.ledger.writer import DatabaseUnavailable
from margindash.money import format_money
from margindash.orgs.service import Org, find_org
from margindash.stripe_sync.configure import configure_stripe
from margindash.stripe_sync.events import recent_events
from margindash.stripe_sync.org_config import describe_settings

if TYPE_CHECKING:
    import stripe

stripe_app = typer.Typer(
    help="Stripe revenue sync: backfill, verify, customer mapping, webhook settings.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="Org name or id (default: MARGINDASH_DEFAULT_ORG or the oldest)."),
]


def _open(org_name: str | None) -> tuple[Settings, Engine, Org]:
    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    org = find_org(engine, org_name or settings.default_org)
    if org is None:
        err.print("[red]No such org.[/red] Create one with `margindash init --org NAME`.")
        raise typer.Exit(1)
    return settings, engine, org


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def _client(settings: Settings) -> stripe.StripeClient:
    from margindash.stripe_sync.client import stripe_client

    client = stripe_client(settings)
    if client is None:
        raise _fail("set STRIPE_API_KEY to a restricted read-only Stripe key (rk_…)")
    return client


def _minor(amount: int, currency: str) -> str:
    """Minor units as an exact amount: 33242 usd → `332.42 USD`, 15000 jpy → `15000 JPY`."""
    value = Decimal(amount).scaleb(-minor_unit_exponent(currency))
    return f"{value} {currency.upper()}"


@stripe_app.command("backfill")
def backfill_command(
    since: Annotated[str, typer.Option(help="First day (YYYY-MM-DD) of objects to read.")],
    restart: Annotated[
        bool, typer.Option(help="Start over instead of resuming an interrupted run.")
    ] = False,
    org: OrgOption = None,
) -> None:
    """Read customers, paid invoices, credit notes and refunds since a date (resumable)."""
    import stripe

    from margindash.stripe_sync.backfill import RESOURCES, backfill
    from margindash.stripe_sync.snapshots import StripeDataError

    try:
        first_day = date.fromisoformat(since)
    except ValueError:
        raise _fail("--since: a date such as 2026-01-01") from None
    settings, engine, target = _open(org)
    client = _client(settings)
    with Progress(console=console) as progress:
        tasks: dict[str, TaskID] = {
            name: progress.add_task(f"{name:<12}", total=None) for name in RESOURCES
        }

        def advance(resource: str, count: int) -> None:
            progress.update(tasks[resource], completed=count)

        try:
            report = backfill(
                engine,
                settings=settings,
                org=target,
                client=client,
                since=first_day,
                restart=restart,
                on_progress=advance,
            )
        except (stripe.StripeError, StripeDataError, DatabaseUnavailable) as exc:
            message = getattr(exc, "user_message", None) or str(exc)
            raise _fail(f"backfill interrupted: {message}. Run it again to resume.", 1) from None
        for name in RESOURCES:
            progress.update(tasks[name], total=report.objects.get(name, 0))
    resumed = f" (resumed: {', '.join(report.resumed)})" if report.resumed else ""
    counts = ", ".join(f"{report.objects.get(n, 0)} {n.replace('_', ' ')}" for n in RESOURCES)
    console.print(f"Backfill done{resumed}: {counts}; {report.changed_entries} entries changed.")


@stripe_app.command("verify")
def verify_command(
    last: Annotated[int, typer.Option(help="How many recent paid invoices.", min=1, max=100)] = 5,
    stored: Annotated[
        bool, typer.Option(help="Use invoices received by webhook, not Stripe's API.")
    ] = False,
    org: OrgOption = None,
) -> None:
    """Show the mapping and booked amounts of the last N paid invoices (writes nothing)."""
    import stripe

    from margindash.stripe_sync.client import stripe_client
    from margindash.stripe_sync.verify import verify_invoices

    settings, engine, target = _open(org)
    client = None if stored else stripe_client(settings)
    try:
        checks = verify_invoices(engine, settings=settings, org=target, last=last, client=client)
    except stripe.StripeError as exc:
        raise _fail(f"Stripe: {exc.user_message or exc}", 1) from None
    source = "Stripe's API" if client else "invoices received by webhook"
    table = Table(title=f"Last {last} paid invoices ({source}) → {target.name}")
    for column in ("invoice", "Stripe customer", "customer_id", "mapped by", "total", "tax"):
        table.add_column(column)
    table.add_column(f"revenue ({target.currency.upper()})", justify="right")
    table.add_column("ledger", justify="right")
    table.add_column("state")
    for check in checks:
        who = " ".join(p for p in (check.name, check.email and f"<{check.email}>") if p)
        expected = check.expected_nanos
        table.add_row(
            check.number or check.invoice_id,
            f"{check.stripe_customer_id}\n{who}".strip(),
            check.customer_id,
            check.source.replace("_", " "),
            _minor(check.total_minor, check.currency),
            _minor(check.tax_minor, check.currency),
            format_money(expected) if expected is not None else "",
            format_money(check.booked_nanos),
            check.problem or check.state,
            style="red" if check.state in ("differs", "error") else None,
        )
        for line in check.lines:
            table.add_row(
                f"  {line.description}",
                f"{line.start} → {line.end}",
                "",
                "",
                _minor(line.amount_minor, check.currency),
                "",
                "",
                "",
                "",
                style="dim",
            )
    console.print(table)
    if not checks:
        console.print("No paid invoices found.")


@stripe_app.command("map")
def map_command(
    stripe_customer_id: Annotated[str, typer.Argument(help="The Stripe customer (cus_…).")],
    customer_id: Annotated[str, typer.Argument(help="Your app's customer_id.")],
    org: OrgOption = None,
) -> None:
    """Map a Stripe customer to your customer_id; its booked revenue moves with it."""
    from margindash.stripe_sync.customers import map_customer

    settings, engine, target = _open(org)
    try:
        moved = map_customer(
            engine,
            settings=settings,
            org=target,
            stripe_customer_id=stripe_customer_id,
            customer_id=customer_id,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{stripe_customer_id} → {customer_id.strip()} ({moved} entries moved).")


@stripe_app.command("unmap")
def unmap_command(
    stripe_customer_id: Annotated[str, typer.Argument(help="The Stripe customer (cus_…).")],
    org: OrgOption = None,
) -> None:
    """Remove a manual mapping: metadata (or the cus_ id) decides again."""
    from margindash.stripe_sync.customers import unmap_customer

    settings, engine, target = _open(org)
    try:
        moved = unmap_customer(
            engine, settings=settings, org=target, stripe_customer_id=stripe_customer_id
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if moved is None:
        raise _fail(f"no manual mapping for {stripe_customer_id}", 1)
    console.print(f"Mapping of {stripe_customer_id} removed ({moved} entries moved).")


@stripe_app.command("customers")
def customers_command(
    unmapped: Annotated[bool, typer.Option(help="Only customers without a mapping.")] = False,
    org: OrgOption = None,
) -> None:
    """List Stripe customers with name, e-mail, the customer_id they map to and their revenue."""
    from margindash.stripe_sync.customers import list_customers

    settings, engine, target = _open(org)
    found = list_customers(engine, settings=settings, org=target, unmapped_only=unmapped)
    table = Table(title=f"Stripe customers of {target.name}")
    for column in ("Stripe customer", "mode", "name", "e-mail", "customer_id", "mapped by"):
        table.add_column(column)
    table.add_column(f"revenue ({target.currency.upper()})", justify="right")
    for c in found:
        table.add_row(
            c.stripe_customer_id,
            "live" if c.livemode else "test",
            c.name or "",
            c.email or "",
            c.customer_id,
            "unmapped" if not c.mapped else c.source.replace("_", " "),
            format_money(c.revenue_nanos),
            style=None if c.mapped else "yellow",
        )
    console.print(table)
    if any(not c.mapped for c in found):
        console.print("Map the unmapped ones with `margindash stripe map cus_… CUSTOMER_ID`.")


@stripe_app.command("configure")
def configure_command(
    secret: Annotated[
        list[str] | None,
        typer.Option(help="Webhook signing secret (repeat while rotating); replaces the list."),
    ] = None,
    clear_secrets: Annotated[bool, typer.Option(help="Remove the org's own secrets.")] = False,
    mode: Annotated[str | None, typer.Option(help="Book `live` or `test` revenue.")] = None,
    org: OrgOption = None,
) -> None:
    """Set the org's webhook secrets and booked mode, and show its webhook path."""
    settings, engine, target = _open(org)
    secrets = [] if clear_secrets else secret
    try:
        if secrets is not None or mode is not None:
            configure_stripe(
                engine, settings=settings, org=target, webhook_secrets=secrets, mode=mode
            )
    except (ValueError, DatabaseUnavailable) as exc:
        raise _fail(str(exc)) from None
    view = describe_settings(engine, settings, target)
    console.print(f"Org {target.name} ({target.id})")
    console.print(f"  webhook path:   {view.webhook_path}")
    if view.default_org:
        console.print("  also receives:  /v1/stripe/webhook (the default org)")
    console.print(f"  secrets:        {', '.join(view.webhook_secrets) or 'none'}")
    if view.environment_secrets:
        console.print(f"  from STRIPE_WEBHOOK_SECRET: {', '.join(view.environment_secrets)}")
    console.print(f"  booked mode:    {view.mode} ({view.mode_source})")


@stripe_app.command("replay")
def replay_command(
    all_events_: Annotated[
        bool,
        typer.Option("--all", help="Apply every stored event again, not only unapplied ones."),
    ] = False,
    org: OrgOption = None,
) -> None:
    """Apply stored events again: the failed or pending ones (default), or all of them."""
    from margindash.stripe_sync.client import stripe_client
    from margindash.stripe_sync.events import all_events
    from margindash.stripe_sync.processing import process_event, process_unapplied

    settings, engine, target = _open(org)
    client = stripe_client(settings)
    counts: dict[str, int] = {}
    try:
        if not all_events_:
            counts = process_unapplied(engine, settings=settings, org_id=target.id, client=client)
        else:
            after = 0
            while batch := all_events(engine, org_id=target.id, after_id=after):
                for stored in batch:
                    outcome = process_event(
                        engine, settings=settings, org=target, stored=stored, client=client
                    )
                    counts[outcome.status] = counts.get(outcome.status, 0) + 1
                after = batch[-1].row_id
    except DatabaseUnavailable as exc:
        raise _fail(str(exc), 1) from None
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to do"
    console.print(f"Replayed: {summary}.")
    if counts.get("failed"):
        console.print("See why with `margindash stripe events --status failed`.")
        raise typer.Exit(1)


@stripe_app.command("events")
def events_command(
    status: Annotated[
        str | None, typer.Option(help="Only events that are pending, processed or failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    org: OrgOption = None,
) -> None:
    """The latest Stripe events received, with their outcome."""
    _settings, engine, target = _open(org)
    rows = recent_events(engine, org_id=target.id, status=status, limit=limit)
    table = Table(title=f"Stripe events of {target.name}")
    for column in ("received", "event", "type", "mode", "object", "status", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
            row["event_id"],
            row["type"],
            "live" if row["livemode"] else "test",
            row["object_id"] or "",
            row["status"],
            (row["last_error"] or "")[:80],
            style="red" if row["status"] == "failed" else None,
        )
    console.print(table)
