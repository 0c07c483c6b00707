"""`margindash simulate` and `margindash benchmarks …`: the simulator on the command line."""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.table import Table

from margindash.money import format_money, to_nanos

benchmarks_app = typer.Typer(
    help="Quality scores for the simulator: the bundled LLM Stats ones and your own.",
    no_args_is_help=True,
)

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Org name or id (default: the first org).")
]
FeatureOption = Annotated[
    str | None, typer.Option("--feature", help="Only for this feature (default: every feature).")
]


def _usd(amount: str | None) -> str:
    """A JSON money string for a table: dollars and cents."""
    if amount is None:
        return ""
    value = format_money(to_nanos(Decimal(amount)))
    return f"-${value[1:]}" if value.startswith("-") else f"${value}"


def _cost(amount: str | None) -> str:
    """A row's cost: an unknown one (unpriced model) says so, rather than looking like $0."""
    return "[yellow]unpriced[/yellow]" if amount is None else _usd(amount)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    found = {}
    for value in values or []:
        name, sep, given = value.partition("=")
        if not sep or not name.strip() or not given.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
        found[name.strip()] = given.strip()
    return found


def simulate_command(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month).")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD")] = None,
    feature: Annotated[str | None, typer.Option(help="Only this feature.")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer's usage.")] = None,
    candidate: Annotated[
        list[str] | None,
        typer.Option(help="A model to try (repeat; default: every scored current model)."),
    ] = None,
    min_quality: Annotated[
        float | None, typer.Option(help="Lowest quality score (0-100) a candidate may have.")
    ] = None,
    max_quality_drop_pct: Annotated[
        float | None,
        typer.Option(help="How far below the current model's quality a candidate may be (%)."),
    ] = None,
    provider: Annotated[
        list[str] | None, typer.Option(help="Only models of this provider (repeat).")
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(help="function_calling, vision, prompt_caching or reasoning (repeat)."),
    ] = None,
    weight: Annotated[
        list[str] | None, typer.Option(help="BENCHMARK=WEIGHT for the quality score (repeat).")
    ] = None,
    token_ratio: Annotated[
        list[str] | None,
        typer.Option(help="FAMILY=INPUT[:OUTPUT], tokens a model family spends (repeat)."),
    ] = None,
    token_band_pct: Annotated[
        float | None, typer.Option(help="± % on assumed token counts (default 10).")
    ] = None,
    migration_hours: Annotated[
        str | None, typer.Option(help="Engineering hours per swapped feature.")
    ] = None,
    hourly_rate: Annotated[str | None, typer.Option(help="USD per engineering hour.")] = None,
    limit: Annotated[int, typer.Option(help="Candidates listed per row (JSON).")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    org: OrgOption = None,
) -> None:
    """Re-price real usage on other models, ranked by intelligence per dollar."""
    from margindash import cli
    from margindash.config import get_settings
    from margindash.pricing.service import Pricer
    from margindash.reports.periods import parse_month, this_month
    from margindash.simulator.report import simulation_json
    from margindash.simulator.request import SimulateIn, simulation_options
    from margindash.simulator.simulation import InvalidOption
    from margindash.simulator.simulation import simulate as run

    settings = get_settings()
    engine = cli._engine(settings)
    target = cli._org(engine, org)
    ratios = {}
    for family, given in _pairs(token_ratio, "--token-ratio").items():
        first, _, second = given.partition(":")
        ratios[family] = {"input": first, "output": second or first}
    raw: dict[str, Any] = {
        "feature": feature,
        "customer_id": customer,
        "candidates": candidate or None,
        "min_quality": min_quality,
        "max_quality_drop_pct": max_quality_drop_pct,
        "allowed_providers": provider or None,
        "required_capabilities": require or [],
        "weights": _pairs(weight, "--weight") or None,
        "token_ratios": ratios or None,
        "token_band_pct": token_band_pct,
        "migration_hours": migration_hours,
        "hourly_rate": hourly_rate,
        "limit": limit,
    }
    try:
        body = SimulateIn.model_validate({k: v for k, v in raw.items() if v is not None})
        if month:
            start, end = parse_month(month)
        elif date_from and date_to:
            start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
        else:
            start, end = this_month(target.zone)
        if end < start:
            raise ValueError("--to is before --from")
        simulation = run(
            engine,
            org=target,
            catalogue=Pricer(engine).catalogue,
            options=simulation_options(body, date_from=start, date_to=end, settings=settings),
            default_weights=settings.simulator_weights,
            watch_pct=settings.watch_margin_pct,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise cli._fail(problems) from None
    except (InvalidOption, ValueError) as exc:
        raise cli._fail(str(exc)) from None
    body_json = simulation_json(simulation)
    if fmt == "json":
        sys.stdout.write(orjson.dumps(body_json, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print_simulation(cli.console, body_json)


def _print_simulation(console: Any, body: dict[str, Any]) -> None:
    table = Table(title=f"Model swaps, {body['from']} to {body['to']} (USD, today's prices)")
    for column in ("Current model", "Events", "Cost", "Simulated cost", "Savings ($)"):
        table.add_column(column, justify="left" if column == "Current model" else "right")
    table.add_column("Savings (%)", justify="right")
    table.add_column("Range ($)", justify="right")
    table.add_column("Best candidate (quality)")
    for row in body["rows"]:
        best = row["best_candidate"]
        table.add_row(
            f"{row['feature']} / {row['model']}",
            f"{row['events']:,}",
            _cost(row["cost"]),
            _usd(row["simulated_cost"]),
            _usd(row["savings"]),
            "" if row["savings_pct"] is None else f"{row['savings_pct']:.1f}%",
            f"{_usd(row['savings_low'])} to {_usd(row['savings_high'])}" if best else "",
            f"{best['provider']}:{best['model']} ({best['quality']:.1f})"
            if best
            else f"[dim]{row['note'] or ''}[/dim]",
        )
    totals = body["totals"]
    table.add_row(
        "TOTAL",
        f"{totals['events']:,}",
        _usd(totals["cost"]),
        _usd(totals["simulated_cost"]),
        _usd(totals["savings"]),
        "" if totals["savings_pct"] is None else f"{totals['savings_pct']:.1f}%",
        f"{_usd(totals['savings_low'])} to {_usd(totals['savings_high'])}",
        "",
        style="bold",
    )
    console.print(table)
    if totals["unpriced_events"]:
        console.print(
            f"[yellow]{totals['unpriced_events']:,} events of unpriced models are not in these "
            "costs: their cost is unknown (not $0). Price them with an alias or a custom price."
            "[/yellow]"
        )
    _print_customers(console, body)
    roi = body["roi"]
    line = f"Monthly savings {_usd(roi['monthly_savings'])} from {roi['swaps']} swap(s)"
    if roi["migration_cost"] is not None:
        payback = roi["payback_months"]
        line += f"; migration {_usd(roi['migration_cost'])}, payback " + (
            f"{payback:.2f} months" if payback is not None else "never"
        )
    else:
        line += " (pass --migration-hours and --hourly-rate for the payback)"
    console.print(line + ".")
    console.print(f"[dim]Quality scores: {body['attribution']}.[/dim]")


def _print_customers(console: Any, body: dict[str, Any]) -> None:
    shown = [c for c in body["customers"] if c["turns_positive"] or c["act_on"]]
    if not shown:
        return
    table = Table(title="Customers to act on (negative 2 months running) or that turn positive")
    for column in ("Customer", "Margin before", "Margin after", "Months negative", "Payback"):
        table.add_column(column, justify="left" if column == "Customer" else "right")
    table.add_column("Turns positive")
    for c in shown:
        payback = c["payback_months"]
        table.add_row(
            c["customer_id"],
            _usd(c["margin_before"]),
            _usd(c["margin_after"]),
            str(c["negative_months"]),
            "" if payback is None else f"{payback:.2f} months",
            "yes" if c["turns_positive"] else "",
        )
    console.print(table)


@benchmarks_app.command("load")
def benchmarks_load(
    file: Annotated[Path, typer.Argument(help="CSV: model,benchmark,score,source,date")],
    feature: FeatureOption = None,
    replace: Annotated[
        bool, typer.Option(help="Forget this feature's earlier scores first.")
    ] = False,
    org: OrgOption = None,
) -> None:
    """Load your own scores (0-100; `model` is `provider_id/model_id`), e.g. your evals."""
    from margindash import cli
    from margindash.simulator.benchmarks import load_scores_csv
    from margindash.simulator.quality import store_scores

    engine = cli._engine()
    target = cli._org(engine, org)
    try:
        scores = load_scores_csv(file)
    except (OSError, ValueError) as exc:
        raise cli._fail(str(exc)) from None
    count = store_scores(engine, org_id=target.id, scores=scores, feature=feature, replace=replace)
    where = f"feature {feature!r}" if feature else "every feature"
    cli.console.print(f"Loaded {count} scores for {len(scores.models)} models ({where}).")
    benchmarks = sorted({b for m in scores.models.values() for b in m.scores})
    cli.console.print(
        f"Benchmarks: {', '.join(benchmarks)}. Only weighted benchmarks count: see "
        "`margindash benchmarks weights`."
    )


@benchmarks_app.command("weights")
def benchmarks_weights(
    weights: Annotated[
        list[str] | None, typer.Argument(help="BENCHMARK=WEIGHT … (none: show them)")
    ] = None,
    feature: FeatureOption = None,
    reset: Annotated[bool, typer.Option(help="Go back to the default weights.")] = False,
    org: OrgOption = None,
) -> None:
    """Show or set how benchmarks are weighed into one quality score."""
    from margindash import cli
    from margindash.config import get_settings
    from margindash.simulator.quality import load_quality_book, store_weights

    settings = get_settings()
    engine = cli._engine(settings)
    target = cli._org(engine, org)
    if reset or weights:
        try:
            given = {k: float(v) for k, v in _pairs(weights, "WEIGHTS").items()}
            store_weights(
                engine, org_id=target.id, weights=None if reset else given, feature=feature
            )
        except ValueError as exc:
            raise cli._fail(str(exc)) from None
    book = load_quality_book(engine, org_id=target.id, default_weights=settings.simulator_weights)
    shown = book.weights(feature or "")
    where = f"feature {feature!r}" if feature else "every feature"
    cli.console.print(
        f"Weights ({where}): " + ", ".join(f"{b}={w:g}" for b, w in sorted(shown.items()))
    )


@benchmarks_app.command("list")
def benchmarks_list(
    feature: FeatureOption = None,
    search: Annotated[str | None, typer.Option(help="Substring of the model key.")] = None,
    limit: Annotated[int, typer.Option(help="Most rows to show (0: all).")] = 30,
    org: OrgOption = None,
) -> None:
    """Models by quality score, as the simulator sees them for your org."""
    from margindash import cli
    from margindash.config import get_settings
    from margindash.simulator.quality import load_quality_book

    settings = get_settings()
    engine = cli._engine(settings)
    target = cli._org(engine, org)
    book = load_quality_book(engine, org_id=target.id, default_weights=settings.simulator_weights)
    layer = feature or ""
    catalogue, weights = book.catalogue(layer), book.weights(layer)
    rows = []
    for key, model in catalogue.models.items():
        quality = model.quality(weights)
        if quality is not None and (not search or search.lower() in key.lower()):
            rows.append((quality, key, model))
    rows.sort(key=lambda r: (-r[0], r[1]))
    benchmarks = sorted(b for b, w in weights.items() if w > 0)
    table = Table(title=f"Quality ({', '.join(f'{b}={weights[b]:g}' for b in benchmarks)})")
    table.add_column("model")
    table.add_column("quality", justify="right")
    for benchmark in benchmarks:
        table.add_column(benchmark, justify="right")
    for quality, key, model in rows[: limit or None]:
        cells = [f"{model.scores[b].score:.1f}" if b in model.scores else "" for b in benchmarks]
        table.add_row(key, f"{quality:.1f}", *cells)
    cli.console.print(table)
    cli.console.print(f"[dim]Bundled scores: {book.attribution}.[/dim]")
