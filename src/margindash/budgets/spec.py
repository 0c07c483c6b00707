"""What a budget is, and how one is read from the API's JSON or the brief's budget file.

Two shapes describe the same budget. The API's:
`{"name", "scope": {"type", "value"}, "period", "limit_usd", "thresholds", "action", "notify"}`,
and the product brief's flat one, optionally under `budget:`, which works as written:
`{"feature": "image_generation", "monthly_limit": 600.00, "warning_threshold_percent": 75,
"critical_threshold_percent": 90, "notify_email": "eng-ops@example.com"}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from margindash.ledger.events import FieldError
from margindash.money import parse_decimal, scaled_exactly
from margindash.reports.pnl import PnlFilter

SCOPE_TYPES = ("org", "feature", "customer", "model", "customer_feature")
PERIODS = ("month", "week", "day")
ACTIONS = ("warn", "block")
DEFAULT_THRESHOLDS = (Decimal(75), Decimal(90))
MAX_THRESHOLDS = 10
MAX_THRESHOLD = Decimal(1000)
MAX_EMAILS = 20
MAX_LIMIT_USD = Decimal(1_000_000_000)
_EMAIL = re.compile(r"^[^@\s,;<>\"']+@[^@\s,;<>\"']+$")
_PERIOD_ADJECTIVES = {"month": "monthly", "week": "weekly", "day": "daily"}
_API_FIELDS = ("name", "scope", "period", "limit_usd", "thresholds", "action", "notify")
_BRIEF_LIMITS = {"monthly_limit": "month", "weekly_limit": "week", "daily_limit": "day"}
_BRIEF_FIELDS = (
    "name",
    "feature",
    "customer",
    "customer_id",
    "model",
    *_BRIEF_LIMITS,
    "warning_threshold_percent",
    "critical_threshold_percent",
    "thresholds",
    "action",
    "notify_email",
    "notify_emails",
    "notify_webhook",
)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a budget counts: the whole org, or one feature, customer, model or customer+feature."""

    type: str
    customer_id: str | None = None
    feature: str | None = None
    model: str | None = None

    @property
    def value(self) -> str | None:
        """The scope as one string (`customer:feature` for customer_feature; None for org)."""
        if self.type == "customer_feature":
            return f"{self.customer_id}:{self.feature}"
        values = {"feature": self.feature, "customer": self.customer_id, "model": self.model}
        return values.get(self.type)

    @property
    def filters(self) -> PnlFilter:
        """The rollup rows this scope counts."""
        return PnlFilter(customer_id=self.customer_id, feature=self.feature, model=self.model)

    def covers(self, *, customer_id: str, feature: str, model: str) -> bool:
        """Whether spending by this customer, feature and model counts against the scope."""
        return (
            self.customer_id in (None, customer_id)
            and self.feature in (None, feature)
            and self.model in (None, model)
        )

    def describe(self) -> str:
        """The scope for people: `feature image_generation`, `the whole org`."""
        if self.type == "org":
            return "the whole org"
        if self.type == "customer_feature":
            return f"customer {self.customer_id}, feature {self.feature}"
        return f"{self.type} {self.value}"


@dataclass(frozen=True, slots=True)
class Notify:
    """Where a budget's alerts go."""

    emails: tuple[str, ...] = ()
    webhook_url: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """A budget as a user describes it (validated)."""

    name: str
    scope: Scope
    period: str
    limit_nanos: int
    thresholds: tuple[Decimal, ...]
    action: str
    notify: Notify


class InvalidBudget(ValueError):
    """A budget that cannot be stored; `errors` names each bad field."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def threshold_text(threshold: Decimal) -> str:
    """A threshold as canonical text (`75`, `87.5`): part of an alert's identity."""
    return format(threshold.normalize(), "f")


def threshold_number(threshold: Decimal) -> int | float:
    """A threshold for JSON: an integer when whole, else a number with up to 2 decimals."""
    return int(threshold) if threshold == threshold.to_integral_value() else float(threshold)


def default_name(scope: Scope, period: str) -> str:
    """A name for a budget given none: `Image Generation` for the brief's feature budget."""
    if scope.type == "org":
        label = "Organisation"
    elif scope.type == "feature":
        label = _humanise(scope.feature or "")
    elif scope.type == "customer_feature":
        label = f"{scope.customer_id} / {_humanise(scope.feature or '')}"
    else:
        label = scope.value or ""
    return label if period == "month" else f"{label} ({_PERIOD_ADJECTIVES[period]})"


def _humanise(text: str) -> str:
    return re.sub(r"[_-]+", " ", text).strip().title() or text


def parse_budget(raw: Any) -> BudgetSpec:
    """A budget from the API's shape or the brief's flat shape; InvalidBudget names bad fields."""
    prefix = ""
    if isinstance(raw, Mapping) and set(raw) == {"budget"}:
        raw, prefix = raw["budget"], "budget."
    if not isinstance(raw, Mapping):
        raise InvalidBudget([FieldError(prefix.rstrip(".") or "body", "must be an object")])
    problems = _Problems(prefix)
    spec = _from_api(raw, problems) if "scope" in raw else _from_brief(raw, problems)
    if spec is None or problems.errors:
        raise InvalidBudget(problems.errors)
    return spec


class _Problems:
    """Errors collected while reading one budget, with field names as the user wrote them."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(self.prefix + field, message))

    def unknown(self, raw: Mapping[str, Any], known: tuple[str, ...], path: str = "") -> None:
        for key in raw:
            if key not in known:
                self.add(f"{path}{key}", f"unknown field; expected one of {', '.join(known)}")


def _from_api(raw: Mapping[str, Any], problems: _Problems) -> BudgetSpec | None:
    problems.unknown(raw, _API_FIELDS)
    scope = _scope(raw.get("scope"), problems)
    period = _choice(raw.get("period", "month"), "period", PERIODS, problems)
    limit = _limit(raw.get("limit_usd"), "limit_usd", problems)
    thresholds = _thresholds(raw.get("thresholds"), "thresholds", problems)
    action = _choice(raw.get("action", "warn"), "action", ACTIONS, problems)
    notify = _notify(raw.get("notify"), problems)
    name = _text(raw.get("name"), "name", problems, required=False)
    if scope is None or period is None or limit is None or thresholds is None:
        return None
    if action is None or notify is None:
        return None
    return BudgetSpec(
        name or default_name(scope, period), scope, period, limit, thresholds, action, notify
    )


def _from_brief(raw: Mapping[str, Any], problems: _Problems) -> BudgetSpec | None:
    problems.unknown(raw, _BRIEF_FIELDS)
    scope = _brief_scope(raw, problems)
    limits = [key for key in _BRIEF_LIMITS if key in raw]
    if len(limits) != 1:
        problems.add(
            "monthly_limit", "give exactly one of monthly_limit, weekly_limit, daily_limit"
        )
        return None
    period = _BRIEF_LIMITS[limits[0]]
    limit = _limit(raw[limits[0]], limits[0], problems)
    thresholds = _brief_thresholds(raw, problems)
    action = _choice(raw.get("action", "warn"), "action", ACTIONS, problems)
    emails = _emails(raw.get("notify_email", raw.get("notify_emails")), "notify_email", problems)
    webhook = _webhook(raw.get("notify_webhook"), "notify_webhook", problems)
    name = _text(raw.get("name"), "name", problems, required=False)
    if scope is None or limit is None or thresholds is None or action is None or emails is None:
        return None
    notify = Notify(emails, webhook)
    return BudgetSpec(
        name or default_name(scope, period), scope, period, limit, thresholds, action, notify
    )


def _scope(raw: Any, problems: _Problems) -> Scope | None:
    if not isinstance(raw, Mapping):
        problems.add("scope", 'must be an object such as {"type": "feature", "value": "chat"}')
        return None
    problems.unknown(raw, ("type", "value", "customer_id", "feature"), "scope.")
    kind = _choice(raw.get("type"), "scope.type", SCOPE_TYPES, problems)
    if kind is None:
        return None
    if kind == "org":
        return Scope("org")
    if kind == "customer_feature":
        return _customer_feature(raw, problems)
    value = _text(raw.get("value"), "scope.value", problems)
    if value is None:
        return None
    return Scope(kind, **{"customer_id" if kind == "customer" else kind: value})


def _customer_feature(raw: Mapping[str, Any], problems: _Problems) -> Scope | None:
    if "customer_id" not in raw and isinstance(raw.get("value"), str) and ":" in raw["value"]:
        customer, _, feature = raw["value"].partition(":")
        customer_id = _text(customer, "scope.value", problems)
        feature_name = _text(feature, "scope.value", problems)
    else:
        customer_id = _text(raw.get("customer_id"), "scope.customer_id", problems)
        feature_name = _text(raw.get("feature"), "scope.feature", problems)
    if customer_id is None or feature_name is None:
        return None
    return Scope("customer_feature", customer_id=customer_id, feature=feature_name)


def _brief_scope(raw: Mapping[str, Any], problems: _Problems) -> Scope | None:
    if "customer" in raw and "customer_id" in raw:
        problems.add("customer_id", "give customer or customer_id, not both")
        return None
    customer_key = "customer" if "customer" in raw else "customer_id"
    customer = _text(raw.get(customer_key), customer_key, problems, required=False)
    feature = _text(raw.get("feature"), "feature", problems, required=False)
    model = _text(raw.get("model"), "model", problems, required=False)
    if model is not None and (customer is not None or feature is not None):
        problems.add("model", "a model budget cannot also name a customer or a feature")
        return None
    if customer is not None and feature is not None:
        return Scope("customer_feature", customer_id=customer, feature=feature)
    if customer is not None:
        return Scope("customer", customer_id=customer)
    if feature is not None:
        return Scope("feature", feature=feature)
    if model is not None:
        return Scope("model", model=model)
    return Scope("org")


def _brief_thresholds(raw: Mapping[str, Any], problems: _Problems) -> tuple[Decimal, ...] | None:
    named = [k for k in ("warning_threshold_percent", "critical_threshold_percent") if k in raw]
    if "thresholds" in raw:
        if named:
            problems.add("thresholds", f"give thresholds or {' and '.join(named)}, not both")
            return None
        return _thresholds(raw["thresholds"], "thresholds", problems)
    if not named:
        return DEFAULT_THRESHOLDS
    found = [_threshold(raw[key], key, problems) for key in named]
    if any(t is None for t in found):
        return None
    return _ordered_thresholds([t for t in found if t is not None], named[0], problems)


def _text(value: Any, field: str, problems: _Problems, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            problems.add(field, "required")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(field, "must be a non-empty string")
        return None
    if len(value.strip()) > 255:
        problems.add(field, "at most 255 characters")
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value.strip()):
        # A line break in a name would end the e-mail header it goes into.
        problems.add(field, "must not contain control characters (line breaks, tabs, NUL)")
        return None
    return value.strip()


def _choice(value: Any, field: str, choices: tuple[str, ...], problems: _Problems) -> str | None:
    if value not in choices:
        problems.add(field, f"must be one of {', '.join(choices)}")
        return None
    return str(value)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = parse_decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _limit(value: Any, field: str, problems: _Problems) -> int | None:
    if value is None:
        problems.add(field, 'required: the limit in USD, e.g. "600.00"')
        return None
    amount = _decimal(value)
    if amount is None:
        problems.add(field, 'must be a decimal amount in USD, e.g. "600.00"')
        return None
    if amount <= 0 or amount > MAX_LIMIT_USD:
        problems.add(field, f"must be greater than 0 and at most {MAX_LIMIT_USD}")
        return None
    nanos = scaled_exactly(amount, 9)
    if nanos is None:
        problems.add(field, "at most 9 decimal places")
        return None
    return nanos


def _threshold(value: Any, field: str, problems: _Problems) -> Decimal | None:
    number = _decimal(value)
    if number is None or isinstance(value, str):
        problems.add(field, "must be a number (a percentage of the limit)")
        return None
    if number <= 0 or number > MAX_THRESHOLD:
        problems.add(field, f"must be greater than 0 and at most {MAX_THRESHOLD}")
        return None
    if number != number.quantize(Decimal("0.01")):
        problems.add(field, "at most 2 decimal places")
        return None
    return number


def _thresholds(value: Any, field: str, problems: _Problems) -> tuple[Decimal, ...] | None:
    if value is None:
        return DEFAULT_THRESHOLDS
    if not isinstance(value, list) or len(value) > MAX_THRESHOLDS:
        problems.add(field, f"must be a list of at most {MAX_THRESHOLDS} percentages")
        return None
    found = [_threshold(item, f"{field}.{i}", problems) for i, item in enumerate(value)]
    if any(t is None for t in found):
        return None
    return _ordered_thresholds([t for t in found if t is not None], field, problems)


def _ordered_thresholds(
    found: list[Decimal], field: str, problems: _Problems
) -> tuple[Decimal, ...] | None:
    if len(set(found)) != len(found):
        problems.add(field, "each percentage at most once")
        return None
    return tuple(sorted(found))


def _notify(raw: Any, problems: _Problems) -> Notify | None:
    if raw is None:
        return Notify()
    if not isinstance(raw, Mapping):
        problems.add("notify", 'must be an object: {"emails": [...], "webhook_url": ...}')
        return None
    problems.unknown(raw, ("emails", "webhook_url"), "notify.")
    emails = _emails(raw.get("emails"), "notify.emails", problems)
    webhook = _webhook(raw.get("webhook_url"), "notify.webhook_url", problems)
    return None if emails is None else Notify(emails, webhook)


def parse_emails(value: Any, field: str) -> tuple[str, ...]:
    """E-mail addresses from a string or a list; InvalidBudget names the field if bad."""
    problems = _Problems("")
    emails = _emails(value, field, problems)
    if emails is None:
        raise InvalidBudget(problems.errors)
    return emails


def parse_webhook_url(value: Any, field: str) -> str | None:
    """A webhook URL (http or https) or None; InvalidBudget names the field if bad."""
    problems = _Problems("")
    url = _webhook(value, field, problems)
    if problems.errors:
        raise InvalidBudget(problems.errors)
    return url


def _emails(value: Any, field: str, problems: _Problems) -> tuple[str, ...] | None:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > MAX_EMAILS:
        problems.add(field, f"must be an address or a list of at most {MAX_EMAILS} addresses")
        return None
    emails: list[str] = []
    for item in items:
        if not isinstance(item, str) or len(item) > 320 or not _EMAIL.match(item.strip()):
            problems.add(field, f"{item!r} is not an e-mail address")
            return None
        if item.strip() not in emails:
            emails.append(item.strip())
    return tuple(emails)


def _webhook(value: Any, field: str, problems: _Problems) -> str | None:
    if value is None:
        return None
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is not None:
            parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:  # "http://[::1" (a broken IPv6 host), "http://h:99999/"
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(field, "must be an http:// or https:// URL")
        return None
    if len(value) > 2048:
        problems.add(field, "at most 2048 characters")
        return None
    return str(value)
