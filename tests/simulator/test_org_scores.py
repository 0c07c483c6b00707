"""An org's own scores and weights, per feature, and what they do to a simulation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.simulator.benchmarks import load_scores_csv
from margindash.simulator.quality import (
    load_quality_book,
    store_scores,
    store_weights,
    validate_weights,
)
from tests.conftest import Tenant, db_state

DEFAULT = {"gpqa": 1.0, "mmlu-pro": 1.0}


def scores_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "scores.csv"
    path.write_text("model,benchmark,score,source,date\n" + "\n".join(rows) + "\n")
    return path


def test_scores_and_weights_layer_per_feature(
    engine: Engine, tenant: Tenant, tmp_path: Path
) -> None:
    org_id = tenant.org.id
    everywhere = load_scores_csv(scores_file(tmp_path, "openai/gpt-4o,gpqa,90,our eval,2026-01-31"))
    assert store_scores(engine, org_id=org_id, scores=everywhere) == 1
    support = load_scores_csv(
        scores_file(
            tmp_path,
            "openai/gpt-4o,support-eval,80,our eval,2026-02-01",
            "mistral/ministral-8b,support-eval,78,our eval,2026-02-01",
        )
    )
    assert store_scores(engine, org_id=org_id, scores=support, feature="support") == 2
    store_weights(engine, org_id=org_id, weights={"support-eval": 1}, feature="support")

    book = load_quality_book(engine, org_id=org_id, default_weights=DEFAULT)
    bundled_mmlu = book.bundled.models["openai/gpt-4o"].scores["mmlu-pro"].score
    assert book.quality("openai/gpt-4o", "chat") == pytest.approx((90 + bundled_mmlu) / 2)
    assert book.quality("openai/gpt-4o", "support") == 80
    assert book.quality("mistral/ministral-8b", "support") == 78
    assert book.quality("mistral/ministral-8b", "chat") is None
    own = book.scores("openai/gpt-4o", "support")
    assert own is not None and own.scores["gpqa"].source == "our eval"
    assert own.scores["support-eval"].date == date(2026, 2, 1)
    # a request's weights win over the org's
    asked = load_quality_book(
        engine, org_id=org_id, default_weights=DEFAULT, request_weights={"gpqa": 1}
    )
    assert asked.quality("openai/gpt-4o", "support") == 90

    # loading again replaces the same (model, benchmark); --replace forgets the feature's rest
    again = load_scores_csv(scores_file(tmp_path, "openai/gpt-4o,support-eval,70,v2,2026-03-01"))
    store_scores(engine, org_id=org_id, scores=again, feature="support")
    book = load_quality_book(engine, org_id=org_id, default_weights=DEFAULT)
    assert book.quality("openai/gpt-4o", "support") == 70
    assert book.quality("mistral/ministral-8b", "support") == 78
    store_scores(engine, org_id=org_id, scores=again, feature="support", replace=True)
    book = load_quality_book(engine, org_id=org_id, default_weights=DEFAULT)
    assert book.quality("mistral/ministral-8b", "support") is None

    store_weights(engine, org_id=org_id, weights=None, feature="support")
    book = load_quality_book(engine, org_id=org_id, default_weights=DEFAULT)
    assert book.weights("support") == DEFAULT


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"gpqa": 0}, "at least one benchmark with a positive weight"),
        ({"gpqa": -1}, "weight for 'gpqa'"),
        ({"gpqa": float("nan")}, "weight for 'gpqa'"),
    ],
)
def test_bad_weights_are_refused_and_nothing_is_written(
    engine: Engine, tenant: Tenant, weights: dict[str, float], message: str
) -> None:
    before = db_state(engine)
    with pytest.raises(ValueError, match=message):
        validate_weights(weights)
    with pytest.raises(ValueError, match=message):
        store_weights(engine, org_id=tenant.org.id, weights=weights)
    assert db_state(engine) == before


def test_a_feature_own_eval_changes_its_recommendation(
    client: TestClient, engine: Engine, tenant: Tenant, tmp_path: Path
) -> None:
    events = [
        {
            "request_id": f"{feature}-{i}",
            "customer_id": "acme",
            "model_name": "gpt-4o",
            "feature": feature,
            "prompt_tokens": 2_000,
            "completion_tokens": 500,
            "timestamp": "2026-02-10T09:00:00Z",
        }
        for feature in ("support", "chat")
        for i in range(3)
    ]
    assert client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).status_code
    rows = (
        "openai/gpt-4o,support-eval,80,our eval,2026-02-01",
        "mistral/ministral-8b,support-eval,79,our eval,2026-02-01",
    )
    scores = load_scores_csv(scores_file(tmp_path, *rows))
    store_scores(engine, org_id=tenant.org.id, scores=scores, feature="support")
    store_weights(engine, org_id=tenant.org.id, weights={"support-eval": 1}, feature="support")

    body = client.post(
        "/v1/simulate", json={"month": "2026-02", "limit": 500}, headers=tenant.read
    ).json()
    rows_by_feature = {row["feature"]: row for row in body["rows"]}
    support, chat = rows_by_feature["support"], rows_by_feature["chat"]
    assert support["weights"] == {"support-eval": 1.0}
    assert support["quality"] == 80
    best = support["best_candidate"]
    assert (best["key"], best["quality"]) == ("mistral/ministral-8b", 79)
    # only the models the org scored have a quality under its support weights
    assert {c["key"] for c in support["candidates"]} == {"mistral/ministral-8b"}
    assert chat["weights"] == DEFAULT and chat["quality"] == 72.4
    assert chat["best_candidate"]["key"] != "mistral/ministral-8b"
