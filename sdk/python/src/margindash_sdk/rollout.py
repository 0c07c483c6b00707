"""Canary rollout: a stable, cross-language bucket per customer id."""

from __future__ import annotations

import hashlib
from functools import lru_cache

BUCKETS = 10_000


@lru_cache(maxsize=65_536)
def rollout_bucket(customer_id: str) -> int:
    """Bucket 0-9999 from the first 4 bytes of sha256(customer_id); the TypeScript SDK agrees."""
    digest = hashlib.sha256(customer_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % BUCKETS


def in_rollout(customer_id: str | None, *, percent: float, allowlist: frozenset[str]) -> bool:
    """Whether events for this customer are sent under the current canary settings."""
    if percent >= 100.0:
        return True
    if customer_id is None:
        return False
    if customer_id in allowlist:
        return True
    return rollout_bucket(customer_id) < percent * (BUCKETS // 100)
