"""`margindash verify` against a real server: a healthy one passes every line; one that
miscounts, lacks the budgets API, cannot send e-mail or refuses the key fails the right line."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from margindash.acceptance.api_client import ApiClient
from margindash.acceptance.verify import LINES, VerifyReport, new_plan, run_verification
from tests.acceptance.conftest import Deployment, deployment_on
from tests.acceptance.tamper import Rewrite, TamperingTransport
from tests.test_cli_e2e import free_port

KEYS = [line.key for line in LINES]
BUDGET_LINES = ("budget_alert", "budget_email", "budget_deleted")


def test_every_line_is_on_the_checklist_page() -> None:
    page = (Path(__file__).parents[2] / "docs" / "acceptance-checklist.md").read_text()
    for line in LINES:
        assert f"`{line.key}`" in page, f"{line.key} missing from docs/acceptance-checklist.md"


def verify_json(deployment: Deployment, *args: str) -> tuple[int, dict[str, Any]]:
    result = deployment.cli("verify", "--json", *args)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def admin_args(deployment: Deployment) -> list[str]:
    return ["--url", deployment.server.url, "--api-key", deployment.keys["api_key"]]


def statuses(report: dict[str, Any] | VerifyReport) -> dict[str, str]:
    lines = report.as_json()["lines"] if isinstance(report, VerifyReport) else report["lines"]
    return {line["key"]: line["status"] for line in lines}


def healthy(deployment: Deployment, **overrides: str) -> dict[str, str]:
    """The statuses of a run against this server when nothing is wrong."""
    budget = "pass" if deployment.budgets_api() else "not available"
    expected = {key: budget if key in BUDGET_LINES else "pass" for key in KEYS}
    return expected | overrides


def detail(report: dict[str, Any] | VerifyReport, key: str) -> str:
    lines = report.as_json()["lines"] if isinstance(report, VerifyReport) else report["lines"]
    return str(next(line["detail"] for line in lines if line["key"] == key))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_healthy_server_passes_every_line(request: pytest.FixtureRequest, backend: str) -> None:
    deployment = deployment_on(request, backend)
    mails_before = len(deployment.smtp.messages)
    code, report = verify_json(deployment, *admin_args(deployment), "--alert-email", "ops@ex.com")
    assert list(statuses(report)) == KEYS
    assert statuses(report) == healthy(deployment), report
    assert code == 0 and report["passed"] is True
    customer = report["customer_id"]
    assert customer.startswith("md-verify-")
    assert "revenue $1.00, cost $0.07, margin $0.93 (92.65%), 10 events" in detail(report, "pnl")
    pnl = deployment.get("/pnl", group_by="customer", customer_id=customer).json()
    assert [row["key"] for row in pnl["rows"]] == [customer]
    if deployment.budgets_api():
        received = deployment.smtp.wait_for(mails_before + 1)[mails_before:]
        mails = [m for m in received if customer in m.subject]
        assert len(mails) == 1 and mails[0].rcpt_tos == ["ops@ex.com"]
        assert "passed 90%" in mails[0].subject
        left = deployment.get("/budgets").json()["budgets"]
        assert not [b for b in left if customer in b["name"]]


def test_prints_each_line_and_the_verdict(sqlite_deployment: Deployment) -> None:
    result = sqlite_deployment.cli(
        "verify", *admin_args(sqlite_deployment), "--events", "2", "--model", "gpt-4o-mini"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for line in LINES:
        assert line.title in result.stdout
    assert "Verifying http://127.0.0.1:" in result.stdout
    assert f"All {len(LINES)} lines passed" in result.stdout or "not available" in result.stdout


def _add_a_cent_to_cost(request: httpx.Request, body: Any) -> Any:
    for row in body["rows"]:
        row["cost"] = str(Decimal(row["cost"]) + Decimal("0.01"))
    return body


def _stored_cost_of_first_event(request: httpx.Request, body: Any) -> Any:
    if request.method == "GET" and body["request_id"].endswith("-usage-0"):
        body["cost_usd"] = "0.0061"
    return body


def _dry_run_discount(request: httpx.Request, body: Any) -> Any:
    body["results"][1]["cost_usd"] = "0.0062"
    return body


@pytest.mark.parametrize(
    ("path", "rewrite", "line", "message"),
    [
        ("/v1/pnl", _add_a_cent_to_cost, "pnl", "cost: expected 0.07, server says 0.08"),
        (
            "/v1/usage/md-verify-",
            _stored_cost_of_first_event,
            "stored",
            "-usage-0: stored cost $0.0061, ingest answered $0.006",
        ),
        (
            "/v1/usage/dry-run",
            _dry_run_discount,
            "dry_run",
            "-dry-1: dry run $0.0062, ingest $0.0063 for the same tokens",
        ),
    ],
)
def test_a_tampered_answer_fails_its_line_with_a_clear_message(
    sqlite_deployment: Deployment, path: str, rewrite: Rewrite, line: str, message: str
) -> None:
    report = run_against(sqlite_deployment, TamperingTransport(rewrites={path: rewrite}))
    assert statuses(report) == healthy(sqlite_deployment, **{line: "fail"})
    assert message in detail(report, line)
    assert report.passed is False


def test_a_server_without_budgets_reports_them_not_available(
    sqlite_deployment: Deployment,
) -> None:
    report = run_against(sqlite_deployment, TamperingTransport(missing=("/v1/budgets",)))
    expected = {key: "not available" if key in BUDGET_LINES else "pass" for key in KEYS}
    assert statuses(report) == expected
    assert "not available on this server" in detail(report, "budget_alert")
    assert report.passed is True


def test_an_undelivered_email_fails_and_the_budget_is_still_deleted(
    sqlite_deployment: Deployment,
) -> None:
    if not sqlite_deployment.budgets_api():
        pytest.fail("the budgets API is part of this server; this test needs it")
    sqlite_deployment.smtp.stop()
    try:
        code, report = verify_json(sqlite_deployment, *admin_args(sqlite_deployment))
    finally:
        sqlite_deployment.smtp.start()
    assert code == 1 and report["passed"] is False
    assert statuses(report) == healthy(sqlite_deployment, budget_email="fail")
    message = detail(report, "budget_email")
    assert "e-mail to margindash-verify@example.com failed after 1 attempt(s)" in message
    assert "check the server's SMTP_* settings" in message


def test_an_ingest_key_fails_where_it_lacks_the_scope(sqlite_deployment: Deployment) -> None:
    code, report = verify_json(
        sqlite_deployment,
        "--url",
        sqlite_deployment.url,
        "--api-key",
        sqlite_deployment.keys["ingest_key"],
    )
    assert code == 1
    found = statuses(report)
    assert (found["health"], found["ingest"], found["stored"]) == ("pass", "pass", "fail")
    assert "answered 403" in detail(report, "stored")
    assert "use the admin `api_key`" in detail(report, "stored")


def test_no_server_fails_health_and_skips_the_rest(sqlite_deployment: Deployment) -> None:
    code, report = verify_json(
        sqlite_deployment, "--url", f"http://127.0.0.1:{free_port()}", "--api-key", "md_x"
    )
    assert code == 1
    assert statuses(report) == {key: "fail" if key == "health" else "skipped" for key in KEYS}
    assert "no answer from the server" in detail(report, "health")
    assert "needs “Server healthy (GET /healthz)”" in detail(report, "ingest")


def run_against(deployment: Deployment, transport: httpx.BaseTransport) -> VerifyReport:
    api = ApiClient(url=deployment.url, api_key=deployment.keys["api_key"], transport=transport)
    with api:
        return run_verification(api=api, plan=new_plan(alert_timeout=20.0))
