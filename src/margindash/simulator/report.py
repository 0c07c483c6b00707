"""A simulation as JSON (the API's response, `margindash simulate --format json`).

Money is an exact decimal string in USD; percentages and ratios are numbers. Wherever quality
scores appear, the response carries the LLM Stats attribution.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from margindash.money import format_cost
from margindash.simulator.effects import CustomerEffect
from margindash.simulator.simulation import CandidateResult, Simulation, SwapRow

_HUNDREDTH = Decimal("0.01")


def pct_of(part: int, whole: int) -> float | None:
    """part / whole x 100, rounded to 2 decimals; None when whole is 0."""
    if whole == 0:
        return None
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(_HUNDREDTH, ROUND_HALF_EVEN))


def _money(nanos: int | None) -> str | None:
    return format_cost(nanos)


def _round(value: float | None, places: int = 2) -> float | None:
    return None if value is None else round(value, places)


def candidate_json(result: CandidateResult, row: SwapRow) -> dict[str, Any]:
    model = result.model
    input_ratio, output_ratio = _token_ratios(result, row)
    # Savings need the row's whole cost: with unpriced events in it there is nothing to compare.
    compared = row.unpriced_events == 0
    saved = row.cost_nanos - result.simulated_nanos
    return {
        "model": model.name,
        "provider": model.provider,
        "key": model.key,
        "family": model.family,
        "quality": _round(result.quality),
        "quality_drop_pct": _round(result.quality_drop_pct),
        "intelligence_per_dollar": _round(result.intelligence_per_dollar, 4),
        "simulated_cost": _money(result.simulated_nanos),
        "simulated_cost_low": _money(result.low_nanos),
        "simulated_cost_high": _money(result.high_nanos),
        "savings": _money(saved) if compared else None,
        "savings_pct": pct_of(saved, row.cost_nanos) if compared else None,
        "savings_low": _money(row.cost_nanos - result.high_nanos) if compared else None,
        "savings_high": _money(row.cost_nanos - result.low_nanos) if compared else None,
        "token_basis": result.basis,
        "input_token_ratio": _round(input_ratio, 4),
        "output_token_ratio": _round(output_ratio, 4),
        "context_window": model.context_window,
        "eligible": result.eligible,
        "excluded_because": list(result.excluded),
        "unknown": list(result.unknown),
    }


def _token_ratios(result: CandidateResult, row: SwapRow) -> tuple[float | None, float | None]:
    """Candidate tokens per current token (input, output), as simulated."""
    shifted = result.shift.apply(row.mix)
    return (
        shifted.prompt / row.mix.prompt if row.mix.prompt else None,
        shifted.completion / row.mix.completion if row.mix.completion else None,
    )


def row_json(row: SwapRow) -> dict[str, Any]:
    best = row.best
    # A row of unpriced events has an unknown cost, never $0, and so unknown savings.
    known = not row.unpriced
    return {
        "feature": row.feature,
        "model": row.model,
        "provider": row.current.provider if row.current else None,
        "events": row.mix.events,
        "unpriced_events": row.unpriced_events,
        "prompt_tokens": row.mix.prompt,
        "completion_tokens": row.mix.completion,
        "cached_tokens": row.mix.cached,
        "cache_write_tokens": row.mix.cache_write,
        "reasoning_tokens": row.mix.reasoning,
        "max_prompt_tokens": row.max_prompt_tokens,
        "cost": _money(row.cost_nanos) if known else None,
        "current_cost_today": _money(row.current_cost_today_nanos),
        "quality": _round(row.quality),
        "intelligence_per_dollar": _round(row.intelligence_per_dollar, 4),
        "weights": dict(row.weights),
        "simulated_cost": _money(row.simulated_nanos) if known else None,
        "savings": _money(row.savings_nanos) if known else None,
        "savings_pct": pct_of(row.savings_nanos, row.cost_nanos) if known else None,
        "savings_low": _money(row.savings_low_nanos) if known else None,
        "savings_high": _money(row.savings_high_nanos) if known else None,
        "best_candidate": None if best is None else candidate_json(best, row),
        "note": row.note,
        "candidates_considered": row.considered,
        "candidates": [candidate_json(c, row) for c in row.candidates],
    }


def customer_json(effect: CustomerEffect, simulation: Simulation) -> dict[str, Any]:
    return {
        "customer_id": effect.customer_id,
        "revenue": _money(effect.revenue_nanos),
        "cost_before": _money(effect.cost_before_nanos),
        "cost_after": _money(effect.cost_after_nanos),
        "margin_before": _money(effect.margin_before_nanos),
        "margin_after": _money(effect.margin_after_nanos),
        "margin_pct_before": effect.margin_pct_before,
        "margin_pct_after": effect.margin_pct_after,
        "savings": _money(effect.savings_nanos),
        "monthly_savings": _money(effect.monthly_savings_nanos),
        "action_before": effect.action(after=False),
        "action_after": effect.action(after=True),
        "turns_positive": effect.turns_positive,
        "negative_months": effect.negative_months,
        "act_on": effect.act_on,
        "payback_months": simulation.payback_months(effect) if effect.act_on else None,
    }


def simulation_json(simulation: Simulation) -> dict[str, Any]:
    """The whole simulation, as `POST /v1/simulate` answers it."""
    options = simulation.options
    customers = simulation.customers
    revenue = sum(c.revenue_nanos for c in customers)
    before = sum(c.cost_before_nanos for c in customers)
    after = sum(c.cost_after_nanos for c in customers)
    roi = simulation.roi
    savings = simulation.cost_nanos - simulation.simulated_nanos
    return {
        "from": options.date_from.isoformat(),
        "to": options.date_to.isoformat(),
        "currency": simulation.org.currency,
        "priced_at": simulation.priced_at.isoformat(),
        "attribution": simulation.attribution,
        "constraints": {
            "min_quality": options.min_quality,
            "max_quality_drop_pct": options.max_quality_drop_pct,
            "allowed_providers": sorted(options.allowed_providers)
            if options.allowed_providers is not None
            else None,
            "required_capabilities": list(options.required_capabilities),
            "token_band_pct": float(options.token_band_pct),
            "token_ratios": {
                family: {"input": float(ratio[0]), "output": float(ratio[1])}
                for family, ratio in sorted(options.token_ratios.items())
            },
        },
        "totals": {
            "events": sum(row.mix.events for row in simulation.rows),
            # Not in `cost`: their cost is unknown (the P&L counts them the same way).
            "unpriced_events": simulation.unpriced_events,
            "cost": _money(simulation.cost_nanos),
            "simulated_cost": _money(simulation.simulated_nanos),
            "savings": _money(savings),
            "savings_pct": pct_of(savings, simulation.cost_nanos),
            "savings_low": _money(simulation.savings_low_nanos),
            "savings_high": _money(simulation.savings_high_nanos),
        },
        "rows": [row_json(row) for row in simulation.rows],
        "customer_totals": {
            "customers": len(customers),
            "revenue": _money(revenue),
            "cost_before": _money(before),
            "cost_after": _money(after),
            "margin_before": _money(revenue - before),
            "margin_after": _money(revenue - after),
            "turn_positive": sum(1 for c in customers if c.turns_positive),
        },
        "customers": [customer_json(c, simulation) for c in customers],
        "roi": {
            "swaps": roi.swaps,
            "migration_hours_per_swap": _decimal(roi.migration_hours),
            "hourly_rate": _decimal(roi.hourly_rate),
            "migration_cost": _money(roi.migration_cost_nanos),
            "savings": _money(roi.savings_nanos),
            "monthly_savings": _money(roi.monthly_savings_nanos),
            "payback_months": roi.payback_months,
            "customers_to_act_on": [c.customer_id for c in customers if c.act_on],
        },
    }


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")
