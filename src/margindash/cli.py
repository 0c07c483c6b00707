"""The `margindash` command line."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from margindash.acceptance.cli import reconcile_command, verify_command
from margindash.budgets.cli import alerts_app, budgets_app, monitors_app
from margindash.config import Settings, get_settings, unset_public_url_warning
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.money import format_cost
from margindash.orgs.keys import SCOPES, create_api_key
from margindash.orgs.service import Org, OrgExists, create_org, find_org
from margindash.pricing.cli import pricing_app
from margindash.pricing.service import Pricer
from margindash.simulator.cli import benchmarks_app, simulate_command
from margindash.stripe_sync.cli import stripe_app
from margindash.users.cli import (
    add_login,
    check_new_login,
    demo_login,
    describe_login,
    users_app,
)

app = typer.Typer(
    help="AI margin analytics: per-customer P&L for LLM products.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
fx_app = typer.Typer(help="FX rates for non-USD revenue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(pricing_app, name="pricing")
app.add_typer(keys_app, name="keys")
app.add_typer(fx_app, name="fx")
app.add_typer(budgets_app, name="budgets")
app.add_typer(alerts_app, name="alerts")
app.add_typer(monitors_app, name="monitors")
app.add_typer(users_app, name="users")
app.add_typer(benchmarks_app, name="benchmarks")
app.add_typer(stripe_app, name="stripe")
app.command("simulate")(simulate_command)
app.command("verify")(verify_command)
app.command("reconcile")(reconcile_command)

console = Console()
err = Console(stderr=True)

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Org name or id (default: the first org).")
]


def _engine(settings: Settings | None = None) -> Any:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return engine


def _org(engine: Any, name: str | None) -> Org:
    org = find_org(engine, name)
    if org is None:
        err.print("[red]No such org.[/red] Create one with `margindash init --org NAME`.")
        raise typer.Exit(1)
    return org


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


@app.command()
def init(
    org: Annotated[str, typer.Option("--org", help="Name of the org to create.")] = "default",
    timezone: Annotated[str, typer.Option(help="IANA time zone for months.")] = "UTC",
    admin_email: Annotated[
        str | None, typer.Option(help="E-mail of the first dashboard admin.")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Their password (default: print a generated one once).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Create an org with an admin key, an ingest key and a dashboard admin (printed once)."""
    engine = _engine()
    try:
        check_new_login(engine, email=admin_email, password=password)
        created = create_org(engine, name=org, timezone=timezone)
        login = add_login(
            engine, org=created.org, email=admin_email, password=password, role="admin"
        )
    except OrgExists as exc:
        raise _fail(f"{exc}; create more keys with `margindash keys create`") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    login_lines = describe_login(login, get_settings().dashboard_url + "/")
    if as_json:
        sys.stdout.write(
            orjson.dumps(
                {
                    "org_id": created.org.id,
                    "api_key": created.admin_key,
                    "ingest_key": created.ingest_key,
                }
            ).decode()
            + "\n"
        )
        for line in login_lines:  # stdout stays the documented JSON
            err.print(line)
        return
    console.print(f"Created org [bold]{created.org.name}[/bold] ({created.org.id}).")
    console.print(f"  admin key:  [bold]{created.admin_key}[/bold]")
    console.print(f"  ingest key: [bold]{created.ingest_key}[/bold]")
    console.print("These keys are shown once; store them now.")
    for line in login_lines:
        console.print(line)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run periodic jobs in this process.")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Run the API (and the dashboard) on HOST:PORT."""
    import uvicorn

    from margindash.app import create_app
    from margindash.logs import configure_logging
    from margindash.runtime import shorten_switch_interval

    settings = get_settings()
    # The address served is the one links in e-mails point at (unless MARGINDASH_PUBLIC_URL).
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    configure_logging(settings)
    _warn_of_unset_public_url(settings)
    _engine(settings).dispose()
    shorten_switch_interval()
    uvicorn.run(
        create_app(settings, run_jobs=not no_worker),
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_config=None,
    )


def _warn_of_unset_public_url(settings: Settings, *, worker: bool = False) -> None:
    warning = unset_public_url_warning(settings, worker=worker)
    if warning is not None:
        logging.getLogger("margindash").warning(warning)


@app.command()
def worker(
    tick: Annotated[float, typer.Option(help="Seconds between checks for due jobs.")] = 15.0,
) -> None:
    """Run the periodic jobs (price sync, budget sweep, monitors) until interrupted."""
    from margindash.jobs.scheduler import JobContext, Scheduler
    from margindash.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)
    _warn_of_unset_public_url(settings, worker=True)
    scheduler = Scheduler(JobContext(settings=settings, engine=_engine(settings)), tick=tick)
    console.print("Worker running; Ctrl-C to stop.")
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.run_forever()


@app.command()
def demo(
    org: Annotated[str, typer.Option("--org", help="Org to load the demo into.")] = "demo",
    month: Annotated[
        str | None, typer.Option(help="Month (YYYY-MM) calibrated to the brief's numbers.")
    ] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve", help="Start the server when the data is loaded.")
    ] = False,
) -> None:
    """Load a realistic demo data set (~50 customers, 90 days) and print how to look at it."""
    from margindash.demo import load_demo
    from margindash.reports.periods import add_months, parse_month

    settings = get_settings()
    engine = _engine(settings)
    existing = find_org(engine, org)
    if existing is None:
        created = create_org(engine, name=org)
        target = created.org
        pricer = Pricer(engine)
        ingestor = UsageIngestor(engine=engine, pricer=pricer, rules=event_rules(settings))
        with console.status("Loading demo data…"):
            summary = load_demo(
                ingestor, org=target, month=parse_month(month)[0] if month else None
            )
        console.print(
            f"Loaded {summary.events:,} usage events and {summary.revenue_entries} revenue "
            f"entries ({summary.first_day} to {summary.last_day}) into org [bold]{org}[/bold]."
        )
        console.print(f"Calibrated month: [bold]{summary.calibrated_month}[/bold].")
        calibrated = summary.calibrated_month
    else:
        target = existing
        console.print(f"Org [bold]{org}[/bold] already has the demo data.")
        calibrated = month or f"{add_months(date.today().replace(day=1), -1):%Y-%m}"
    key = create_api_key(engine, org_id=target.id, scope="admin", name="demo key")
    base = settings.dashboard_url
    console.print(f"\nAPI:      {base}/v1   (docs: {base}/docs)")
    console.print(f"API key:  [bold]{key}[/bold]")
    console.print(
        f'Try:      curl -H "Authorization: Bearer {key}" "{base}/v1/pnl?group_by=customer'
        f'&month={calibrated}"'
    )
    # The calibrated month is "last month" unless --month chose another.
    period = (
        f"from={parse_month(month)[0]}&to={parse_month(month)[1]}" if month else "period=last_month"
    )
    for line in describe_login(demo_login(engine, org=target), f"{base}/?{period}"):
        console.print(line)
    engine.dispose()
    if serve_after:
        serve(host=None, port=None, no_worker=False, access_log=False)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSON array or JSON Lines of usage events.")],
    url: Annotated[
        str | None, typer.Option(help="Send to this API base URL (…/v1) instead of the database.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Key for --url (default: MARGINDASH_API_KEY).")
    ] = None,
    org: OrgOption = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 500,
) -> None:
    """Replay usage events from a file (the brief's replay.sh), with a progress bar."""
    from rich.progress import Progress

    from margindash.replay import read_events, replay_to_database, replay_to_url

    try:
        events = read_events(file)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    with Progress(console=console) as progress:
        task = progress.add_task("Replaying", total=len(events))

        def advance(n: int) -> None:
            progress.advance(task, n)

        if url:
            api_key = api_key or get_settings().api_key  # the environment, .env, margindash.yaml
            if not api_key:
                raise _fail("--url needs an API key (--api-key or MARGINDASH_API_KEY)")
            try:
                totals = replay_to_url(
                    events, url=url, api_key=api_key, batch_size=batch_size, on_progress=advance
                )
            except (ValueError, httpx.HTTPError) as exc:
                raise _fail(f"replay to {url} stopped: {exc}") from None
        else:
            settings = get_settings()
            engine = _engine(settings)
            ingestor = UsageIngestor(
                engine=engine, pricer=Pricer(engine), rules=event_rules(settings)
            )
            totals = replay_to_database(
                events,
                ingestor=ingestor,
                org=_org(engine, org),
                batch_size=batch_size,
                on_progress=advance,
            )
    console.print(
        f"accepted {totals.accepted}, duplicates {totals.duplicates}, rejected {totals.rejected}, "
        f"unpriced {totals.unpriced}, cost ${format_cost(totals.cost_nanos) or '0.00'}"
    )
    for line in totals.problems[:10]:
        console.print(f"  [yellow]{line}[/yellow]")
    if totals.rejected:
        raise typer.Exit(1)


@app.command()
def pnl(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month).")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD")] = None,
    by: Annotated[str, typer.Option(help="customer, feature, model, day or month.")] = "customer",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    org: OrgOption = None,
) -> None:
    """Print the P&L: revenue, cost, margin and margin % per customer (or feature, model…)."""
    from margindash.api.schemas import pnl_json
    from margindash.reports.periods import parse_month, this_month
    from margindash.reports.pnl import get_pnl

    settings = get_settings()
    engine = _engine(settings)
    target = _org(engine, org)
    try:
        if month:
            start, end = parse_month(month)
        elif date_from and date_to:
            start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
        else:
            start, end = this_month(target.zone)
        report = get_pnl(
            engine,
            org=target,
            date_from=start,
            date_to=end,
            group_by=by,
            watch_pct=settings.watch_margin_pct,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    body = pnl_json(report)
    if fmt == "json":
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    columns = ["key", "revenue", "cost", "margin", "margin_pct", "events", "unpriced_events"]
    if by == "customer":
        columns += ["action", "negative_months"]
    rows = [*body["rows"], {"key": "TOTAL", **body["totals"]}]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
        return
    table = Table(title=f"P&L by {by}, {body['from']} to {body['to']} ({body['currency']})")
    for column in columns:
        table.add_column(column, justify="left" if column in ("key", "action") else "right")
    for row in rows:
        style = "red" if row["margin"].startswith("-") else None
        cells = ["" if row.get(c) is None else str(row.get(c)) for c in columns]
        table.add_row(*cells, style=style, end_section=row["key"] == "TOTAL")
    console.print(table)
    if body["totals"]["unpriced_events"]:
        console.print(
            f"[yellow]{body['totals']['unpriced_events']} events are unpriced (unknown models); "
            "see `margindash doctor`.[/yellow]"
        )


@app.command()
def doctor(org: OrgOption = None) -> None:
    """Check data quality: unattributed events, unpriced models, estimates, duplicates."""
    from margindash.reports.health import data_health

    engine = _engine()
    target = _org(engine, org)
    health = data_health(engine, org=target)
    table = Table(title=f"Data health of {target.name}")
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column("note")
    table.add_row("events", str(health.events), "")
    table.add_row(
        "missing customer_id",
        str(health.unattributed_events),
        "attributed to 'unattributed'" if health.unattributed_events else "ok",
    )
    table.add_row(
        "unpriced events",
        str(health.unpriced_events),
        "add an alias or custom price" if health.unpriced_events else "ok",
    )
    table.add_row("estimated token counts", str(health.estimated_events), "")
    table.add_row("duplicates rejected", str(health.duplicates), "retries counted once")
    console.print(table)
    if health.unpriced_models:
        models = Table(title="Unpriced models")
        models.add_column("model_name")
        models.add_column("events", justify="right")
        for name, count in health.unpriced_models:
            models.add_row(name, str(count))
        console.print(models)
        console.print(
            "Price them with `margindash pricing alias NAME CATALOGUE_MODEL` or "
            "`margindash pricing custom NAME --input … --output …`."
        )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    _engine().dispose()
    console.print("Database schema is up to date.")


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help=f"One of {', '.join(SCOPES)}.")] = "read",
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    org: OrgOption = None,
) -> None:
    """Create an API key (printed once)."""
    engine = _engine()
    target = _org(engine, org)
    try:
        secret = create_api_key(engine, org_id=target.id, scope=scope, name=name)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    console.print(secret)


@fx_app.command("set")
def fx_set(
    currency: Annotated[str, typer.Argument(help="ISO code, e.g. eur.")],
    rate: Annotated[str, typer.Argument(help="Reporting-currency units per one unit.")],
    org: OrgOption = None,
) -> None:
    """Set the FX rate used to convert revenue in CURRENCY."""
    from margindash.ledger.revenue import set_fx_rate

    engine = _engine()
    target = _org(engine, org)
    try:
        value = set_fx_rate(engine, org_id=target.id, currency=currency, rate=rate)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    console.print(f"1 {currency.upper()} = {value} {target.currency.upper()}")


def main() -> None:
    """Entry point of the `margindash` console script."""
    app()
