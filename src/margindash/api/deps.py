"""What routers get injected: the services of the running app and the caller's verified key."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from margindash.api.errors import ApiError
from margindash.config import Settings
from margindash.ledger.ingest import UsageIngestor
from margindash.orgs.keys import KEY_CACHE, ApiKey
from margindash.orgs.service import Org, get_org
from margindash.pricing.service import Pricer

_ORG_TTL_S = 30.0


@dataclass
class Services:
    """Long-lived objects of one app instance."""

    settings: Settings
    engine: Engine
    pricer: Pricer
    ingestor: UsageIngestor
    _orgs: dict[str, tuple[Org, float]] = field(default_factory=dict)
    _rate: dict[str, tuple[int, int]] = field(default_factory=dict)

    def org(self, org_id: str) -> Org:
        """An org by id, cached briefly (orgs change rarely)."""
        now = time.monotonic()
        cached = self._orgs.get(org_id)
        if cached is None or cached[1] < now:
            org = get_org(self.engine, org_id)
            if org is None:
                raise ApiError(401, "unauthorized", "the API key's organisation no longer exists")
            cached = self._orgs[org_id] = (org, now + _ORG_TTL_S)
        return cached[0]

    def cached_org(self, org_id: str) -> Org | None:
        """The org if it is cached and fresh (no database access)."""
        cached = self._orgs.get(org_id)
        return cached[0] if cached is not None and cached[1] >= time.monotonic() else None

    def forget_org(self, org_id: str) -> None:
        self._orgs.pop(org_id, None)

    def check_rate(self, key: ApiKey) -> None:
        """Fixed one-minute window per key; 429 with Retry-After beyond the limit."""
        limit = self.settings.rate_limit_per_minute
        if not limit:
            return
        now = time.time()
        window = int(now // 60)
        start, count = self._rate.get(key.id, (window, 0))
        if start != window:
            start, count = window, 0
        if count >= limit:
            retry = str(max(1, int(60 - now % 60)))
            raise ApiError(
                429,
                "rate_limited",
                "too many requests for this API key",
                headers={"Retry-After": retry},
            )
        self._rate[key.id] = (start, count + 1)


async def get_services(request: Request) -> Services:
    # `async`: FastAPI runs plain `def` dependencies in a thread pool, per request.
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: its key and its org."""

    key: ApiKey
    org: Org


def _secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return secret.strip()


def _caller(services: Services, key: ApiKey | None, scope: str) -> Caller:
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"this API key lacks the `{scope}` scope")
    services.check_rate(key)
    return Caller(key, services.org(key.org_id))


def _authenticate(request: Request, services: Services, scope: str) -> Caller:
    """Verify the caller's key (may read the database: call it off the event loop)."""
    key = KEY_CACHE.authenticate(services.engine, _secret(request))
    return _caller(services, key, scope)


async def authenticate(request: Request, services: Services, scope: str) -> Caller:
    """The caller of `request` if its key has `scope` (401/403/429 otherwise)."""
    # Cached keys and orgs are answered on the event loop (a thread-pool hop per request
    # costs more than the check); anything that needs the database goes to a thread.
    key = KEY_CACHE.peek(_secret(request))
    if key is not False and (key is None or services.cached_org(key.org_id)):
        return _caller(services, key, scope)
    return await run_in_threadpool(_authenticate, request, services, scope)


def services_of(request: Request) -> Services:
    """The process's services, without going through dependency injection."""
    services: Services = request.app.state.services
    return services


def require(scope: str):  # type: ignore[no-untyped-def]
    """A dependency that authenticates the caller and checks the key's scope."""

    async def dependency(request: Request, services: ServicesDep) -> Caller:
        return await authenticate(request, services, scope)

    return Depends(dependency)


IngestCaller = Annotated[Caller, require("ingest")]
ReadCaller = Annotated[Caller, require("read")]
AdminCaller = Annotated[Caller, require("admin")]
