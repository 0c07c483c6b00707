"""`margindash verify` and `margindash reconcile`: launch acceptance on the command line.

Exit codes: 0 all passed; 1 a check failed or a figure is outside the tolerance; 2 the command
could not run (bad options, a bad CSV line, no such org, the server refused the key).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from margindash.acceptance.api_client import ApiClient, ServerUnreachable
from margindash.acceptance.estimates import REQUEST, BadEstimates, LocalEstimates, read_estimates
from margindash.acceptance.outcomes import (
    FAIL,
    NOT_AVAILABLE,
    PASS,
    CheckFailed,
    LineResult,
)
from margindash.acceptance.reconcile import (
    DEFAULT_TOLERANCE_PCT,
    Measure,
    ReconciledLine,
    Reconciliation,
    amount_text,
    reconcile,
    rounded_pct,
)
from margindash.acceptance.sources import (
    DatabaseNumbers,
    HttpNumbers,
    NumbersSource,
    Period,
    SourceError,
)
from margindash.acceptance.verify import DEFAULT_EMAIL, VerifyReport, new_plan, run_verification
from margindash.config import get_settings

console = Console()
err = Console(stderr=True)

_MARKS = {PASS: "[green]✓[/green]", FAIL: "[red]✗[/red]", NOT_AVAILABLE: "[yellow]-[/yellow]"}
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_MAX_TABLE_LINES = 50

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{escape(message)}[/red]")
    return typer.Exit(2)


def verify_command(
    url: Annotated[
        str | None,
        typer.Option(
            help="The server: http://HOST:PORT or its /v1 URL (default: MARGINDASH_INGEST_URL)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="An admin key, `api_key` of `init` (default: MARGINDASH_API_KEY)."),
    ] = None,
    model: Annotated[str, typer.Option(help="A model the server prices.")] = "gpt-4o-mini",
    events: Annotated[
        int, typer.Option(min=1, max=100, help="Usage events to send for the test customer.")
    ] = 10,
    alert_email: Annotated[
        str, typer.Option(help="Where the test budget's 90% alert e-mail goes.")
    ] = DEFAULT_EMAIL,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait for the alert, then for its e-mail.")
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Run the acceptance checklist against a live server, with a throw-away test customer."""
    plan = new_plan(model=model, events=events, alert_email=alert_email, alert_timeout=timeout)
    settings = get_settings()  # the environment, .env and margindash.yaml
    api_key = api_key or settings.api_key
    if not api_key:
        raise _fail("verify needs an admin key (--api-key or MARGINDASH_API_KEY)")
    try:
        api = ApiClient(url=url or settings.ingest_url, api_key=api_key)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not as_json:
        console.print(
            f"Verifying {escape(api.base)} with test customer [bold]{plan.customer_id}[/]"
        )
    with api:
        report = run_verification(api=api, plan=plan, on_line=None if as_json else _print_line)
    if as_json:
        sys.stdout.write(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_summary(report)
    if not report.passed:
        raise typer.Exit(1)


def _print_line(line: LineResult) -> None:
    mark = _MARKS.get(line.status, "[dim]·[/dim]")
    status = "" if line.status in (PASS, FAIL) else f" [dim]({line.status})[/dim]"
    console.print(f"{mark} {escape(line.title)}{status}")
    style = "red" if line.status == FAIL else "dim"
    console.print(f"    [{style}]{escape(line.detail)}[/{style}]")


def _print_summary(report: VerifyReport) -> None:
    counts = {status: sum(1 for line in report.lines if line.status == status) for status in _MARKS}
    failed = len(report.lines) - counts[PASS] - counts[NOT_AVAILABLE]
    unavailable = f", {counts[NOT_AVAILABLE]} not available on this server"
    tail = unavailable if counts[NOT_AVAILABLE] else ""
    if failed:
        console.print(f"\n[red bold]{failed} of {len(report.lines)} lines did not pass[/]{tail}.")
    else:
        console.print(f"\n[green bold]All {counts[PASS]} lines passed[/]{tail}.")
    console.print(
        f"[dim]Test customer {report.customer_id} stays in the ledger with its few cents of usage "
        "and its revenue; run verify against a dedicated org to keep it out of reports.[/dim]"
    )


def reconcile_command(
    file: Annotated[
        Path,
        typer.Argument(help="CSV: request_id,cost_usd or customer_id,cost_usd[,revenue_usd]."),
    ],
    url: Annotated[
        str | None,
        typer.Option(help="Compare with this server (http://HOST:PORT or …/v1), not the database."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="A read or admin key for --url (default: MARGINDASH_API_KEY)."),
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Org name or id in the database (default: first).")
    ] = None,
    month: Annotated[
        str | None, typer.Option(help="YYYY-MM for per-customer files (default: this month).")
    ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD")] = None,
    tolerance_pct: Annotated[
        str, typer.Option(help="Largest allowed difference, in % of the local figure.")
    ] = str(DEFAULT_TOLERANCE_PCT),
    as_json: JsonOption = False,
) -> None:
    """Compare a local cost estimate per request or customer with margindash (the ±5% gate)."""
    tolerance = _tolerance(tolerance_pct)
    period = _period(month, date_from, date_to)
    try:
        estimates = read_estimates(file)
    except BadEstimates as exc:
        raise _fail(str(exc)) from None
    if estimates.kind == REQUEST and period != Period():
        err.print("[yellow]--month/--from/--to are ignored for a per-request file.[/yellow]")
    source, close = _source(url, api_key, org)
    try:
        result = reconcile(
            estimates=estimates, source=source, period=period, tolerance_pct=tolerance
        )
    except (SourceError, CheckFailed, ServerUnreachable) as exc:
        raise _fail(f"margindash could not answer: {exc}") from None
    finally:
        close()
    if as_json:
        sys.stdout.write(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_reconciliation(result, estimates)
    if not result.within:
        raise typer.Exit(1)


def _tolerance(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise _fail(f"--tolerance-pct must be a number ≥ 0, got {text!r}")
    return value


def _period(month: str | None, date_from: str | None, date_to: str | None) -> Period:
    if month is not None:
        if date_from or date_to:
            raise _fail("give --month or --from/--to, not both")
        if not _MONTH.match(month):
            raise _fail(f"--month must be YYYY-MM, got {month!r}")
        return Period(month=month)
    if (date_from is None) != (date_to is None):
        raise _fail("give both --from and --to")
    if date_from is None or date_to is None:
        return Period()
    try:
        start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except ValueError as exc:
        raise _fail(f"--from/--to must be YYYY-MM-DD: {exc}") from None
    if end < start:
        raise _fail("--to is before --from")
    return Period(date_from=start, date_to=end)


def _source(
    url: str | None, api_key: str | None, org: str | None
) -> tuple[NumbersSource, Callable[[], None]]:
    """margindash's side and how to close it: the API with --url, else the database."""
    if url is not None:
        if org is not None:
            raise _fail("--org reads this machine's database; leave it out with --url")
        api_key = api_key or get_settings().api_key
        if not api_key:
            raise _fail("--url needs an API key (--api-key or MARGINDASH_API_KEY)")
        try:
            api = ApiClient(url=url, api_key=api_key)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        return HttpNumbers(api), api.close
    from margindash.db.engine import make_engine
    from margindash.db.migrate import upgrade
    from margindash.orgs.service import find_org

    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    found = find_org(engine, org)
    if found is None:
        engine.dispose()
        raise _fail("No such org. Create one with `margindash init --org NAME`.")
    return DatabaseNumbers(engine, found, watch_pct=settings.watch_margin_pct), engine.dispose


def _print_reconciliation(result: Reconciliation, estimates: LocalEstimates) -> None:
    has_revenue = result.totals.revenue is not None
    period = f", {result.period[0]} to {result.period[1]}" if result.period else ""
    table = Table(title=f"Local estimate vs {escape(result.source)}{period}")
    table.add_column("line", justify="right")
    table.add_column("request_id" if estimates.kind == REQUEST else "customer_id")
    for name in ("cost", "revenue", "margin") if has_revenue else ("cost",):
        table.add_column(f"local {name}", justify="right")
        table.add_column(f"margindash {name}", justify="right")
        table.add_column("diff", justify="right")
    table.add_column("result")
    shown = result.lines if len(result.lines) <= _MAX_TABLE_LINES else result.outside
    for line in shown[:_MAX_TABLE_LINES]:
        table.add_row(str(line.line), escape(line.key), *_cells(line, has_revenue))
    table.add_row("", "TOTAL", *_cells(result.totals, has_revenue), end_section=True)
    console.print(table)
    hidden = len(result.lines) - min(len(shown), _MAX_TABLE_LINES)
    if hidden:
        console.print(f"[dim]{hidden} more lines not shown; --json lists them all.[/dim]")
    _print_verdict(result)


def _cells(line: ReconciledLine, has_revenue: bool) -> list[str]:
    measures = [line.cost, line.revenue, line.margin] if has_revenue else [line.cost]
    cells = []
    for item in measures:
        cells += _measure_cells(item)
    verdict = "[green]✓[/green]" if line.within else "[red]✗ outside[/red]"
    note = f" [dim]{escape(line.note)}[/dim]" if line.note else ""
    return [*cells, verdict + note]


def _measure_cells(item: Measure | None) -> list[str]:
    if item is None:
        return ["", "", ""]
    remote = "missing" if item.remote is None else amount_text(item.remote)
    return [amount_text(item.local), remote, diff_text(item)]


def diff_text(item: Measure) -> str:
    """`+3.10%`, or `n/a` when the difference is undefined."""
    if item.diff_pct is None:
        return "n/a"
    text = f"{rounded_pct(item.diff_pct):+}%"
    return text if item.within else f"[red]{text}[/red]"


def _print_verdict(result: Reconciliation) -> None:
    gate = f"±{result.tolerance_pct}%"
    if result.within:
        console.print(f"[green bold]Within the {gate} gate[/]: every line and the total.")
        return
    parts = [f"{len(result.outside)} of {len(result.lines)} lines"] if result.outside else []
    if not result.totals.within:
        parts.append("the total")
    console.print(f"[red bold]Outside the {gate} gate[/]: {' and '.join(parts)}.")
