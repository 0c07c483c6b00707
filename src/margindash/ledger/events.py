"""What a usage event may contain, and how it is checked before anything is written."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, NamedTuple

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from margindash.pricing.catalogue import TokenCounts

MAX_TOKENS_PER_CALL = 10_000_000
MAX_METADATA_BYTES = 2048
MAX_FUTURE_SKEW = timedelta(hours=1)
UNATTRIBUTED = "unattributed"
DEFAULT_FEATURE = "default"
# Per-event revenue stays far below 2^63 nano-USD, so rollups that sum it stay exact.
MAX_EVENT_REVENUE_CENTS = 10**10


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it on every database, so both behave alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


NoNul = AfterValidator(_no_nul)
Id = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True), NoNul]
# An idempotency key (`request_id`, `revenue_id`) is taken exactly as sent: "b1 " and "b1" are
# two ids, and trimming one would answer `duplicate` for an event that was never stored.
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, strip_whitespace=False),
    NoNul,
    AfterValidator(_not_blank),
]
TokenCount = Annotated[int, Field(strict=True, ge=0, le=MAX_TOKENS_PER_CALL)]
CharCount = Annotated[int, Field(strict=True, ge=0, le=MAX_TOKENS_PER_CALL * 4)]


class UsageEventIn(BaseModel):
    """One LLM call as an app reports it (see API.md, `POST /v1/usage`)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    request_id: IdempotencyKey
    customer_id: Id | None = None
    model_name: Id
    provider: Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul] | None = None
    # An optional field sent as `null` means what leaving it out means (its default).
    prompt_tokens: TokenCount | None = None
    completion_tokens: TokenCount | None = None
    cached_tokens: TokenCount | None = 0
    cache_write_tokens: TokenCount | None = 0
    reasoning_tokens: TokenCount | None = 0
    timestamp: datetime | None = None
    feature: Id | None = DEFAULT_FEATURE
    revenue_amount_cents: (
        Annotated[int, Field(strict=True, ge=0, le=MAX_EVENT_REVENUE_CENTS)] | None
    ) = None
    prompt_chars: CharCount | None = None
    completion_chars: CharCount | None = None
    metadata: dict[str, Annotated[str, StringConstraints(max_length=MAX_METADATA_BYTES)]] | None = (
        None
    )


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, as reported to the client."""

    field: str
    message: str


class InvalidEvent(ValueError):
    """An event that cannot be stored; `errors` names each bad field."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class EventRules:
    """The ingest settings that decide whether an event is acceptable."""

    strict: bool
    estimate_factor: float
    max_age: timedelta


class CheckedEvent(NamedTuple):
    """A valid event, with missing values filled in as the rules allow.

    A tuple rather than a frozen dataclass: one is built per ingested event.
    """

    request_id: str
    customer_id: str
    feature: str
    model_name: str
    provider: str | None
    tokens: TokenCounts
    occurred_at: datetime
    estimated: bool
    revenue_cents: int | None
    metadata: str | None
    warnings: tuple[str, ...]


_validate = UsageEventIn.__pydantic_validator__.validate_python
# Builds a NamedTuple from a tuple of all its fields without the Python-level `__new__` that
# `CheckedEvent(...)` runs: two per event took a tenth of the time of checking and pricing it.
_new_tuple = tuple.__new__


def check_event(raw: Any, *, rules: EventRules, now: datetime) -> CheckedEvent:
    """Validate one raw event; raises InvalidEvent naming every bad field."""
    if not isinstance(raw, dict):
        raise InvalidEvent([FieldError("body", "each event must be a JSON object")])
    try:
        event: UsageEventIn = _validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(
            [
                FieldError(".".join(str(p) for p in err["loc"]) or "body", err["msg"])
                for err in exc.errors(include_url=False)
            ]
        ) from None
    errors: list[FieldError] = []
    warnings: list[str] = []
    customer_id = event.customer_id
    if customer_id is None:
        customer_id = _missing_customer(rules, errors, warnings)
    tokens, estimated = _tokens(event, rules, errors)
    occurred_at = now if event.timestamp is None else _timestamp(event, rules, now, errors)
    metadata = _metadata(event, errors) if event.metadata else None
    if errors:
        raise InvalidEvent(errors)
    if estimated:
        warnings.append("token counts estimated from character counts")
    return _new_tuple(
        CheckedEvent,
        (
            event.request_id,
            customer_id,
            DEFAULT_FEATURE if event.feature is None else event.feature,
            event.model_name,
            event.provider,
            tokens,
            occurred_at,
            estimated,
            event.revenue_amount_cents,
            metadata,
            tuple(warnings),
        ),
    )


def _missing_customer(rules: EventRules, errors: list[FieldError], warnings: list[str]) -> str:
    if rules.strict:
        errors.append(FieldError("customer_id", "required (STRICT_TOKEN_COUNTS is on)"))
    else:
        warnings.append(f"no customer_id: attributed to {UNATTRIBUTED!r}")
    return UNATTRIBUTED


def _tokens(
    event: UsageEventIn, rules: EventRules, errors: list[FieldError]
) -> tuple[TokenCounts, bool]:
    prompt, completion = event.prompt_tokens, event.completion_tokens
    estimated = False
    if prompt is None or completion is None:
        prompt, prompt_estimated = _count_or_estimate(
            "prompt_tokens", prompt, event.prompt_chars, rules, errors
        )
        completion, completion_estimated = _count_or_estimate(
            "completion_tokens", completion, event.completion_chars, rules, errors
        )
        estimated = prompt_estimated or completion_estimated
    cached, cache_write, reasoning = (
        event.cached_tokens or 0,
        event.cache_write_tokens or 0,
        event.reasoning_tokens or 0,
    )
    if cached + cache_write > prompt:
        errors.append(
            FieldError("cached_tokens", "cached_tokens + cache_write_tokens exceed prompt_tokens")
        )
    if reasoning > completion:
        errors.append(FieldError("reasoning_tokens", "exceeds completion_tokens"))
    counts = _new_tuple(TokenCounts, (prompt, completion, cached, cache_write, reasoning))
    return counts, estimated


def _count_or_estimate(
    field_name: str,
    count: int | None,
    chars: int | None,
    rules: EventRules,
    errors: list[FieldError],
) -> tuple[int, bool]:
    """A token count as sent, or estimated from characters when strict mode is off."""
    if count is not None:
        return count, False
    if not rules.strict and chars is not None:
        return estimate_tokens(chars, rules.estimate_factor), True
    reason = (
        "required (STRICT_TOKEN_COUNTS is on)"
        if rules.strict
        else "required, or send the character count to estimate it"
    )
    errors.append(FieldError(field_name, reason))
    return 0, False


def estimate_tokens(chars: int, factor: float) -> int:
    """Tokens for a character count: about 4 characters a token, times the safety factor."""
    # Decimal, because 400 / 4 * 1.1 in binary floats is 110.00000000000001.
    return min(math.ceil(Decimal(chars) / 4 * Decimal(str(factor))), MAX_TOKENS_PER_CALL)


def _timestamp(
    event: UsageEventIn, rules: EventRules, now: datetime, errors: list[FieldError]
) -> datetime:
    ts = event.timestamp
    assert ts is not None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable day
        errors.append(FieldError("timestamp", "out of range"))
        return now
    if ts > now + MAX_FUTURE_SKEW:
        errors.append(FieldError("timestamp", "more than 1 hour in the future"))
    elif ts < now - rules.max_age:
        errors.append(
            FieldError("timestamp", f"older than MAX_EVENT_AGE_DAYS ({rules.max_age.days} days)")
        )
    return ts


def _metadata(event: UsageEventIn, errors: list[FieldError]) -> str:
    encoded = orjson.dumps(event.metadata, option=orjson.OPT_SORT_KEYS).decode()
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        errors.append(FieldError("metadata", f"larger than {MAX_METADATA_BYTES} bytes"))
    return encoded
