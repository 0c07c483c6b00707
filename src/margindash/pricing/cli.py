"""`margindash pricing …`: the catalogue and its sync, an org's aliases and overrides,
re-pricing and the audit."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from margindash.config import get_settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.ledger.repricing import (
    RepriceScope,
    RepriceSummary,
    changed_lines,
    list_repricings,
    reprice_events,
    reprice_unpriced,
)
from margindash.money import format_cost, parse_decimal
from margindash.orgs.service import Org, find_org
from margindash.pricing.audit import DEFAULT_THRESHOLD_PCT, audit_catalogue
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.listing import current_catalogue, list_models
from margindash.pricing.overrides import (
    ALWAYS,
    add_alias,
    add_override,
    delete_alias,
    delete_override,
    list_aliases,
    list_overrides,
)
from margindash.pricing.rows import ModelChange, decimal_text
from margindash.pricing.service import Pricer
from margindash.pricing.snapshots import (
    SnapshotNotFound,
    approve_snapshot,
    current_snapshot,
    ensure_seeded,
    get_snapshot_info,
    list_snapshots,
    snapshot_changes,
)
from margindash.pricing.status import pricing_status, recent_runs
from margindash.pricing.sync import SyncResult, sync_prices

pricing_app = typer.Typer(
    help="The price catalogue and its daily sync, aliases, custom prices, discounts, "
    "re-pricing and the audit.",
    no_args_is_help=True,
)
aliases_app = typer.Typer(help="An org's model aliases (list; `delete ID`).")
overrides_app = typer.Typer(help="An org's custom prices and discounts (list; `delete ID`).")
pricing_app.add_typer(aliases_app, name="aliases")
pricing_app.add_typer(overrides_app, name="overrides")

console = Console()
err = Console(stderr=True)
_SHOWN_CHANGES = 30

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Org name or id (default: the first org).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
FromOption = Annotated[
    str, typer.Option("--effective-from", help="YYYY-MM-DD (default: for every event).")
]


def _engine() -> Engine:
    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    return engine


def _open(org_name: str | None) -> tuple[Engine, Org]:
    engine = _engine()
    org = find_org(engine, org_name)
    if org is None:
        err.print("[red]No such org.[/red] Create one with `margindash init --org NAME`.")
        raise typer.Exit(1)
    return engine, org


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option}: expected YYYY-MM-DD, got {value!r}") from None


def _print_json(body: Any) -> None:
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


def _price(value: Decimal | None, suffix: str = "") -> str:
    return "" if value is None else decimal_text(value) + suffix


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _actor(by: str | None) -> str:
    return by or f"cli:{getpass.getuser()}"


# --- the catalogue ------------------------------------------------------------------------------


@pricing_app.command("list")
def pricing_list(
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    search: Annotated[str | None, typer.Option(help="Substring of the model id or name.")] = None,
    limit: Annotated[int, typer.Option(help="Most rows to show (0: all).")] = 0,
    deprecated: Annotated[bool, typer.Option(help="Include deprecated models.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the catalogue in force: prices per 1M tokens and when each was last checked."""
    from margindash.api.routers.pricing import model_json

    engine = _engine()
    ensure_seeded(engine)
    catalogue = current_catalogue(engine)
    models = list_models(catalogue, provider=provider, search=search, include_deprecated=deprecated)
    shown = models[: limit or None]
    if as_json:
        _print_json(
            {"count": len(models), "models": [model_json(m, catalogue.source) for m in shown]}
        )
        return
    table = Table(title=f"{len(models)} models ({catalogue.source}), USD per 1M tokens")
    for column in ("provider", "model", "input", "cached", "output", "context", "since", "checked"):
        table.add_column(column, justify="left" if column in ("provider", "model") else "right")
    for m in shown:
        table.add_row(
            m.provider,
            m.model,
            _price(m.input_per_mtok, "+" if m.tiered else ""),
            _price(m.cached_input_per_mtok),
            _price(m.output_per_mtok, "+" if m.tiered else ""),
            f"{m.context_window:,}" if m.context_window else "",
            m.effective_from.isoformat() if m.effective_from else "",
            m.checked_at.strftime("%Y-%m-%d") if m.checked_at else "",
        )
    console.print(table)
    console.print("[dim]+: tiered, the price up to the first tier is shown.[/dim]")


@pricing_app.command("show")
def pricing_show(
    model_name: Annotated[str, typer.Argument(help="A model name as your app reports it.")],
    provider: Annotated[str | None, typer.Option(help="Provider hint.")] = None,
    at: Annotated[str | None, typer.Option(help="RFC 3339 time (default: now).")] = None,
    org: OrgOption = None,
) -> None:
    """Show how a model name resolves and what it costs per 1M tokens (at a time)."""
    engine, target = _open(org)
    try:
        when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    except ValueError:
        raise _fail(f"--at: expected an RFC 3339 time, got {at!r}") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    pricer = Pricer(engine)

    def per_million(tokens: TokenCounts) -> Any:
        return pricer.price(
            org_id=target.id, model_name=model_name, provider=provider, tokens=tokens, at=when
        )

    million_in, million_out = (
        per_million(TokenCounts(1_000_000, 0)),
        per_million(TokenCounts(0, 1_000_000)),
    )
    if not million_in.priced:
        console.print(f"[yellow]{model_name!r} is unpriced.[/yellow] {million_in.warnings[0]}")
        raise typer.Exit(1)
    console.print(f"{model_name!r} → [bold]{million_in.provider}:{million_in.model}[/bold]")
    console.print(f"  source:  {million_in.price_source} ({million_in.price_ref})")
    console.print(f"  input:   ${format_cost(million_in.cost_nanos)} per 1M tokens")
    console.print(f"  output:  ${format_cost(million_out.cost_nanos)} per 1M tokens")


# --- sync ---------------------------------------------------------------------------------------


def _change_text(change: ModelChange, at: datetime) -> str:
    if change.change != "repriced":
        return ""
    fields = change.field_changes(at)
    if not fields:
        return "dated or tiered prices changed"
    return ", ".join(
        f"{name.removesuffix('_per_mtok')} {_price(old) or '-'} → {_price(new) or '-'}"
        for name, old, new in fields
    )


def _print_changes(changes: list[ModelChange] | tuple[ModelChange, ...], at: datetime) -> None:
    if not changes:
        return
    table = Table(title=f"{len(changes)} models changed (USD per 1M tokens)")
    for column in ("change", "provider", "model", "prices"):
        table.add_column(column)
    order = {"repriced": 0, "added": 1, "removed": 2}
    ranked = sorted(changes, key=lambda c: (order[c.change], c.provider, c.model))
    for change in ranked[:_SHOWN_CHANGES]:
        table.add_row(change.change, change.provider, change.model, _change_text(change, at))
    console.print(table)
    if len(changes) > _SHOWN_CHANGES:
        console.print(f"… and {len(changes) - _SHOWN_CHANGES} more (`margindash pricing diff`).")


def _print_sync(result: SyncResult) -> None:
    colour = {"success": "green", "unchanged": "green", "held": "yellow"}.get(result.status, "red")
    console.print(
        f"Price sync [{colour}]{result.status}[/{colour}] in {result.seconds:.2f} s "
        f"(run {result.run_id}"
        + (f", snapshot {result.snapshot_id}" if result.snapshot_id else "")
        + (f", {result.model_count:,} models" if result.model_count else "")
        + ")."
    )
    if result.changes:
        console.print(
            f"  added {result.count('added')}, removed {result.count('removed')}, "
            f"re-priced {result.count('repriced')}"
        )
    if result.error:
        console.print(f"  {result.error}")
    if result.status == "held":
        console.print(
            f"  Review with `margindash pricing diff {result.snapshot_id}`, then "
            f"`margindash pricing approve {result.snapshot_id}`."
        )
    _print_changes(result.changes, datetime.now(UTC))


@pricing_app.command("sync")
def pricing_sync(
    source: Annotated[
        str | None,
        typer.Option(
            help="URL or file to sync from, or `bundled` for the installed genai-prices' data "
            "(default: MARGINDASH_PRICING_URL)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch the catalogue now; store it if it changed (exit 1 when failed or held)."""
    from margindash.api.routers.pricing import sync_json

    settings = get_settings()
    result = sync_prices(
        _engine(),
        source=source or settings.pricing_url,
        triggered_by="cli",
        max_jump=settings.pricing_max_jump,
        timeout=settings.pricing_fetch_timeout_seconds,
    )
    if as_json:
        _print_json(sync_json(result))
    else:
        _print_sync(result)
    if result.status in ("failed", "held"):
        raise typer.Exit(1)


@pricing_app.command("status")
def pricing_status_command(
    runs: Annotated[int, typer.Option(help="Recent runs to list.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Last successful sync, 7-day success rate, staleness, and recent runs."""
    from margindash.api.routers.pricing import run_json, status_json

    engine = _engine()
    ensure_seeded(engine)
    status = pricing_status(engine)
    recent = recent_runs(engine, limit=runs)
    if as_json:
        _print_json({**status_json(status), "runs": [run_json(r) for r in recent]})
        return
    snapshot = status.snapshot
    if snapshot is not None:
        console.print(
            f"Catalogue in force: snapshot {snapshot.id} ({snapshot.source}), "
            f"{snapshot.model_count:,} models, checked {_when(snapshot.checked_at)} UTC."
        )
    last = _when(status.last_success_at) or "never"
    state = "[red]stale[/red]" if status.stale else "[green]fresh[/green]"
    rate = "n/a" if status.success_rate_7d is None else f"{status.success_rate_7d}%"
    console.print(f"Last successful sync: {last} UTC ({state}).")
    console.print(f"7-day success rate: {rate} of {status.runs_7d} runs.")
    if status.held is not None:
        console.print(
            f"[yellow]Snapshot {status.held.id} is held for review:[/yellow] "
            f"{status.held.review_reasons}"
        )
    _print_runs(recent)


def _print_runs(runs: list[Any]) -> None:
    if not runs:
        console.print("No sync has run yet: `margindash pricing sync`.")
        return
    table = Table(title="Recent sync runs")
    for column in ("id", "started (UTC)", "status", "by", "snapshot", "changes", "error"):
        table.add_column(column)
    for run in runs:
        changes = (
            f"+{run.models_added} -{run.models_removed} ~{run.models_repriced}"
            if run.models_added is not None
            else ""
        )
        table.add_row(
            str(run.id),
            _when(run.started_at),
            run.status,
            run.triggered_by,
            str(run.snapshot_id or ""),
            changes,
            (run.error or "")[:80],
        )
    console.print(table)


@pricing_app.command("snapshots")
def pricing_snapshots(
    limit: Annotated[int, typer.Option(help="Most snapshots to list.")] = 20,
) -> None:
    """List catalogue snapshots, newest first."""
    engine = _engine()
    ensure_seeded(engine)
    table = Table(title="Catalogue snapshots")
    for column in ("id", "status", "in force from", "fetched", "checked", "models", "source"):
        table.add_column(column)
    for s in list_snapshots(engine, limit=limit):
        table.add_row(
            str(s.id),
            s.status,
            _when(s.effective_from) or ("always" if s.status == "accepted" else ""),
            _when(s.fetched_at),
            _when(s.checked_at),
            f"{s.model_count:,}",
            s.source[:60],
        )
    console.print(table)


@pricing_app.command("diff")
def pricing_diff(
    snapshot_id: Annotated[
        int | None, typer.Argument(help="Snapshot id (default: the one in force).")
    ] = None,
) -> None:
    """What a snapshot changed against the catalogue in force before it."""
    engine = _engine()
    try:
        with engine.connect() as conn:
            found = (
                get_snapshot_info(conn, snapshot_id)
                if snapshot_id is not None
                else current_snapshot(conn)
            )
        if found is None:
            raise _fail("No snapshot stored yet: `margindash pricing sync`.")
        changes = snapshot_changes(engine, found.id)
    except SnapshotNotFound as exc:
        raise _fail(str(exc)) from None
    console.print(f"Snapshot {found.id} ({found.status}), fetched {_when(found.fetched_at)} UTC.")
    if found.review_reasons:
        console.print(f"[yellow]Held because:[/yellow] {found.review_reasons}")
    if not changes:
        console.print("No price changes.")
    _print_changes(changes, found.fetched_at)


@pricing_app.command("approve")
def pricing_approve(
    snapshot_id: Annotated[int, typer.Argument(help="The held snapshot.")],
    effective_from: Annotated[
        str | None,
        typer.Option(help="YYYY-MM-DD it takes effect (default: now; never before the current)."),
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who approves (default: your user name).")] = None,
) -> None:
    """Put a snapshot held for review in force (events already priced keep their cost)."""
    engine = _engine()
    day = _date(effective_from, "--effective-from")
    when = datetime.combine(day, datetime.min.time(), UTC) if day else None
    try:
        approved = approve_snapshot(
            engine, snapshot_id=snapshot_id, reviewed_by=_actor(by), effective_from=when
        )
    except SnapshotNotFound as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"Snapshot {approved.id} is in force from {_when(approved.effective_from)} UTC. "
        "Re-price earlier events with `margindash pricing reprice` if they should change."
    )


# --- an org's aliases and overrides -------------------------------------------------------------


@pricing_app.command("alias")
def pricing_alias(
    alias: Annotated[str, typer.Argument(help="Your name, e.g. an Azure deployment.")],
    model: Annotated[str, typer.Argument(help="The catalogue model it stands for.")],
    provider: Annotated[str | None, typer.Option(help="Provider of the model.")] = None,
    effective_from: FromOption = ALWAYS.isoformat(),
    org: OrgOption = None,
) -> None:
    """Add an alias and price the unpriced events it now covers."""
    engine, target = _open(org)
    pricer = Pricer(engine)
    try:
        added = add_alias(
            engine,
            org_id=target.id,
            alias=alias,
            model=model,
            provider=provider,
            effective_from=_date(effective_from, "--effective-from") or ALWAYS,
            catalogue=pricer.history,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    summary = reprice_unpriced(
        pricer, org=target, actor=_actor(None), reason=f"alias {added.alias} → {added.model} added"
    )
    console.print(f"Alias {alias!r} → {model!r} added; {summary.priced} events re-priced.")


@aliases_app.callback(invoke_without_command=True)
def aliases_list(ctx: typer.Context, org: OrgOption = None) -> None:
    """List the org's aliases."""
    if ctx.invoked_subcommand is not None:
        return
    engine, target = _open(org)
    table = Table(title=f"Aliases of {target.name}")
    for column in ("id", "alias", "model", "provider", "from"):
        table.add_column(column)
    for a in list_aliases(engine, org_id=target.id):
        table.add_row(
            str(a.id),
            a.alias,
            a.model,
            a.provider or "",
            "" if a.effective_from == ALWAYS else a.effective_from.isoformat(),
        )
    console.print(table)


@aliases_app.command("delete")
def aliases_delete(
    alias_id: Annotated[int, typer.Argument(help="The alias id (see `pricing aliases`).")],
    org: OrgOption = None,
) -> None:
    """Remove an alias (events it priced keep their cost)."""
    engine, target = _open(org)
    if not delete_alias(engine, org_id=target.id, alias_id=alias_id):
        raise _fail(f"no alias {alias_id} in {target.name}")
    console.print(f"Alias {alias_id} removed.")


def _decimal_option(value: str, option: str) -> str:
    try:
        parse_decimal(value)
    except InvalidOperation:
        raise _fail(f"{option}: not a number: {value!r}") from None
    return value


@pricing_app.command("custom")
def pricing_custom(
    model: Annotated[str, typer.Argument(help="The model name your app reports.")],
    input_price: Annotated[str, typer.Option("--input", help="USD per 1M input tokens.")],
    output_price: Annotated[str, typer.Option("--output", help="USD per 1M output tokens.")],
    cached_price: Annotated[
        str | None, typer.Option("--cached", help="USD per 1M cached input tokens.")
    ] = None,
    cache_write_price: Annotated[
        str | None, typer.Option("--cache-write", help="USD per 1M cache write tokens.")
    ] = None,
    effective_from: FromOption = ALWAYS.isoformat(),
    effective_to: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD, the last day (default: open-ended).")
    ] = None,
    org: OrgOption = None,
) -> None:
    """Price a model yourself (self-hosted or negotiated) and re-price its unpriced events."""
    engine, target = _open(org)
    try:
        override_id = add_override(
            engine,
            org_id=target.id,
            model=model,
            provider=None,
            input_per_mtok=input_price,
            output_per_mtok=output_price,
            cached_input_per_mtok=cached_price,
            cache_write_per_mtok=cache_write_price,
            effective_from=_date(effective_from, "--effective-from") or ALWAYS,
            effective_to=_date(effective_to, "--effective-to"),
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    summary = reprice_unpriced(
        Pricer(engine),
        org=target,
        actor=_actor(None),
        reason=f"custom price {override_id} for {model} added",
    )
    console.print(f"Custom price for {model!r} added; {summary.priced} events re-priced.")


@pricing_app.command("discount")
def pricing_discount(
    percent: Annotated[str, typer.Argument(help="Percent off the catalogue price, e.g. 10.")],
    provider: Annotated[str | None, typer.Option(help="Every model of this provider.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this catalogue model.")] = None,
    effective_from: FromOption = ALWAYS.isoformat(),
    effective_to: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD, the last day (default: open-ended).")
    ] = None,
    org: OrgOption = None,
) -> None:
    """Add a negotiated discount on a provider or a model (applies to events priced from now;
    re-price earlier ones with `margindash pricing reprice`)."""
    engine, target = _open(org)
    try:
        override_id = add_override(
            engine,
            org_id=target.id,
            model=model,
            provider=provider,
            discount_pct=_decimal_option(percent, "PERCENT"),
            effective_from=_date(effective_from, "--effective-from") or ALWAYS,
            effective_to=_date(effective_to, "--effective-to"),
            catalogue=Pricer(engine).history,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    scope = " ".join(part for part in (provider, model) if part)
    console.print(f"Discount {override_id}: {percent}% off {scope} added.")


@overrides_app.callback(invoke_without_command=True)
def overrides_list(
    ctx: typer.Context,
    deleted: Annotated[bool, typer.Option("--all", help="Include deleted overrides.")] = False,
    org: OrgOption = None,
) -> None:
    """List the org's custom prices and discounts."""
    if ctx.invoked_subcommand is not None:
        return
    engine, target = _open(org)
    table = Table(title=f"Custom prices and discounts of {target.name} (USD per 1M tokens)")
    for column in (
        "id",
        "kind",
        "model",
        "provider",
        "input",
        "output",
        "cached",
        "off",
        "from",
        "to",
    ):
        table.add_column(column)
    for o in list_overrides(engine, org_id=target.id, include_deleted=deleted):
        table.add_row(
            str(o.id) + (" (deleted)" if o.deleted_at else ""),
            o.kind,
            o.model or "",
            o.provider or "",
            _price(o.input_per_mtok),
            _price(o.output_per_mtok),
            _price(o.cached_input_per_mtok),
            _price(o.discount_pct, "%"),
            "" if o.effective_from == ALWAYS else o.effective_from.isoformat(),
            o.effective_to.isoformat() if o.effective_to else "",
        )
    console.print(table)


@overrides_app.command("delete")
def overrides_delete(
    override_id: Annotated[int, typer.Argument(help="The override id (see `pricing overrides`).")],
    org: OrgOption = None,
) -> None:
    """Stop using a custom price or discount (events it priced keep their cost)."""
    engine, target = _open(org)
    if not delete_override(engine, org_id=target.id, override_id=override_id):
        raise _fail(f"no override {override_id} in {target.name}")
    console.print(f"Override {override_id} deleted.")


# --- re-pricing and audit -----------------------------------------------------------------------


def _print_preview(summary: RepriceSummary, *, title: str) -> None:
    table = Table(title=title)
    for column in ("customer", "model", "events", "changed", "cost before", "cost after", "change"):
        table.add_column(column, justify="left" if column in ("customer", "model") else "right")
    for (customer, before, after), line in changed_lines(summary):
        table.add_row(
            customer,
            before if before == after else f"{before} → {after}",
            f"{line.events:,}",
            f"{line.changed:,}",
            f"${format_cost(line.cost_before)}",
            f"${format_cost(line.cost_after)}",
            f"${format_cost(line.cost_after - line.cost_before)}",
        )
    console.print(table)
    console.print(
        f"{summary.examined:,} events examined, {summary.changed:,} change "
        f"({summary.priced:,} were unpriced); cost ${format_cost(summary.cost_before)} → "
        f"${format_cost(summary.cost_after)}."
    )
    if summary.kept:
        console.print(
            f"[yellow]{summary.kept:,} priced events have no price now: they keep their "
            "cost.[/yellow]"
        )


@pricing_app.command("reprice")
def pricing_reprice(
    date_from: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (org time).")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")],
    model: Annotated[
        str | None, typer.Option(help="Only events of this model (as stored or as sent).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the change; write nothing.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded with the re-pricing).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    by: Annotated[str | None, typer.Option(help="Who re-prices (default: your user name).")] = None,
    org: OrgOption = None,
) -> None:
    """Price stored events again at their own time; shows the change per customer and model
    before writing."""
    engine, target = _open(org)
    try:
        scope = RepriceScope(
            date_from=_date(date_from, "--from"), date_to=_date(date_to, "--to"), model=model
        )
    except ValueError as exc:
        raise _fail(f"--{exc}") from None
    pricer = Pricer(engine)
    common: dict[str, Any] = {"org": target, "scope": scope, "actor": _actor(by)}
    preview = reprice_events(pricer, **common, reason=reason or "preview", dry_run=True)
    _print_preview(preview, title=f"Re-pricing {date_from} to {date_to} of {target.name}")
    if dry_run or not preview.changed:
        console.print("Dry run: nothing written." if dry_run else "Nothing to re-price.")
        return
    if not yes and not typer.confirm("Write these changes?"):
        raise typer.Exit(1)
    done = reprice_events(pricer, **common, reason=reason or "manual re-pricing")
    console.print(
        f"Re-pricing {done.run_id} done: {done.changed:,} events changed, cost "
        f"${format_cost(done.cost_before)} → ${format_cost(done.cost_after)}."
    )


@pricing_app.command("repricings")
def pricing_repricings(
    limit: Annotated[int, typer.Option(help="Most re-pricings to list.")] = 20,
    org: OrgOption = None,
) -> None:
    """The org's recorded re-pricings: who, when, why, and what changed."""
    engine, target = _open(org)
    table = Table(title=f"Re-pricings of {target.name}")
    for column in ("id", "started (UTC)", "by", "reason", "range", "changed", "before", "after"):
        table.add_column(column)
    for run in list_repricings(engine, org=target, limit=limit):
        span = (
            "unpriced events"
            if run.scope == "unpriced"
            else f"{run.date_from} … {run.date_to}" + (f" {run.model}" if run.model else "")
        )
        table.add_row(
            str(run.id),
            _when(run.started_at) + ("" if run.finished_at else " (interrupted)"),
            run.actor,
            run.reason[:50],
            span,
            f"{run.changed_events:,}",
            f"${format_cost(run.cost_before_nanos)}",
            f"${format_cost(run.cost_after_nanos)}",
        )
    console.print(table)


@pricing_app.command("audit")
def pricing_audit(
    threshold: Annotated[str, typer.Option(help="Percent difference worth listing.")] = str(
        DEFAULT_THRESHOLD_PCT
    ),
    limit: Annotated[int, typer.Option(help="Most rows to show (0: all).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Compare the catalogue with a second source (LiteLLM) and list prices > threshold apart."""
    from margindash.api.routers.pricing import audit_json

    engine = _engine()
    ensure_seeded(engine)
    report = audit_catalogue(
        current_catalogue(engine), threshold_pct=Decimal(_decimal_option(threshold, "--threshold"))
    )
    if as_json:
        _print_json(audit_json(report))
        return
    table = Table(
        title=f"{len(report.differences)} prices differ by more than {threshold}% from "
        f"{report.reference} (USD per 1M tokens)"
    )
    for column in (
        "provider",
        "model",
        "price",
        "catalogue",
        "reference",
        "diff",
        "reference name",
    ):
        table.add_column(
            column, justify="right" if column in ("catalogue", "reference", "diff") else "left"
        )
    for d in report.differences[: limit or None]:
        table.add_row(
            d.provider,
            d.model,
            d.field.removesuffix("_per_mtok"),
            _price(d.catalogue),
            _price(d.reference),
            "n/a" if d.difference_pct is None else f"{d.difference_pct}%",
            f"{d.reference_key} ({d.match})",
        )
    console.print(table)
    console.print(
        f"Compared {report.compared_prices:,} prices of {report.compared_models:,} models. "
        "`rule` matches map a reference name by a prefix rule: check those first."
    )
