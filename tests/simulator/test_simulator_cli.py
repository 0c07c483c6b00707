"""`margindash simulate` and `margindash benchmarks …` as a user runs them (real processes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.conftest import db_state
from tests.test_cli_e2e import run_cli


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINDASH_")}
    env.update(MARGINDASH_DATABASE_URL=database_url, COLUMNS="240")
    assert run_cli(env, "init", "--org", "acme", "--json").returncode == 0
    events = [
        {
            "request_id": f"{feature}-{i}",
            "customer_id": f"cust-{i % 2}",
            "model_name": "gpt-4o",
            "feature": feature,
            "prompt_tokens": 10_000,
            "completion_tokens": 2_000,
            "cached_tokens": 4_000,
            "timestamp": "2026-02-14T15:04:05Z",
        }
        for feature in ("summarize", "translate")
        for i in range(4)
    ]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    replayed = run_cli(env, "replay", str(path))
    assert replayed.returncode == 0, replayed.stderr
    return env


def test_simulate_prints_the_brief_table_and_json(env: dict[str, str]) -> None:
    month = ("--month", "2026-02", "--candidate", "gpt-4o-mini", "--max-quality-drop-pct", "50")
    shown = run_cli(env, "simulate", *month)
    assert shown.returncode == 0, shown.stderr
    for header in ("Current model", "Events", "Cost", "Simulated cost", "Savings ($)"):
        assert header in shown.stdout
    # 4 calls: 24,000 uncached, 16,000 cached, 8,000 out on gpt-4o = $0.06 + $0.02 + $0.08
    assert "summarize / gpt-4o" in shown.stdout
    assert "$0.16" in shown.stdout and "$0.15" in shown.stdout and "94.0%" in shown.stdout
    assert "openai:gpt-4o-mini (40.2)" in shown.stdout
    assert "LLM Stats (llm-stats.com), CC-BY-4.0" in shown.stdout

    priced = run_cli(
        env,
        "simulate",
        *month,
        "--migration-hours",
        "4",
        "--hourly-rate",
        "150",
        "--format",
        "json",
    )
    assert priced.returncode == 0, priced.stderr
    body = json.loads(priced.stdout)
    row = next(r for r in body["rows"] if r["feature"] == "summarize")
    assert (row["cost"], row["simulated_cost"]) == ("0.16", "0.0096")
    assert body["roi"]["migration_cost"] == "1200.00"  # 2 swaps x 4 h x $150


def test_simulate_bad_options_fail_with_the_field(env: dict[str, str]) -> None:
    bad = run_cli(env, "simulate", "--month", "2026-02", "--candidate", "no-such-model")
    assert bad.returncode == 2
    assert "candidates.0" in bad.stderr
    worse = run_cli(env, "simulate", "--max-quality-drop-pct", "500")
    assert worse.returncode == 2 and "max_quality_drop_pct" in worse.stderr


def test_benchmarks_load_weights_and_list(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(
        "model,benchmark,score,source,date\n"
        "openai/gpt-4o,support-eval,80,our eval,2026-02-01\n"
        "mistral/ministral-8b,support-eval,79,our eval,2026-02-01\n"
    )
    loaded = run_cli(env, "benchmarks", "load", str(path), "--feature", "summarize")
    assert loaded.returncode == 0, loaded.stderr
    assert "Loaded 2 scores for 2 models (feature 'summarize')" in loaded.stdout
    weights = run_cli(env, "benchmarks", "weights", "support-eval=1", "--feature", "summarize")
    assert weights.returncode == 0, weights.stderr
    assert "support-eval=1" in weights.stdout
    listed = run_cli(env, "benchmarks", "list", "--feature", "summarize")
    assert "mistral/ministral-8b" in listed.stdout and "79.0" in listed.stdout
    assert "LLM Stats (llm-stats.com), CC-BY-4.0" in listed.stdout
    body = json.loads(run_cli(env, "simulate", "--month", "2026-02", "--format", "json").stdout)
    best = {r["feature"]: r["best_candidate"] for r in body["rows"]}
    assert best["summarize"]["key"] == "mistral/ministral-8b"
    assert best["translate"] is None or best["translate"]["key"] != "mistral/ministral-8b"


def test_a_bad_scores_file_writes_nothing(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    from margindash.db.engine import make_engine

    engine: Engine = make_engine(database_url)
    before = db_state(engine)
    path = tmp_path / "scores.csv"
    path.write_text(
        "model,benchmark,score,source,date\n"
        "openai/gpt-4o,support-eval,80,our eval,2026-02-01\n"
        "openai/gpt-4o-mini,support-eval,180,our eval,2026-02-01\n"
    )
    failed = run_cli(env, "benchmarks", "load", str(path))
    assert failed.returncode == 2
    assert "line 3: score 180 is outside 0-100" in failed.stderr
    bad_weight = run_cli(env, "benchmarks", "weights", "gpqa=-1")
    assert bad_weight.returncode == 2 and "gpqa" in bad_weight.stderr
    assert db_state(engine) == before
    engine.dispose()
