"""The bundled benchmark catalogue, the quality score and user-provided scores."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
from genai_prices.data_snapshot import get_snapshot

from margindash.simulator import (
    ATTRIBUTION,
    BenchmarkCatalogue,
    BenchmarkScore,
    ModelScores,
    load_bundled_scores,
    load_scores_csv,
    merge_catalogues,
)

HEADER = "model,benchmark,score,source,date\n"


def _score(benchmark: str, value: float) -> BenchmarkScore:
    return BenchmarkScore(
        benchmark=benchmark, score=value, source="https://example.com", date=date(2025, 1, 1)
    )


def _model(**scores: float) -> ModelScores:
    return ModelScores(
        name="m",
        scores={b.replace("_", "-"): _score(b.replace("_", "-"), v) for b, v in scores.items()},
    )


@pytest.fixture(scope="module")
def bundled() -> BenchmarkCatalogue:
    return load_bundled_scores()


def test_bundled_file_carries_the_attribution_and_snapshot() -> None:
    raw = resources.files("margindash.simulator").joinpath("data", "benchmark_scores.json")
    document = json.loads(raw.read_text(encoding="utf-8"))
    assert document["attribution"] == ATTRIBUTION == "LLM Stats (llm-stats.com), CC-BY-4.0"
    assert document["license"] == "CC-BY-4.0"
    assert len(document["source_commit"]) == 40
    date.fromisoformat(document["snapshot_date"])


def test_bundled_catalogue_loads(bundled: BenchmarkCatalogue) -> None:
    assert bundled.attribution == ATTRIBUTION
    assert len(bundled.models) > 100
    assert bundled.benchmark_names["mmlu-pro"] == "MMLU-Pro"


@pytest.mark.parametrize(
    "model_key",
    [
        "openai/gpt-4o",
        "anthropic/claude-3-5-sonnet",
        "google/gemini-1.5-pro",
        "google/gemini-2.0-flash",
        "deepseek/deepseek-reasoner",
        "deepseek/deepseek-v3.2-exp",
        "openrouter/meta-llama/llama-3.3-70b-instruct",
        "openrouter/qwen/qwen3-235b-a22b",
        "x-ai/grok-2-1212",
    ],
)
def test_well_known_models_have_gpqa_and_mmlu_pro(
    bundled: BenchmarkCatalogue, model_key: str
) -> None:
    model = bundled.get(model_key)
    assert model is not None, model_key
    assert {"gpqa", "mmlu-pro"} <= set(model.scores)
    quality = bundled.quality(model_key)
    assert quality is not None and 0 < quality < 100


def test_one_model_served_by_several_providers_shares_its_scores(
    bundled: BenchmarkCatalogue,
) -> None:
    on_groq = bundled.get("groq/llama-3.3-70b-versatile")
    on_bedrock = bundled.get("aws/meta.llama3-3-70b-instruct-v1:0")
    assert on_groq is not None and on_groq is on_bedrock
    assert on_groq.llm_stats_id == "llama-3.3-70b-instruct"


def test_every_mapped_model_id_is_in_the_genai_prices_catalogue(
    bundled: BenchmarkCatalogue,
) -> None:
    catalogue = {p.id: {m.id for m in p.models} for p in get_snapshot().providers}
    missing = []
    for key in bundled.models:
        provider_id, _, model_id = key.partition("/")
        if model_id not in catalogue.get(provider_id, set()):
            missing.append(key)
    assert missing == []


def test_first_party_ids_resolve_to_themselves_in_genai_prices(
    bundled: BenchmarkCatalogue,
) -> None:
    snapshot = get_snapshot()
    for key in ("openai/gpt-4o", "anthropic/claude-3-5-sonnet", "google/gemini-2.5-pro"):
        provider_id, _, model_id = key.partition("/")
        provider, model = snapshot.find_provider_model(model_id, None, provider_id, None)
        assert (provider.id, model.id) == (provider_id, model_id)


def test_every_score_has_a_source_a_date_and_a_0_to_100_value(
    bundled: BenchmarkCatalogue,
) -> None:
    for key, model in bundled.models.items():
        assert model.scores, key
        for benchmark, score in model.scores.items():
            assert score.benchmark == benchmark
            assert score.source.startswith("https://"), (key, benchmark)
            assert isinstance(score.date, date)
            assert 0 <= score.score <= 100
            assert score.self_reported is not None and score.verified is not None


def test_quality_is_the_weighted_mean_of_the_scores_the_model_has() -> None:
    model = _model(gpqa=60, mmlu_pro=80, humaneval=90)
    assert model.quality() == pytest.approx(70)  # default: gpqa and mmlu-pro, equal weights
    assert model.quality({"gpqa": 3, "mmlu-pro": 1}) == pytest.approx(65)  # (180 + 80) / 4
    assert model.quality({"humaneval": 1, "aime-2025": 5}) == pytest.approx(90)
    assert model.quality({"gpqa": 0, "humaneval": 2}) == pytest.approx(90)


def test_quality_is_none_without_a_weighted_score() -> None:
    assert _model(humaneval=90).quality() is None
    assert _model().quality() is None
    assert BenchmarkCatalogue(models={}).quality("openai/nope") is None


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_quality_rejects_bad_weights(weight: float) -> None:
    with pytest.raises(ValueError, match="gpqa"):
        _model(gpqa=50).quality({"gpqa": weight})


def test_user_scores_load_and_override_bundled_ones(
    tmp_path: Path, bundled: BenchmarkCatalogue
) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(
        HEADER
        + "openai/gpt-4o,gpqa,99.5,https://example.com/eval,2026-01-31\n"
        + "\n"
        + "acme/house-model,internal-eval,42,our eval,2026-02-01\n"
    )
    user = load_scores_csv(path)
    assert set(user.models) == {"openai/gpt-4o", "acme/house-model"}
    own = user.models["acme/house-model"].scores["internal-eval"]
    assert (own.score, own.source, own.date) == (42.0, "our eval", date(2026, 2, 1))

    merged = merge_catalogues(bundled, user)
    gpt_4o = merged.get("openai/gpt-4o")
    assert gpt_4o is not None
    assert gpt_4o.scores["gpqa"].score == 99.5
    assert gpt_4o.scores["mmlu-pro"] == bundled.models["openai/gpt-4o"].scores["mmlu-pro"]
    assert merged.quality("acme/house-model", {"internal-eval": 1}) == 42
    assert merged.attribution == ATTRIBUTION
    # the bundled catalogue is untouched, and so are other hosts of the same model
    assert bundled.models["openai/gpt-4o"].scores["gpqa"].score != 99.5
    assert merged.models["openrouter/openai/gpt-4o"].scores["gpqa"].score != 99.5


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("openai/gpt-4o,gpqa,high,src,2026-01-01", "line 3: score 'high' is not a number"),
        ("openai/gpt-4o,gpqa,101,src,2026-01-01", "line 3: score 101 is outside 0-100"),
        ("openai/gpt-4o,gpqa,50,src,31/01/2026", "line 3: date '31/01/2026' is not YYYY-MM-DD"),
        ("openai/gpt-4o,gpqa,50,src", "line 3: expected 5 columns, got 4"),
        ("gpt-4o,gpqa,50,src,2026-01-01", "line 3: model must be 'provider_id/model_id'"),
        ("openai/gpt-4o,,50,src,2026-01-01", "line 3: benchmark is empty"),
        ("openai/gpt-4o,gpqa,50,,2026-01-01", "line 3: source is empty"),
        ("openai/gpt-4o,mmlu-pro,50,src,2026-01-01", "line 3: duplicate score"),
    ],
)
def test_bad_csv_rows_name_their_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(HEADER + "openai/gpt-4o,mmlu-pro,70,src,2026-01-01\n" + row + "\n")
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as raised:
        load_scores_csv(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("content", ["", "model,score\nopenai/gpt-4o,1\n"])
def test_csv_without_the_expected_header_is_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="line 1: expected header"):
        load_scores_csv(path)


def test_ambiguous_genai_prices_ids_carry_the_right_model(bundled: BenchmarkCatalogue) -> None:
    expected = {
        "openai/gpt-4o": "gpt-4o-2024-08-06",
        "openai/gpt-4o-2024-05-13": "gpt-4o-2024-05-13",
        "anthropic/claude-3-5-sonnet": "claude-3-5-sonnet-20241022",
        "deepseek/deepseek-reasoner": "deepseek-r1-0528",
        "google/gemini-2.5-pro": "gemini-2.5-pro",
    }
    assert {k: getattr(bundled.get(k), "llm_stats_id", None) for k in expected} == expected
    # ids whose genai-prices rule covers several different models get no scores
    for key in ("google/gemma-3", "google/gemma-3n", "openai/gpt-3.5-turbo-instruct"):
        assert bundled.get(key) is None, key
