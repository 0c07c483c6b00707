"""API keys: random, shown once, stored as SHA-256 hashes, scoped `ingest` < `read` < `admin`."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from margindash.db.tables import api_keys

log = logging.getLogger(__name__)
SCOPES = ("ingest", "read", "admin")
# What each scope may do: an admin key can also read and ingest; a read key cannot ingest.
SCOPE_GRANTS = {"ingest": {"ingest"}, "read": {"read"}, "admin": {"ingest", "read", "admin"}}
_LAST_USED_RESOLUTION_S = 60.0
_CACHE_TTL_S = 10.0


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A verified key: which org it belongs to and what it may do."""

    id: str
    org_id: str
    scope: str

    def allows(self, needed: str) -> bool:
        """Whether this key's scope grants `needed`."""
        return needed in SCOPE_GRANTS[self.scope]


def hash_key(secret: str) -> str:
    """The stored form of a key. Keys carry 192 random bits, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(engine: Engine, *, org_id: str, scope: str, name: str | None = None) -> str:
    """Create a key and return its secret, which is never stored and cannot be shown again."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    secret = f"md_{scope}_{secrets.token_urlsafe(24)}"
    with engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                id=f"key_{secrets.token_hex(8)}",
                org_id=org_id,
                name=name or f"{scope} key",
                scope=scope,
                key_hash=hash_key(secret),
                key_hint=secret[-4:],
                created_at=datetime.now(UTC),
            )
        )
    return secret


def revoke_api_key(engine: Engine, *, org_id: str, key_id: str) -> bool:
    """Revoke a key of the org; False if there is no such live key."""
    with engine.begin() as conn:
        result = conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.org_id == org_id)
            .where(api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    KEY_CACHE.clear()
    return result.rowcount == 1


class KeyCache:
    """Verified keys kept briefly in memory so ingest does not read the database per request.

    A revoked key stops working within `_CACHE_TTL_S` seconds in every process.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[ApiKey | None, float]] = {}
        self._last_used_written: dict[str, float] = {}

    def clear(self) -> None:
        self._entries.clear()

    def peek(self, secret: str) -> ApiKey | Literal[False] | None:
        """The cached answer when no database work is due; False when it needs the database."""
        now = time.monotonic()
        cached = self._entries.get(hash_key(secret))
        if cached is None or cached[1] <= now:
            return False
        key = cached[0]
        if key is not None and self._touch_due(key, now):
            return False
        return key

    def _touch_due(self, key: ApiKey, now: float) -> bool:
        return now - self._last_used_written.get(key.id, -1e9) >= _LAST_USED_RESOLUTION_S

    def authenticate(self, engine: Engine, secret: str) -> ApiKey | None:
        """The key for a secret, or None if it is unknown or revoked."""
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._entries.get(digest)
        if cached is not None and cached[1] > now:
            key = cached[0]
        else:
            key = self._load(engine, digest)
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (key, now + _CACHE_TTL_S)
        if key is not None:
            self._touch(engine, key, now)
        return key

    @staticmethod
    def _load(engine: Engine, digest: str) -> ApiKey | None:
        with engine.connect() as conn:
            row = conn.execute(
                select(api_keys.c.id, api_keys.c.org_id, api_keys.c.scope).where(
                    api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
                )
            ).first()
        return ApiKey(id=row.id, org_id=row.org_id, scope=row.scope) if row else None

    def _touch(self, engine: Engine, key: ApiKey, now: float) -> None:
        # `last_used_at` is for humans; a minute's resolution keeps writes off the hot path,
        # and a failed write (database busy) must not fail the request that used the key.
        if not self._touch_due(key, now):
            return
        self._last_used_written[key.id] = now
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key.id)
                    .values(last_used_at=datetime.now(UTC))
                )
        except SQLAlchemyError:
            log.debug("could not record last use of key %s", key.id, exc_info=True)


KEY_CACHE = KeyCache()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never its secret, only its last four characters."""

    id: str
    name: str
    scope: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def list_api_keys(engine: Engine, *, org_id: str) -> list[KeyInfo]:
    """The org's keys, live ones first, newest first."""
    k = api_keys
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                k.c.id,
                k.c.name,
                k.c.scope,
                k.c.key_hint,
                k.c.created_at,
                k.c.last_used_at,
                k.c.revoked_at,
            ).where(k.c.org_id == org_id)
        ).all()
    keys = [KeyInfo(*row) for row in rows]
    return sorted(keys, key=lambda key: (key.revoked_at is not None, -key.created_at.timestamp()))
