"""The `margindash` command line."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from margindash.config import Settings, get_settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.money import format_cost
from margindash.orgs.keys import SCOPES, create_api_key
from margindash.orgs.service import Org, OrgExists, create_org, find_org
from margindash.pricing.service import Pricer

app = typer.Typer(
    help="AI margin analytics: per-customer P&L for LLM products.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
pricing_app = typer.Typer(
    help="The price catalogue, aliases and custom prices.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
fx_app = typer.Typer(help="FX rates for non-USD revenue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(pricing_app, name="pricing")
app.add_typer(keys_app, name="keys")
app.add_typer(fx_app, name="fx")

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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Create an org with an admin key and an ingest key (printed once)."""
    engine = _engine()
    try:
        created = create_org(engine, name=org, timezone=timezone)
    except OrgExists as exc:
        raise _fail(f"{exc}; create more keys with `margindash keys create`") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
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
        return
    console.print(f"Created org [bold]{created.org.name}[/bold] ({created.org.id}).")
    console.print(f"  admin key:  [bold]{created.admin_key}[/bold]")
    console.print(f"  ingest key: [bold]{created.ingest_key}[/bold]")
    console.print("These keys are shown once; store them now.")


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

    settings = get_settings()
    configure_logging(settings)
    _engine(settings).dispose()
    uvicorn.run(
        create_app(settings, run_jobs=not no_worker),
        host=host or settings.host,
        port=port or settings.port,
        access_log=access_log,
        log_config=None,
    )


@app.command()
def worker(
    tick: Annotated[float, typer.Option(help="Seconds between checks for due jobs.")] = 15.0,
) -> None:
    """Run the periodic jobs (price sync, budget sweep, monitors) until interrupted."""
    from margindash.jobs.scheduler import JobContext, Scheduler
    from margindash.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)
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
    from margindash.reports.periods import parse_month

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
    else:
        target = existing
        console.print(f"Org [bold]{org}[/bold] already has the demo data.")
    key = create_api_key(engine, org_id=target.id, scope="admin", name="demo key")
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"\nAPI:      {base}/v1   (docs: {base}/docs)")
    console.print(f"API key:  [bold]{key}[/bold]")
    console.print(
        f'Try:      curl -H "Authorization: Bearer {key}" "{base}/v1/pnl?group_by=customer'
        f'&month=YYYY-MM"'
    )
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
        str | None, typer.Option(envvar="MARGINDASH_API_KEY", help="Key for --url.")
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
            if not api_key:
                raise _fail("--url needs an API key (--api-key or MARGINDASH_API_KEY)")
            totals = replay_to_url(
                events, url=url, api_key=api_key, batch_size=batch_size, on_progress=advance
            )
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


@pricing_app.command("list")
def pricing_list(
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    search: Annotated[str | None, typer.Option(help="Substring of the model id or name.")] = None,
    limit: Annotated[int, typer.Option(help="Most rows to show (0: all).")] = 0,
) -> None:
    """List catalogue models with prices per 1M tokens."""
    from margindash.pricing.catalogue import Catalogue
    from margindash.pricing.listing import list_models

    catalogue = Catalogue()
    models = list_models(catalogue, provider=provider, search=search)
    table = Table(title=f"{len(models)} models ({catalogue.source}), USD per 1M tokens")
    for column in ("provider", "model", "input", "cached", "output", "context", "since"):
        table.add_column(column, justify="left" if column in ("provider", "model") else "right")
    for m in models[: limit or None]:
        table.add_row(
            m.provider,
            m.model,
            _per_mtok(m.input_per_mtok, m.tiered),
            _per_mtok(m.cached_input_per_mtok, False),
            _per_mtok(m.output_per_mtok, m.tiered),
            f"{m.context_window:,}" if m.context_window else "",
            m.effective_from.isoformat() if m.effective_from else "",
        )
    console.print(table)


def _per_mtok(value: Any, tiered: bool) -> str:
    if value is None:
        return ""
    return format(value.normalize(), "f") + ("+" if tiered else "")


@pricing_app.command("show")
def pricing_show(
    model_name: Annotated[str, typer.Argument(help="A model name as your app reports it.")],
    provider: Annotated[str | None, typer.Option(help="Provider hint.")] = None,
    at: Annotated[str | None, typer.Option(help="RFC 3339 time (default: now).")] = None,
    org: OrgOption = None,
) -> None:
    """Show how a model name resolves and what it costs per 1M tokens."""
    from margindash.pricing.catalogue import TokenCounts

    engine = _engine()
    target = _org(engine, org)
    when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    pricer = Pricer(engine)
    million_in = pricer.price(
        org_id=target.id,
        model_name=model_name,
        provider=provider,
        tokens=TokenCounts(1_000_000, 0),
        at=when,
    )
    million_out = pricer.price(
        org_id=target.id,
        model_name=model_name,
        provider=provider,
        tokens=TokenCounts(0, 1_000_000),
        at=when,
    )
    if not million_in.priced:
        console.print(f"[yellow]{model_name!r} is unpriced.[/yellow] {million_in.warnings[0]}")
        raise typer.Exit(1)
    console.print(f"{model_name!r} → [bold]{million_in.provider}:{million_in.model}[/bold]")
    console.print(f"  source:  {million_in.price_source} ({million_in.price_ref})")
    console.print(f"  input:   ${format_cost(million_in.cost_nanos)} per 1M tokens")
    console.print(f"  output:  ${format_cost(million_out.cost_nanos)} per 1M tokens")


@pricing_app.command("alias")
def pricing_alias(
    alias: Annotated[str, typer.Argument(help="Your name, e.g. an Azure deployment.")],
    model: Annotated[str, typer.Argument(help="The catalogue model it stands for.")],
    provider: Annotated[str | None, typer.Option(help="Provider of the model.")] = None,
    org: OrgOption = None,
) -> None:
    """Add an alias and price the unpriced events it now covers."""
    from margindash.ledger.repricing import reprice_unpriced
    from margindash.pricing.overrides import add_alias

    engine = _engine()
    target = _org(engine, org)
    try:
        add_alias(engine, org_id=target.id, alias=alias, model=model, provider=provider)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    summary = reprice_unpriced(Pricer(engine), org=target)
    console.print(f"Alias {alias!r} → {model!r} added; {summary.priced} events re-priced.")


@pricing_app.command("custom")
def pricing_custom(
    model: Annotated[str, typer.Argument(help="The model name your app reports.")],
    input_price: Annotated[str, typer.Option("--input", help="USD per 1M input tokens.")],
    output_price: Annotated[str, typer.Option("--output", help="USD per 1M output tokens.")],
    cached_price: Annotated[
        str | None, typer.Option("--cached", help="USD per 1M cached input tokens.")
    ] = None,
    effective_from: Annotated[str, typer.Option(help="YYYY-MM-DD")] = "1970-01-01",
    org: OrgOption = None,
) -> None:
    """Price a model yourself (self-hosted or negotiated) and re-price its unpriced events."""
    from margindash.ledger.repricing import reprice_unpriced
    from margindash.pricing.overrides import add_override

    engine = _engine()
    target = _org(engine, org)
    try:
        add_override(
            engine,
            org_id=target.id,
            model=model,
            provider=None,
            input_per_mtok=input_price,
            output_per_mtok=output_price,
            cached_input_per_mtok=cached_price,
            effective_from=date.fromisoformat(effective_from),
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    summary = reprice_unpriced(Pricer(engine), org=target)
    console.print(f"Custom price for {model!r} added; {summary.priced} events re-priced.")


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
