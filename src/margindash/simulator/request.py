"""What a caller may ask of the simulator (`POST /v1/simulate`, `margindash simulate`), checked,
and the options it becomes with the deployment's defaults filled in."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from margindash.config import Settings
from margindash.ledger.events import NoNul
from margindash.money import plain_number
from margindash.simulator.quality import validate_weights
from margindash.simulator.simulation import SimulationOptions

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), NoNul]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
Capability = Literal["function_calling", "tools", "vision", "prompt_caching", "reasoning"]
# Numbers may come as text (the dashboard's form sends what was typed), but written plainly:
# pydantic alone would read "1_000" as 1000.
PlainNumber = BeforeValidator(plain_number)
Ratio = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False), PlainNumber]
Weight = Annotated[float, Field(ge=0, allow_inf_nan=False), PlainNumber]
Pct = Annotated[float, PlainNumber]
Amount = Annotated[Decimal, PlainNumber]


class SimulateIn(BaseModel):
    """The body of `POST /v1/simulate` (every field optional; default period: this month)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_from: date | None = Field(None, alias="from", description="first day (inclusive)")
    date_to: date | None = Field(None, alias="to", description="last day (inclusive)")
    month: str | None = Field(None, pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")
    feature: Name | None = None
    customer_id: Name | None = None
    candidates: list[Name] | None = Field(
        None, min_length=1, max_length=500, description="model names; default: scored models"
    )
    min_quality: Pct | None = Field(None, ge=0, le=100)
    max_quality_drop_pct: Pct | None = Field(
        None, ge=0, le=100, description="default 5 unless min_quality is given"
    )
    allowed_providers: list[Short] | None = Field(None, min_length=1, max_length=100)
    required_capabilities: list[Capability] = Field(default_factory=list, max_length=5)
    weights: dict[Short, Weight] | None = Field(None, min_length=1, max_length=50)
    token_ratios: dict[Short, dict[Literal["input", "output"], Ratio]] | None = Field(
        None,
        max_length=50,
        description="tokens a model family spends for the same work, relative to the others",
    )
    token_band_pct: Pct | None = Field(None, ge=0, lt=100)
    migration_hours: Amount | None = Field(
        None, ge=0, le=100_000, allow_inf_nan=False, description="per swapped feature"
    )
    hourly_rate: Amount | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)
    limit: int = Field(10, ge=1, le=500, strict=True, description="candidates listed per row")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return None if value is None else validate_weights(value)


def simulation_options(
    body: SimulateIn, *, date_from: date, date_to: date, settings: Settings
) -> SimulationOptions:
    """The options of a checked request over a resolved period, defaults from `settings`."""
    drop = body.max_quality_drop_pct
    if drop is None and body.min_quality is None:
        drop = settings.simulator_max_quality_drop_pct
    band = settings.simulator_token_band_pct if body.token_band_pct is None else body.token_band_pct
    ratios = {
        family: (Decimal(str(given.get("input", 1))), Decimal(str(given.get("output", 1))))
        for family, given in (body.token_ratios or {}).items()
    }
    hours, rate = body.migration_hours, body.hourly_rate
    return SimulationOptions(
        date_from=date_from,
        date_to=date_to,
        feature=body.feature,
        customer_id=body.customer_id,
        candidates=tuple(body.candidates) if body.candidates is not None else None,
        min_quality=body.min_quality,
        max_quality_drop_pct=drop,
        allowed_providers=frozenset(body.allowed_providers) if body.allowed_providers else None,
        required_capabilities=tuple(dict.fromkeys(body.required_capabilities)),
        weights=body.weights,
        token_ratios=ratios,
        token_band_pct=Decimal(str(band)),
        migration_hours=settings.simulator_migration_hours if hours is None else hours,
        hourly_rate=settings.simulator_hourly_rate if rate is None else rate,
        limit=body.limit,
    )
