"""Canary rollout: the bucket is stable across processes and languages; percent and allowlist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ClientFactory
from margindash_sdk import rollout_bucket
from servers import IngestStandIn

VECTORS = json.loads(
    (Path(__file__).parents[2] / "testdata" / "rollout_vectors.json").read_text("utf-8")
)["buckets"]
SRC = str(Path(__file__).parents[1] / "src")


def test_buckets_match_the_vectors_shared_with_the_typescript_sdk() -> None:
    assert {customer: rollout_bucket(customer) for customer in VECTORS} == VECTORS


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_buckets_are_the_same_in_another_process(hash_seed: str) -> None:
    script = (
        "import json, sys; from margindash_sdk import rollout_bucket; "
        "print(json.dumps({c: rollout_bucket(c) for c in json.load(sys.stdin)}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": SRC}
    output = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(list(VECTORS)),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert json.loads(output) == VECTORS


def test_percent_selects_that_share_of_customers(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    client = make_client(rollout_percent=5)
    included = [c for c in (f"cust_{i}" for i in range(4000)) if client.in_rollout(c)]
    assert 150 <= len(included) <= 250
    assert all(rollout_bucket(c) < 500 for c in included)
    assert not client.in_rollout(None), "unattributed events cannot be bucketed in a canary"


def test_only_customers_in_the_canary_are_sent(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    client = make_client(rollout_percent=50, rollout_customers={"vip"})
    customers = ["vip", *(f"cust_{i}" for i in range(40))]
    for customer in customers:
        client.track(model="m", prompt_tokens=1, completion_tokens=1, customer_id=customer)
    assert client.flush(timeout=5)
    sent = {e["customer_id"] for e in ingest.events}
    expected = {"vip"} | {c for c in customers if rollout_bucket(c) < 5000}
    assert sent == expected
    assert 0 < len(sent) < len(customers)


def test_an_allowlist_alone_means_only_those_customers(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    client = make_client(rollout_customers=["acct_123"])
    assert client.in_rollout("acct_123")
    assert not any(client.in_rollout(f"cust_{i}") for i in range(200))
    client.record_revenue(revenue_id="r1", customer_id="other", amount="1.00")
    client.record_revenue(revenue_id="r2", customer_id="acct_123", amount="1.00")
    assert client.flush(timeout=5)
    assert [r["customer_id"] for r in ingest.revenue] == ["acct_123"]
