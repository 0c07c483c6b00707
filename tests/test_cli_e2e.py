"""The command line and a real server over loopback HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

MARGINDASH = str(Path(sys.executable).parent / "margindash")


def run_cli(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MARGINDASH, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINDASH_")}
    env.update(MARGINDASH_DATABASE_URL=database_url, COLUMNS="200")
    return env


@pytest.fixture
def keys(cli_env: dict[str, str]) -> dict[str, str]:
    result = run_cli(cli_env, "init", "--org", "acme", "--json")
    assert result.returncode == 0, result.stderr
    created: dict[str, str] = json.loads(result.stdout)
    assert set(created) == {"org_id", "api_key", "ingest_key"}
    return created


@pytest.fixture
def server(cli_env: dict[str, str], keys: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [MARGINDASH, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"],
        env=cli_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError((tmp_path / "server.log").read_text())
        time.sleep(0.1)
    yield f"{base}/v1"
    process.terminate()
    process.wait(10)
    log.close()


def event(request_id: str, **extra: Any) -> dict[str, Any]:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return {
        "customer_id": "acct_123",
        "model_name": "gpt-4o-mini",
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "request_id": request_id,
        "timestamp": ts,
        **extra,
    }


def test_brief_flow_over_http(
    server: str, keys: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    ingest = {"Authorization": f"Bearer {keys['ingest_key']}"}
    admin = {"Authorization": f"Bearer {keys['api_key']}"}
    response = httpx.post(f"{server}/usage", json=event("req_abc123"), headers=ingest)
    assert response.status_code == 200
    assert response.json()["results"][0]["cost_usd"] == "0.000066"

    # Many clients retrying the same request at once: stored once.
    def send(_: int) -> str:
        r = httpx.post(f"{server}/usage", json=event("req_retry"), headers=ingest, timeout=30)
        return str(r.json()["results"][0]["status"])

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(send, range(32)))
    assert statuses.count("accepted") == 1 and statuses.count("duplicate") == 31

    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps([event(f"replay-{i}") for i in range(25)]))
    replayed = run_cli(
        cli_env, "replay", str(samples), "--url", server, "--api-key", keys["ingest_key"]
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "accepted 25, duplicates 0" in replayed.stdout
    again = run_cli(cli_env, "replay", str(samples))  # straight into the database
    assert "accepted 0, duplicates 25" in again.stdout

    pnl = httpx.get(f"{server}/pnl?group_by=customer", headers=admin).json()
    assert pnl["totals"]["events"] == 27
    assert pnl["totals"]["cost"] == "0.00"  # 27 x $0.000066 rounds to $0.00
    month = datetime.now(UTC).strftime("%Y-%m")
    cli_pnl = run_cli(cli_env, "pnl", "--month", month, "--by", "customer", "--format", "json")
    assert json.loads(cli_pnl.stdout)["totals"] == pnl["totals"]
    csv_pnl = run_cli(cli_env, "pnl", "--month", month, "--format", "csv")
    assert csv_pnl.stdout.splitlines()[0].startswith("key,revenue,cost,margin")

    doctor = run_cli(cli_env, "doctor")
    assert doctor.returncode == 0 and "duplicates rejected" in doctor.stdout
    metrics = httpx.get(server.removesuffix("/v1") + "/metrics").text
    assert 'margindash_usage_events_total{status="duplicate"} 31.0' in metrics

    # The key can come from a .env file, as for every other setting; the URL may leave out /v1.
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(f"MARGINDASH_API_KEY={keys['ingest_key']}\n")
    root = server.removesuffix("/v1")
    from_dotenv = run_cli(cli_env, "replay", str(samples), "--url", root, cwd=project)
    assert from_dotenv.returncode == 0, from_dotenv.stderr
    assert "accepted 0, duplicates 25" in from_dotenv.stdout


def test_unpriced_models_show_in_doctor_and_get_priced_by_alias(
    keys: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "\n".join(json.dumps(event(f"e{i}", model_name="prod-gpt4o")) for i in range(3))
    )
    assert run_cli(cli_env, "replay", str(samples)).returncode == 0
    doctor = run_cli(cli_env, "doctor").stdout
    assert "prod-gpt4o" in doctor
    alias = run_cli(cli_env, "pricing", "alias", "prod-gpt4o", "gpt-4o", "--provider", "azure")
    assert "3 events re-priced" in alias.stdout
    assert "prod-gpt4o" not in run_cli(cli_env, "doctor").stdout


def test_init_twice_and_bad_files_fail_clearly(
    keys: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    again = run_cli(cli_env, "init", "--org", "acme")
    assert again.returncode == 2 and "already exists" in again.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"request_id": "a"}\n{oops\n')
    result = run_cli(cli_env, "replay", str(broken))
    assert result.returncode == 2 and "broken.jsonl:2" in result.stderr


def test_pricing_list_shows_the_catalogue(cli_env: dict[str, str]) -> None:
    listed = run_cli(cli_env, "pricing", "list", "--provider", "openai")
    assert listed.returncode == 0 and "gpt-4o-mini" in listed.stdout
    shown = run_cli(cli_env, "pricing", "show", "gpt-4o-mini-2024-07-18", "--org", "none")
    assert shown.returncode == 1  # no such org yet
