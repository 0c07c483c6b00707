"""`margindash budgets|alerts|monitors`: the brief's budget file, listing, test e-mail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from margindash.budgets.evaluator import sweep_budgets
from margindash.budgets.notifiers import notifiers_from
from margindash.cli import app
from margindash.config import get_settings
from tests.budgets.conftest import SmtpServer, free_port, ingest, spend_events
from tests.conftest import Tenant, db_state

BRIEF_FILE = """\
budget:
  feature: image_generation
  monthly_limit: 600.00
  warning_threshold_percent: 75
  critical_threshold_percent: 90
  notify_email: eng-ops@example.com
"""


@pytest.fixture
def cli(
    database_url: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    for name, value in {
        "MARGINDASH_DATABASE_URL": database_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_STARTTLS": "false",
        "ALERT_FROM": "margindash@example.com",
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def invoke(cli: CliRunner, *args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def test_apply_the_brief_budget_file_then_list_and_delete(
    cli: CliRunner, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(BRIEF_FILE)
    assert invoke(cli, "budgets", "apply", str(path)) == (0, "created: Image Generation\n")
    assert invoke(cli, "budgets", "apply", str(path)) == (0, "unchanged: Image Generation\n")
    code, out = invoke(cli, "budgets", "list", "--json")
    assert code == 0
    [budget] = json.loads(out)["budgets"]
    assert {k: budget[k] for k in ("name", "scope", "period", "limit_usd", "thresholds")} == {
        "name": "Image Generation",
        "scope": {"type": "feature", "value": "image_generation"},
        "period": "month",
        "limit_usd": "600.00",
        "thresholds": [75, 90],
    }
    assert budget["notify"]["emails"] == ["eng-ops@example.com"]
    code, table = invoke(cli, "budgets", "list")
    assert code == 0 and "Image Generation" in table and "$600.00" in table

    path.write_text(
        "budgets:\n"
        "  - name: Chat\n    scope: {type: feature, value: chat}\n    limit_usd: '100.00'\n"
        "  - feature: image_generation\n    monthly_limit: 800\n"
    )
    assert invoke(cli, "budgets", "apply", str(path), "--prune") == (
        0,
        "created: Chat\nupdated: Image Generation\n",
    )
    assert invoke(cli, "budgets", "delete", "Chat")[0] == 0
    code, out = invoke(cli, "budgets", "list", "--json")
    assert [b["name"] for b in json.loads(out)["budgets"]] == ["Image Generation"]
    assert invoke(cli, "budgets", "delete", "Chat")[0] == 1


def test_a_bad_budget_file_names_the_field_and_writes_nothing(
    cli: CliRunner, tenant: Tenant, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "budgets:\n  - feature: chat\n    monthly_limit: 10\n"
        "  - feature: summarize\n    monthly_limit: -3\n"
    )
    before = db_state(engine)
    code, out = invoke(cli, "budgets", "apply", str(path))
    assert code == 2
    assert "budgets.1.monthly_limit" in out
    path.write_text("budget: [unclosed")
    code, out = invoke(cli, "budgets", "apply", str(path))
    assert code == 2 and "not valid YAML" in out
    assert db_state(engine) == before


def test_create_from_options_and_alerts_list(
    cli: CliRunner,
    tenant: Tenant,
    engine: Engine,
    smtp_server: SmtpServer,
) -> None:
    code, out = invoke(
        cli,
        "budgets",
        "create",
        "--customer",
        "acct_1",
        "--feature",
        "image_generation",
        "--limit",
        "50",
        "--threshold",
        "80",
        "--email",
        "ops@example.com",
        "--period",
        "week",
    )
    assert code == 0, out
    code, out = invoke(cli, "budgets", "list", "--json")
    [budget] = json.loads(out)["budgets"]
    assert budget["scope"]["value"] == "acct_1:image_generation"
    assert (budget["period"], budget["thresholds"]) == ("week", [80])
    assert invoke(cli, "budgets", "create", "--limit", "-1")[0] == 2

    ingest(engine, tenant.org, spend_events("45.00", prefix="s"))
    settings = get_settings()
    assert sweep_budgets(engine, settings=settings, notifiers=notifiers_from(settings)) == 1
    code, out = invoke(cli, "alerts", "list", "--json")
    [alert] = json.loads(out)["alerts"]
    assert alert["status"] == "delivered"
    assert alert["subject"].endswith("$45.00 of $50.00 (90%)")
    code, table = invoke(cli, "alerts", "list")
    assert code == 0 and "delivered" in table


def test_a_budget_created_past_its_thresholds_alerts_at_once(
    cli: CliRunner, tenant: Tenant, engine: Engine, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    ingest(engine, tenant.org, spend_events("460.00", prefix="s"))
    path = tmp_path / "budgets.yaml"
    path.write_text(BRIEF_FILE)
    code, out = invoke(cli, "budgets", "apply", str(path))
    assert (code, out) == (
        0,
        "created: Image Generation\n1 alert(s) fired; see `margindash alerts list`.\n",
    )
    [mail] = smtp_server.wait_for(1)
    assert mail.subject.endswith("passed 75%: $460.00 of $600.00 (76.67%)")
    assert invoke(cli, "budgets", "apply", str(path)) == (0, "unchanged: Image Generation\n")


def test_model_budgets_from_options_and_files_name_the_model_as_events_are_booked(
    cli: CliRunner, tenant: Tenant, engine: Engine, tmp_path: Path
) -> None:
    code, out = invoke(cli, "budgets", "create", "--model", "openai/gpt-4o", "--limit", "5")
    assert code == 0, out
    path = tmp_path / "budgets.yaml"
    path.write_text("budget:\n  model: GPT-4o-mini-2024-07-18\n  monthly_limit: 10\n")
    assert invoke(cli, "budgets", "apply", str(path)) == (0, "created: GPT-4o-mini-2024-07-18\n")
    ingest(engine, tenant.org, spend_events("2.00", prefix="s"))  # gpt-4o
    code, out = invoke(cli, "budgets", "list", "--json")
    listed = {b["name"]: b for b in json.loads(out)["budgets"]}
    assert {name: b["scope"]["value"] for name, b in listed.items()} == {
        "openai/gpt-4o": "gpt-4o",
        "GPT-4o-mini-2024-07-18": "gpt-4o-mini",
    }
    assert listed["openai/gpt-4o"]["spent_usd"] == "2.00"
    # Resolved the same way each time: applying the file again changes nothing.
    assert invoke(cli, "budgets", "apply", str(path)) == (
        0,
        "unchanged: GPT-4o-mini-2024-07-18\n",
    )


def test_alerts_test_email_proves_the_smtp_settings(
    cli: CliRunner, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = invoke(cli, "alerts", "test-email", "you@example.com")
    assert code == 0, out
    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["you@example.com"]
    assert mail.subject == "[margindash] Test e-mail: alert delivery works"
    monkeypatch.setenv("SMTP_PORT", str(free_port()))
    get_settings.cache_clear()
    code, out = invoke(cli, "alerts", "test-email", "you@example.com")
    assert code == 1 and "Could not send" in out and "refused" in out.lower()


def test_monitors_set_and_list(cli: CliRunner, tenant: Tenant) -> None:
    code, out = invoke(cli, "monitors", "set", "all", "--email", "ops@example.com")
    assert code == 0, out
    code, out = invoke(
        cli, "monitors", "set", "customer_daily_spike", "--threshold", "15", "--min-volume", "2"
    )
    assert code == 0 and "threshold 15, min volume $2.00" in out
    code, out = invoke(cli, "monitors", "list", "--json")
    monitors = {m["kind"]: m for m in json.loads(out)["monitors"]}
    assert monitors["customer_daily_spike"]["threshold"] == 15
    assert all(m["notify"]["emails"] == ["ops@example.com"] for m in monitors.values())
    assert invoke(cli, "monitors", "set", "weather", "--disable")[0] == 2
    code, out = invoke(cli, "monitors", "set", "customer_low_margin", "--lookback", "99")
    assert code == 2 and "lookback" in out
