"""`margindash budgets`, `margindash alerts` and `margindash monitors`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from margindash.budgets.alerts import deliver_due, list_alerts
from margindash.budgets.evaluator import evaluate_budgets
from margindash.budgets.monitors import KINDS, InvalidMonitor, configure_monitor, monitor_configs
from margindash.budgets.notifiers import AlertMessage, DeliveryFailed, EmailNotifier, notifiers_from
from margindash.budgets.service import (
    BudgetExists,
    apply_budgets,
    create_budget,
    delete_budget,
    find_budget,
    list_budgets,
)
from margindash.budgets.spec import BudgetSpec, InvalidBudget, parse_budget, threshold_number
from margindash.budgets.status import budget_statuses
from margindash.config import get_settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.ledger.events import FieldError
from margindash.money import format_money
from margindash.orgs.service import Org, find_org
from margindash.pricing.service import Pricer

budgets_app = typer.Typer(
    help="Budgets: limits per org, feature, customer or model.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alerts fired by budgets and monitors.", no_args_is_help=True)
monitors_app = typer.Typer(
    help="Monitors: spikes, growth, sync failures, margins.", no_args_is_help=True
)

console = Console()
err = Console(stderr=True)

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Org name or id (default: the first org).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _open(org_name: str | None) -> tuple[Engine, Org]:
    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    org = find_org(engine, org_name)
    if org is None:
        err.print("[red]No such org.[/red] Create one with `margindash init --org NAME`.")
        raise typer.Exit(1)
    return engine, org


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def _print_json(body: Any) -> None:
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


def _problems(errors: list[FieldError]) -> str:
    return "; ".join(f"{e.field}: {e.message}" for e in errors)


@budgets_app.command("create")
def budgets_create(
    limit: Annotated[str, typer.Option("--limit", help="Limit in USD per period, e.g. 600.00.")],
    name: Annotated[str | None, typer.Option(help="Name (default: from the scope).")] = None,
    feature: Annotated[str | None, typer.Option(help="Only this feature.")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer_id.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    period: Annotated[str, typer.Option(help="month, week or day.")] = "month",
    threshold: Annotated[
        list[float] | None, typer.Option(help="Alert at this % of the limit (repeat; 75 and 90).")
    ] = None,
    action: Annotated[str, typer.Option(help="warn, or block calls once exhausted.")] = "warn",
    email: Annotated[list[str] | None, typer.Option(help="Send alerts here (repeat).")] = None,
    webhook: Annotated[str | None, typer.Option(help="Slack-compatible webhook URL.")] = None,
    org: OrgOption = None,
) -> None:
    """Create a budget. Without --feature/--customer/--model it covers the whole org."""
    raw: dict[str, Any] = {
        "scope": _scope_option(customer=customer, feature=feature, model=model),
        "period": period,
        "limit_usd": limit,
        "action": action,
        "notify": {"emails": email or [], "webhook_url": webhook},
    }
    if name is not None:
        raw["name"] = name
    if threshold:
        raw["thresholds"] = [Decimal(str(t)) for t in threshold]
    try:
        spec = parse_budget(raw)
    except InvalidBudget as exc:
        raise _fail(_problems(exc.errors)) from None
    engine, target = _open(org)
    try:
        budget = create_budget(engine, org_id=target.id, spec=spec, pricer=Pricer(engine))
    except BudgetExists as exc:
        raise _fail(str(exc)) from None
    console.print(f"Created budget [bold]{spec.name}[/bold] ({budget.id}).")
    _evaluate_now(engine, target)


def _scope_option(*, customer: str | None, feature: str | None, model: str | None) -> Any:
    if customer is not None and feature is not None:
        return {"type": "customer_feature", "customer_id": customer, "feature": feature}
    given = [(k, v) for k, v in (("customer", customer), ("feature", feature), ("model", model))]
    chosen = [(k, v) for k, v in given if v is not None]
    if len(chosen) > 1:
        raise _fail("--model cannot be combined with --customer or --feature")
    return {"type": chosen[0][0], "value": chosen[0][1]} if chosen else {"type": "org"}


@budgets_app.command("list")
def budgets_list(org: OrgOption = None, as_json: JsonOption = False) -> None:
    """List budgets with spend, used %, projection and state for the current period."""
    from margindash.api.routers.budgets import budget_json

    engine, target = _open(org)
    statuses = budget_statuses(
        engine,
        org=target,
        budgets=list_budgets(engine, org_id=target.id),
        now=datetime.now(UTC),
    )
    rows = [budget_json(s) for s in statuses]
    if as_json:
        _print_json({"count": len(rows), "budgets": rows})
        return
    table = Table(title=f"Budgets of {target.name}")
    for column in ("name", "scope", "period", "limit", "spent", "used", "projected", "state", "id"):
        table.add_column(
            column, justify="right" if column in ("limit", "spent", "used") else "left"
        )
    for row in rows:
        scope = row["scope"]["type"] + (
            f" {row['scope']['value']}" if row["scope"]["value"] else ""
        )
        style = {"critical": "yellow", "exceeded": "red", "blocked": "red"}.get(row["state"])
        table.add_row(
            row["name"],
            scope,
            row["period"],
            f"${row['limit_usd']}",
            f"${row['spent_usd']}",
            f"{row['used_pct']}%",
            f"${row['projected_usd']}" if row["projected_usd"] else "",
            row["state"],
            row["id"],
            style=style,
        )
    console.print(table)


@budgets_app.command("delete")
def budgets_delete(
    budget: Annotated[str, typer.Argument(help="Budget id or name.")], org: OrgOption = None
) -> None:
    """Delete a budget (its alert history stays)."""
    engine, target = _open(org)
    found = find_budget(engine, org_id=target.id, id_or_name=budget)
    if found is None or not delete_budget(engine, org_id=target.id, budget_id=found.id):
        raise _fail(f"no budget {budget!r}", 1)
    console.print(f"Deleted budget [bold]{found.spec.name}[/bold] ({found.id}).")


@budgets_app.command("apply")
def budgets_apply(
    file: Annotated[Path, typer.Argument(help="YAML: `budget:` (the brief's) or `budgets:`.")],
    prune: Annotated[
        bool, typer.Option(help="Also delete the org's budgets the file does not name.")
    ] = False,
    org: OrgOption = None,
) -> None:
    """Create or update budgets from a YAML file, by name; nothing changes if any is invalid."""
    try:
        specs = read_budget_file(file)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    engine, target = _open(org)
    try:
        summary = apply_budgets(
            engine, org_id=target.id, specs=specs, pricer=Pricer(engine), prune=prune
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    for label, names in (
        ("created", summary.created),
        ("updated", summary.updated),
        ("unchanged", summary.unchanged),
        ("deleted", summary.deleted),
    ):
        if names:
            console.print(f"{label}: {', '.join(names)}")
    _evaluate_now(engine, target)


def _evaluate_now(engine: Engine, org: Org) -> None:
    # Right away rather than at the worker's next sweep: a block budget that is already
    # exhausted blocks now, and thresholds already passed are reported now.
    settings = get_settings()
    fired = evaluate_budgets(
        engine,
        org=org,
        budgets=list_budgets(engine, org_id=org.id),
        settings=settings,
        notifiers=notifiers_from(settings),
    ).new_alerts
    if fired:
        console.print(f"{len(fired)} alert(s) fired; see `margindash alerts list`.")


def read_budget_file(path: Path) -> list[BudgetSpec]:
    """The budgets of a YAML file: one (`budget:` or flat), a list, or `budgets: [...]`."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(loaded, dict) and set(loaded) == {"budgets"}:
        items, prefix = loaded["budgets"], "budgets."
    elif isinstance(loaded, list):
        items, prefix = loaded, ""
    else:
        items, prefix = [loaded], None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: no budgets found")
    specs, errors = [], []
    for index, item in enumerate(items):
        try:
            specs.append(parse_budget(item))
        except InvalidBudget as exc:
            where = "" if prefix is None else f"{prefix}{index}."
            errors += [FieldError(where + e.field, e.message) for e in exc.errors]
    if errors:
        raise ValueError(f"{path}: {_problems(errors)}")
    return specs


@alerts_app.command("list")
def alerts_list(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most alerts to show.")] = 20,
    org: OrgOption = None,
    as_json: JsonOption = False,
) -> None:
    """List fired alerts, newest first, with their delivery status."""
    from margindash.api.routers.alerts import alert_json

    engine, target = _open(org)
    found = list_alerts(engine, org_id=target.id, limit=limit)
    if as_json:
        _print_json({"count": len(found), "alerts": [alert_json(a) for a in found]})
        return
    table = Table(title=f"Alerts of {target.name}")
    for column in ("id", "when (UTC)", "kind", "severity", "subject", "status", "error"):
        table.add_column(column)
    for alert in found:
        errors = [d.last_error for d in alert.deliveries if d.last_error]
        table.add_row(
            str(alert.id),
            f"{alert.created_at:%Y-%m-%d %H:%M}",
            alert.kind,
            alert.severity,
            alert.subject.removeprefix("[margindash] "),
            alert.status,
            errors[0] if errors else "",
            style="red" if alert.status == "failed" else None,
        )
    console.print(table)


@alerts_app.command("test-email")
def alerts_test_email(
    address: Annotated[str, typer.Argument(help="Where to send the test e-mail.")],
) -> None:
    """Send a test e-mail with the SMTP settings, to prove alerts can reach you."""
    settings = get_settings()
    notifier = EmailNotifier.from_settings(settings)
    message = AlertMessage(
        kind="test",
        severity="info",
        subject="[margindash] Test e-mail: alert delivery works",
        body=(
            "This is a test e-mail from margindash. Budget alerts and monitor alerts will "
            f"reach you the same way.\n\nSent through {settings.smtp_host}:{settings.smtp_port} "
            f"as {settings.alert_from}.\nDashboard: {settings.dashboard_url}/budgets\n"
        ),
    )
    try:
        notifier.send(message, target=address)
    except DeliveryFailed as exc:
        raise _fail(f"Could not send: {exc}", 1) from None
    console.print(f"Sent a test e-mail to {address} via {settings.smtp_host}:{settings.smtp_port}.")


@alerts_app.command("retry")
def alerts_retry() -> None:
    """Retry now every failed alert delivery that is due."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    attempted = deliver_due(engine, notifiers=notifiers_from(settings), settings=settings)
    console.print(f"Retried {attempted} deliveries.")


@monitors_app.command("list")
def monitors_list(org: OrgOption = None, as_json: JsonOption = False) -> None:
    """List the monitors with their settings."""
    from margindash.api.routers.alerts import monitor_json

    engine, target = _open(org)
    rows = [monitor_json(c) for c in monitor_configs(engine, org_id=target.id)]
    if as_json:
        _print_json({"monitors": rows})
        return
    table = Table(title=f"Monitors of {target.name}")
    for column in ("kind", "on", "threshold", "min volume", "lookback", "notify", "watches"):
        table.add_column(column)
    for row in rows:
        notify = [*row["notify"]["emails"], *filter(None, [row["notify"]["webhook_url"]])]
        table.add_row(
            row["kind"],
            "yes" if row["enabled"] else "no",
            f"{row['threshold']} ({row['threshold_means']})",
            f"${row['min_volume_usd']}",
            str(row["lookback"]),
            ", ".join(notify) or "(nobody: set --email or --webhook)",
            row["watches"],
        )
    console.print(table)


@monitors_app.command("set")
def monitors_set(
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(KINDS)}, or all.")],
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn the monitor on or off.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="See `monitors list`.")] = None,
    min_volume: Annotated[
        str | None, typer.Option(help="Minimum USD volume before it alerts.")
    ] = None,
    lookback: Annotated[int | None, typer.Option(help="Weeks of history (spikes).")] = None,
    email: Annotated[list[str] | None, typer.Option(help="Send alerts here (repeat).")] = None,
    webhook: Annotated[str | None, typer.Option(help="Slack-compatible webhook URL.")] = None,
    org: OrgOption = None,
) -> None:
    """Change a monitor's settings (or every monitor's, with `all`)."""
    kinds = list(KINDS) if kind == "all" else [kind]
    if any(k not in KINDS for k in kinds):
        raise _fail(f"unknown monitor {kind!r}; one of {', '.join(KINDS)} or all")
    changes: dict[str, Any] = {}
    if enabled is not None:
        changes["enabled"] = enabled
    if threshold is not None:
        changes["threshold"] = Decimal(str(threshold))
    if min_volume is not None:
        changes["min_volume_usd"] = min_volume
    if lookback is not None:
        changes["lookback"] = lookback
    if email is not None or webhook is not None:
        changes["notify"] = {"emails": email or [], "webhook_url": webhook}
    engine, target = _open(org)
    for name in kinds:
        try:
            config = configure_monitor(engine, org_id=target.id, kind=name, changes=changes)
        except InvalidMonitor as exc:
            raise _fail(_problems(exc.errors)) from None
        console.print(
            f"{name}: {'on' if config.enabled else 'off'}, threshold "
            f"{threshold_number(config.threshold)}, min volume "
            f"${format_money(config.min_volume_nanos)}"
        )
