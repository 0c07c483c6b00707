"""Query parameter types that several routers share."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator

from margindash.money import plain_number


def _digits_only(value: Any) -> Any:
    # Python's int() reads "1_0" as 10, and Arabic-Indic digits as digits; no client means
    # either as a count.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written with the digits 0-9")
    return value


# The validator goes after Query: before it, the OpenAPI schema would lose its minimum/maximum.
Limit = Annotated[
    int, Query(ge=1, le=500, description="at most this many items"), BeforeValidator(_digits_only)
]
ThresholdPct = Annotated[Decimal, Query(ge=0, le=1000), BeforeValidator(plain_number)]
