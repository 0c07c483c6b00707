"""`margindash reconcile` against a real server's API and its database: the ±5% gate per request
and per customer, a configurable tolerance, and bad files that name their line."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from margindash.acceptance.estimates import BadEstimates, read_estimates
from tests.acceptance.conftest import Deployment, deployment_on
from tests.test_cli_e2e import MARGINDASH

# gpt-4o output is $10 per million tokens: 100,000 completion tokens cost exactly $1.00.
EVENTS = {"rc-alpha-0": ("rc-alpha", 60_000), "rc-alpha-1": ("rc-alpha", 40_000)}
EVENTS["rc-beta-0"] = ("rc-beta", 250_000)
REVENUE = {"rc-alpha": "3.00", "rc-beta": "5.00"}  # costs: alpha $1.00, beta $2.50


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def seed(deployment: Deployment) -> None:
    """The known usage and revenue (idempotent: ids make a second call a no-op)."""
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "request_id": request_id,
            "customer_id": customer,
            "model_name": "gpt-4o",
            "prompt_tokens": 0,
            "completion_tokens": tokens,
            "timestamp": now,
        }
        for request_id, (customer, tokens) in EVENTS.items()
    ]
    sent = httpx.post(f"{deployment.url}/usage", json={"events": events}, headers=deployment.ingest)
    assert sent.status_code == 200 and sent.json()["rejected"] == 0, sent.text
    revenue = [
        {"revenue_id": f"{c}-rev", "customer_id": c, "amount": a, "month": month()}
        for c, a in REVENUE.items()
    ]
    posted = httpx.post(
        f"{deployment.url}/revenue", json={"revenue": revenue}, headers=deployment.ingest
    )
    assert posted.status_code == 200 and posted.json()["rejected"] == 0, posted.text


def write(tmp_path: Path, text: str, name: str = "local.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def reconcile(deployment: Deployment, path: Path, source: str, *args: str) -> Any:
    where = (
        ["--url", deployment.server.url, "--api-key", deployment.keys["api_key"]]
        if source == "url"
        else ["--org", "acme"]
    )
    return deployment.cli("reconcile", str(path), *where, *args)


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout, result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    return body


# The API path is the same whatever the server's database; the database path is not.
@pytest.mark.parametrize(
    ("backend", "source"), [("sqlite", "url"), ("sqlite", "org"), ("postgresql", "org")]
)
def test_estimates_within_tolerance_pass(
    request: pytest.FixtureRequest, backend: str, source: str, tmp_path: Path
) -> None:
    deployment = deployment_on(request, backend)
    seed(deployment)
    customers = write(
        tmp_path, "customer_id,cost_usd,revenue_usd\nrc-alpha,1.03,3.00\nrc-beta,2.45,5.00\n"
    )
    result = reconcile(deployment, customers, source, "--month", month(), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    body = as_json(result)
    assert (body["kind"], body["within"], body["lines_outside"]) == ("customer", True, 0)
    alpha, beta = body["lines"]
    assert (alpha["line"], alpha["key"]) == (2, "rc-alpha")
    assert alpha["cost"] == {
        "local": "1.03",
        "margindash": "1.00",
        "diff_pct": -2.91,
        "within": True,
    }
    assert (alpha["revenue"]["diff_pct"], alpha["margin"]["diff_pct"]) == (0.0, 1.52)
    assert (beta["cost"]["diff_pct"], beta["margin"]["diff_pct"]) == (2.04, -1.96)
    assert body["totals"]["cost"]["margindash"] == "3.50"

    requests = write(
        tmp_path, "request_id,cost_usd\nrc-alpha-0,0.61\nrc-alpha-1,0.40\nrc-beta-0,2.5\n"
    )
    result = reconcile(deployment, requests, source, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    body = as_json(result)
    assert [line["cost"]["diff_pct"] for line in body["lines"]] == [-1.64, 0.0, 0.0]
    assert body["totals"]["cost"] == {
        "local": "3.51",
        "margindash": "3.50",
        "diff_pct": -0.28,
        "within": True,
    }


def test_a_customer_outside_tolerance_fails_the_gate(
    sqlite_deployment: Deployment, tmp_path: Path
) -> None:
    seed(sqlite_deployment)
    path = write(tmp_path, "customer_id,cost_usd\nrc-alpha,1.10\nrc-beta,2.50\n")
    result = reconcile(sqlite_deployment, path, "url", "--month", month())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "-9.09%" in result.stdout
    assert "Outside the ±5% gate: 1 of 2 lines." in result.stdout
    wider = reconcile(sqlite_deployment, path, "url", "--month", month(), "--tolerance-pct", "10")
    assert wider.returncode == 0, wider.stdout
    assert "Within the ±10% gate: every line and the total." in wider.stdout


def test_requests_margindash_lacks_fail_their_line_and_the_total(
    sqlite_deployment: Deployment, tmp_path: Path
) -> None:
    seed(sqlite_deployment)
    path = write(tmp_path, "request_id,cost_usd\nrc-alpha-0,0.60\nrc-nowhere-1,0.60\n")
    result = reconcile(sqlite_deployment, path, "org", "--json")
    assert result.returncode == 1
    body = as_json(result)
    found, missing = body["lines"]
    assert found["within"] is True
    assert (missing["line"], missing["within"], missing["note"]) == (
        3,
        False,
        "not found in margindash",
    )
    assert missing["cost"]["margindash"] is None
    assert body["totals"]["cost"]["diff_pct"] == -50.0


def test_a_refused_key_is_a_clear_error(sqlite_deployment: Deployment, tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,cost_usd\nrc-alpha,1.00\n")
    result = sqlite_deployment.cli(
        "reconcile", str(path), "--url", sqlite_deployment.url, "--api-key", "md_nope"
    )
    assert result.returncode == 2
    assert "GET /v1/pnl answered 401" in result.stderr
    assert "(unknown API key)" in result.stderr


BAD_FILES = [
    ("customer,cost\nrc,1\n", 1, "header is 'customer,cost'; expected request_id,cost_usd or"),
    ("request_id,cost_usd\nr1,0.1\nr2,abc\n", 3, "cost_usd 'abc' is not a decimal amount"),
    ("request_id,cost_usd\nr1,NaN\n", 2, "cost_usd 'NaN' is not a decimal amount"),
    ("customer_id,cost_usd,revenue_usd\na,1,2\nb,1\n", 3, "2 fields, expected 3"),
    ("request_id,cost_usd\nr1,0.1\n\nr1,0.2\n", 4, "request_id 'r1' again (first on line 2)"),
    ("request_id,cost_usd\nr1,-0.1\n", 2, "cost_usd '-0.1' is negative"),
    ("customer_id,cost_usd,revenue_usd\n,1,2\n", 2, "customer_id must be 1 to 255 characters"),
    ("customer_id,cost_usd,cost_usd\na,1,2\n", 1, "header is 'customer_id,cost_usd,cost_usd'"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_a_bad_line_is_named(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BadEstimates) as raised:
        read_estimates(path)
    assert str(raised.value).startswith(f"{path}:{line}: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty file"), ("request_id,cost_usd\n\n", "no estimates after the header")],
)
def test_a_file_without_estimates_says_so(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BadEstimates, match=message):
        read_estimates(path)


def test_the_command_exits_2_naming_the_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, "customer_id,cost_usd\nrc-alpha,1.00\nrc-beta,1,00\n")
    result = subprocess.run(
        [MARGINDASH, "reconcile", str(path), "--url", "http://127.0.0.1:9", "--api-key", "k"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "300"},
        check=False,
    )
    assert result.returncode == 2
    assert f"{path}:3: 3 fields, expected 2 (customer_id,cost_usd)" in result.stderr
    assert not result.stdout
