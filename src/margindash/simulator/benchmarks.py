"""Benchmark scores per model: the bundled LLM Stats catalogue and user-provided scores.

A model is keyed by its genai-prices catalogue id, ``"<provider_id>/<model_id>"`` (for example
``"openai/gpt-4o"`` or ``"groq/llama-3.3-70b-versatile"``); one model served by several providers
has one key per provider, all carrying the same scores. Scores are on a 0-100 scale.

Quality is the weighted mean of the scores a model has, over the benchmarks with a positive
weight; benchmarks absent from the weights (including new ones from a user CSV) are ignored.
``DEFAULT_WEIGHTS`` counts GPQA Diamond and MMLU-Pro equally: they are the two scores the product
shows, hard enough not to be saturated, and the best covered (GPQA for ~9 in 10 bundled models).
Other bundled benchmarks (LiveCodeBench, SWE-bench Verified, AIME 2024/2025, MMMU, HumanEval,
IFEval, MATH, MATH-500, MMLU) are used only when named in ``weights``. Because models report
different subsets, a mean over many benchmarks favours models that report only easy ones: keep
the weights to benchmarks the compared models share.

The bundled numbers come from LLM Stats (llm-stats.com), CC-BY-4.0: show ``ATTRIBUTION`` wherever
they are shown. Regenerate with ``scripts/derive_benchmark_scores.py``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "ATTRIBUTION",
    "DEFAULT_WEIGHTS",
    "BenchmarkCatalogue",
    "BenchmarkScore",
    "ModelScores",
    "check_weights",
    "load_bundled_scores",
    "load_scores_csv",
    "merge_catalogues",
]

ATTRIBUTION = "LLM Stats (llm-stats.com), CC-BY-4.0"

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({"gpqa": 1.0, "mmlu-pro": 1.0})

_CSV_COLUMNS = ("model", "benchmark", "score", "source", "date")
_BUNDLED_FILE = "benchmark_scores.json"


@dataclass(frozen=True, slots=True)
class BenchmarkScore:
    """One published number: 0-100 score, where it comes from and when it was recorded."""

    benchmark: str
    score: float
    source: str
    date: date
    self_reported: bool | None = None
    verified: bool | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class ModelScores:
    """The scores of one model, by benchmark id."""

    name: str
    scores: Mapping[str, BenchmarkScore]
    llm_stats_id: str | None = None
    organization: str | None = None  # the maker, as LLM Stats names it ("openai", "xai", …)

    def quality(self, weights: Mapping[str, float] | None = None) -> float | None:
        """Weighted mean of the scores this model has; None when no weighted score exists."""
        weights = DEFAULT_WEIGHTS if weights is None else weights
        check_weights(weights)
        used = [(weights[b], s.score) for b, s in self.scores.items() if weights.get(b, 0) > 0]
        if not used:
            return None
        return sum(w * s for w, s in used) / sum(w for w, _ in used)


@dataclass(frozen=True, slots=True)
class BenchmarkCatalogue:
    """Scores per genai-prices model key, with the attribution they must be shown with."""

    models: Mapping[str, ModelScores]
    attribution: str | None = None
    benchmark_names: Mapping[str, str] = field(default_factory=dict)

    def get(self, model_key: str) -> ModelScores | None:
        return self.models.get(model_key)

    def quality(self, model_key: str, weights: Mapping[str, float] | None = None) -> float | None:
        """Weighted mean score of the model (see module doc); None for an unknown model."""
        model = self.models.get(model_key)
        return None if model is None else model.quality(weights)


def load_bundled_scores() -> BenchmarkCatalogue:
    """The catalogue shipped in ``margindash/simulator/data/benchmark_scores.json``."""
    text_file = resources.files("margindash.simulator").joinpath("data").joinpath(_BUNDLED_FILE)
    text = text_file.read_text(encoding="utf-8")
    return _catalogue_from_document(json.loads(text))


def load_scores_csv(path: str | Path) -> BenchmarkCatalogue:
    """User scores from a CSV with columns ``model,benchmark,score,source,date``.

    ``model`` is a genai-prices key (``provider_id/model_id``), ``score`` a number from 0 to 100
    and ``date`` an ISO date. Raises ValueError naming the line of the first bad row.
    """
    models: dict[str, dict[str, BenchmarkScore]] = {}
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) != _CSV_COLUMNS:
            raise ValueError(f"{path}: line 1: expected header {','.join(_CSV_COLUMNS)}")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            model_key, score = _score_from_row(row, where=f"{path}: line {line}")
            scores = models.setdefault(model_key, {})
            if score.benchmark in scores:
                raise ValueError(
                    f"{path}: line {line}: duplicate score for {model_key} {score.benchmark}"
                )
            scores[score.benchmark] = score
    return BenchmarkCatalogue(
        models={
            key: ModelScores(name=key, scores=MappingProxyType(scores))
            for key, scores in models.items()
        }
    )


def merge_catalogues(base: BenchmarkCatalogue, overrides: BenchmarkCatalogue) -> BenchmarkCatalogue:
    """base with overrides' scores on top: per model and benchmark, the override wins."""
    models = dict(base.models)
    for key, override in overrides.models.items():
        current = models.get(key)
        if current is None:
            models[key] = override
            continue
        models[key] = ModelScores(
            name=current.name,
            scores=MappingProxyType({**current.scores, **override.scores}),
            llm_stats_id=current.llm_stats_id,
            organization=current.organization,
        )
    return BenchmarkCatalogue(
        models=MappingProxyType(models),
        attribution=base.attribution,
        benchmark_names={**base.benchmark_names, **overrides.benchmark_names},
    )


def check_weights(weights: Mapping[str, float]) -> None:
    """Raise ValueError naming the first benchmark whose weight is not a finite number >= 0."""
    for benchmark, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight for {benchmark!r} must be a finite number >= 0")


def _score_from_row(row: list[str], *, where: str) -> tuple[str, BenchmarkScore]:
    if len(row) != len(_CSV_COLUMNS):
        raise ValueError(f"{where}: expected {len(_CSV_COLUMNS)} columns, got {len(row)}")
    model_key, benchmark, raw_score, source, raw_date = (cell.strip() for cell in row)
    provider_id, _, model_id = model_key.partition("/")
    if not provider_id or not model_id:
        raise ValueError(f"{where}: model must be 'provider_id/model_id', got {model_key!r}")
    if not benchmark:
        raise ValueError(f"{where}: benchmark is empty")
    try:
        score = float(raw_score)
    except ValueError:
        raise ValueError(f"{where}: score {raw_score!r} is not a number") from None
    if not 0 <= score <= 100:
        raise ValueError(f"{where}: score {raw_score} is outside 0-100")
    if not source:
        raise ValueError(f"{where}: source is empty")
    try:
        published = date.fromisoformat(raw_date)
    except ValueError:
        raise ValueError(f"{where}: date {raw_date!r} is not YYYY-MM-DD") from None
    return model_key, BenchmarkScore(
        benchmark=benchmark, score=score, source=source, date=published
    )


def _catalogue_from_document(document: Mapping[str, Any]) -> BenchmarkCatalogue:
    models: dict[str, ModelScores] = {}
    for llm_stats_id, entry in document["models"].items():
        model = ModelScores(
            name=entry["name"],
            llm_stats_id=llm_stats_id,
            organization=entry.get("organization"),
            scores=MappingProxyType(
                {
                    bench: BenchmarkScore(
                        benchmark=bench,
                        score=float(raw["score"]),
                        source=raw["source_url"],
                        date=date.fromisoformat(raw["date"]),
                        self_reported=raw["self_reported"],
                        verified=raw["verified"],
                        method=raw.get("method"),
                    )
                    for bench, raw in entry["scores"].items()
                }
            ),
        )
        for ref in entry["genai_prices"]:
            models[f"{ref['provider_id']}/{ref['model_id']}"] = model
    return BenchmarkCatalogue(
        models=MappingProxyType(models),
        attribution=document["attribution"],
        benchmark_names=MappingProxyType(
            {bench: meta["name"] for bench, meta in document["benchmarks"].items()}
        ),
    )
