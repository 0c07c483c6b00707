"""Quality per model for an org: bundled LLM Stats scores, the org's own scores and weights.

An org loads its own scores (`margindash benchmarks load scores.csv`), for every feature or for
one feature, and may set how benchmarks are weighed, again for every feature or one. For a
feature, scores are layered bundled < org-wide < that feature's (per model and benchmark), and the
weights are the first set found of: the request's, the feature's, the org's, the deployment's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from types import MappingProxyType

from sqlalchemy import Engine, delete, insert, select

from margindash.db.tables import benchmark_scores, benchmark_weights
from margindash.simulator.benchmarks import (
    BenchmarkCatalogue,
    BenchmarkScore,
    ModelScores,
    check_weights,
    load_bundled_scores,
    merge_catalogues,
)

ALL_FEATURES = ""


@lru_cache(maxsize=1)
def bundled_scores() -> BenchmarkCatalogue:
    """The bundled catalogue, parsed once per process (it is immutable)."""
    return load_bundled_scores()


def validate_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights as given, or ValueError: finite, >= 0, and at least one positive."""
    check_weights(weights)
    if not any(w > 0 for w in weights.values()):
        raise ValueError("weights need at least one benchmark with a positive weight")
    return {benchmark: float(weight) for benchmark, weight in weights.items()}


@dataclass(slots=True)
class QualityBook:
    """Scores and weights of one org, resolved per feature."""

    bundled: BenchmarkCatalogue
    org_scores: Mapping[str, BenchmarkCatalogue]  # feature ("" = every feature) -> scores
    org_weights: Mapping[str, Mapping[str, float]]  # feature ("" = the org's default) -> weights
    default_weights: Mapping[str, float]
    request_weights: Mapping[str, float] | None = None
    _merged: dict[str, BenchmarkCatalogue] = field(default_factory=dict)
    _qualities: dict[tuple[str, str], float | None] = field(default_factory=dict)

    @property
    def attribution(self) -> str | None:
        return self.bundled.attribution

    def catalogue(self, feature: str) -> BenchmarkCatalogue:
        """Bundled scores with the org's (all features, then this feature's) on top."""
        merged = self._merged.get(feature)
        if merged is None:
            merged = self.bundled
            for layer in (ALL_FEATURES, feature):
                if layer in self.org_scores:
                    merged = merge_catalogues(merged, self.org_scores[layer])
            self._merged[feature] = merged
        return merged

    def weights(self, feature: str) -> Mapping[str, float]:
        if self.request_weights is not None:
            return self.request_weights
        for layer in (feature, ALL_FEATURES):
            if layer in self.org_weights:
                return self.org_weights[layer]
        return self.default_weights

    def scores(self, key: str, feature: str) -> ModelScores | None:
        """A model's scores by genai-prices key; for a model outside the catalogue (a custom
        price), by its name after the provider part of an org's key (`acme/house-model`)."""
        catalogue = self.catalogue(feature)
        found = catalogue.get(key)
        if found is not None or "/" in key:
            return found
        for candidate, model in catalogue.models.items():
            if candidate.partition("/")[2] == key:
                return model
        return None

    def quality(self, key: str, feature: str) -> float | None:
        """The model's weighted mean score for a feature; None without a weighted score."""
        memo = (key, feature)
        if memo not in self._qualities:
            model = self.scores(key, feature)
            self._qualities[memo] = None if model is None else model.quality(self.weights(feature))
        return self._qualities[memo]


def load_quality_book(
    engine: Engine,
    *,
    org_id: str,
    default_weights: Mapping[str, float],
    request_weights: Mapping[str, float] | None = None,
) -> QualityBook:
    """An org's scores and weights as stored, over the bundled catalogue."""
    scores: dict[str, dict[str, dict[str, BenchmarkScore]]] = {}
    weights: dict[str, dict[str, float]] = {}
    with engine.connect() as conn:
        for row in conn.execute(
            select(benchmark_scores).where(benchmark_scores.c.org_id == org_id)
        ):
            by_model = scores.setdefault(row.feature, {}).setdefault(row.model, {})
            by_model[row.benchmark] = BenchmarkScore(
                benchmark=row.benchmark,
                score=row.score,
                source=row.source,
                date=row.published_on,
            )
        for row in conn.execute(
            select(benchmark_weights).where(benchmark_weights.c.org_id == org_id)
        ):
            weights.setdefault(row.feature, {})[row.benchmark] = row.weight
    org_scores = {
        feature: BenchmarkCatalogue(
            models=MappingProxyType(
                {
                    key: ModelScores(name=key, scores=MappingProxyType(found))
                    for key, found in models.items()
                }
            )
        )
        for feature, models in scores.items()
    }
    return QualityBook(
        bundled=bundled_scores(),
        org_scores=MappingProxyType(org_scores),
        org_weights=MappingProxyType(weights),
        default_weights=default_weights,
        request_weights=request_weights,
    )


def store_scores(
    engine: Engine,
    *,
    org_id: str,
    scores: BenchmarkCatalogue,
    feature: str | None = None,
    replace: bool = False,
) -> int:
    """Save an org's scores (one transaction); a score for the same model and benchmark is
    replaced, and with `replace` every earlier score of that feature goes. Returns the count."""
    layer = feature or ALL_FEATURES
    now = datetime.now(UTC)
    rows = [
        {
            "org_id": org_id,
            "feature": layer,
            "model": key,
            "benchmark": score.benchmark,
            "score": score.score,
            "source": score.source,
            "published_on": score.date,
            "created_at": now,
        }
        for key, model in scores.models.items()
        for score in model.scores.values()
    ]
    t = benchmark_scores
    with engine.begin() as conn:
        mine = (t.c.org_id == org_id) & (t.c.feature == layer)
        if replace:
            conn.execute(delete(t).where(mine))
        else:
            for key, model in scores.models.items():
                conn.execute(
                    delete(t).where(mine, t.c.model == key, t.c.benchmark.in_(list(model.scores)))
                )
        if rows:
            conn.execute(insert(t), rows)
    return len(rows)


def store_weights(
    engine: Engine,
    *,
    org_id: str,
    weights: Mapping[str, float] | None,
    feature: str | None = None,
) -> None:
    """Set (or with None, forget) how an org weighs benchmarks, for one feature or all."""
    layer = feature or ALL_FEATURES
    checked = None if weights is None else validate_weights(weights)
    now = datetime.now(UTC)
    t = benchmark_weights
    with engine.begin() as conn:
        conn.execute(delete(t).where(t.c.org_id == org_id, t.c.feature == layer))
        if checked:
            conn.execute(
                insert(t),
                [
                    {
                        "org_id": org_id,
                        "feature": layer,
                        "benchmark": benchmark,
                        "weight": weight,
                        "updated_at": now,
                    }
                    for benchmark, weight in checked.items()
                ],
            )
