"""How one line of the acceptance checklist ends: pass, fail, not available or skipped."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from margindash.acceptance.api_client import Answer

PASS, FAIL, NOT_AVAILABLE, SKIPPED = "pass", "fail", "not available", "skipped"
STATUSES = (PASS, FAIL, NOT_AVAILABLE, SKIPPED)


class CheckFailed(Exception):
    """The server's answer differs from what the line expects; the message says how."""


class NotAvailable(Exception):
    """The server has no such endpoint (an older or trimmed deployment): not a failure."""


class Skipped(Exception):
    """The line could not run because of an earlier one; the message says which."""


@dataclass(frozen=True, slots=True)
class LineResult:
    """One line of the checklist as it ran."""

    key: str
    title: str
    status: str
    detail: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


def expect(answer: Answer, *statuses: int) -> Any:
    """The answer's JSON body when its status is one of `statuses`, else CheckFailed."""
    if answer.status not in statuses:
        raise CheckFailed(answer.describe())
    if not isinstance(answer.body, dict):
        raise CheckFailed(f"{answer.method} {answer.path} answered {answer.status} without JSON")
    return answer.body


def money(value: Any, what: str) -> Decimal:
    """A decimal-string amount from the server (never a float), or CheckFailed naming it."""
    if not isinstance(value, str):
        raise CheckFailed(f"{what} is {value!r}, not a decimal string")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CheckFailed(f"{what} is {value!r}, not a decimal amount") from None
    if not amount.is_finite():
        raise CheckFailed(f"{what} is {value!r}, not a finite amount")
    return amount


def required_field(body: Any, name: str, what: str) -> Any:
    """`body[name]`, or CheckFailed when the answer has no such field."""
    if not isinstance(body, dict) or name not in body:
        raise CheckFailed(f"{what} has no {name!r} field")
    return body[name]
