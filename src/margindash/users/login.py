"""Signing in: throttle, verify the password, start a session."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from margindash.users.accounts import authenticate_user
from margindash.users.sessions import Session, start_session
from margindash.users.throttle import clear_failures, record_failure, retry_after, throttle_keys


class LoginThrottled(Exception):
    """Too many failed attempts for this e-mail or client; try again after `retry_after` s."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins; retry in {retry_after} s")
        self.retry_after = retry_after


def sign_in(
    engine: Engine,
    *,
    email: str,
    password: str,
    client: str,
    max_failures: int,
    lifetime: timedelta,
) -> tuple[str, Session] | None:
    """A session token and session when the credentials match; None when they do not.

    Raises LoginThrottled, without checking the password, while the e-mail or the client has
    `max_failures` recent failures.
    """
    keys = throttle_keys(email=email, client=client)
    wait = retry_after(engine, keys=keys, max_failures=max_failures)
    if wait is not None:
        raise LoginThrottled(wait)
    user = authenticate_user(engine, email=email, password=password)
    if user is None:
        record_failure(engine, keys=keys)
        return None
    clear_failures(engine, keys=keys[:1])  # the e-mail's count; the client's keeps counting
    return start_session(engine, user=user, lifetime=lifetime)
