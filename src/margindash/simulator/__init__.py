"""Cost simulator: re-price real usage on other models, ranked by intelligence per dollar."""

from margindash.simulator.benchmarks import (
    ATTRIBUTION,
    DEFAULT_WEIGHTS,
    BenchmarkCatalogue,
    BenchmarkScore,
    ModelScores,
    load_bundled_scores,
    load_scores_csv,
    merge_catalogues,
)

__all__ = [
    "ATTRIBUTION",
    "DEFAULT_WEIGHTS",
    "BenchmarkCatalogue",
    "BenchmarkScore",
    "ModelScores",
    "load_bundled_scores",
    "load_scores_csv",
    "merge_catalogues",
]
