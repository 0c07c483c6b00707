"""Property-based requests against the app's own OpenAPI schema, on every operation that exists
when the test runs: valid and invalid data alike never get a 5xx, and every response (status,
content type, headers, body) matches what the schema documents."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from margindash.app import create_app
from tests.conftest import Tenant
from tests.security.operations import safe_settings
from tests.test_cli_e2e import free_port

# Per operation, data kind and database: ~50 operations x 2 x 2 stay around a minute in all.
EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app behind a real uvicorn on a loopback port, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def live_api(database_url: str, tmp_path: Path) -> Iterator[tuple[FastAPI, str]]:
    app = create_app(safe_settings(database_url, tmp_path))
    with served(app) as base_url:
        yield app, base_url


def modes(operation: Any) -> list[GenerationMode]:
    """Valid data always; invalid data where the operation takes any input to get wrong."""
    inputs = (operation.path_parameters, operation.query, operation.body)  # headers: auth only
    if any(len(i) for i in inputs):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def failures_of(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> str | None:
    """Run `EXAMPLES` generated requests against one operation; the first failure, if any."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    try:
        run()
    except FailureGroup as failed:  # checks failed: report them with the operation's name
        return f"{operation.label} ({mode.value}): {failed}"
    except Unsatisfiable:  # no input of this operation can be made invalid (free-form ones)
        assert mode is GenerationMode.NEGATIVE, operation.label
    return None


def test_no_server_errors_and_responses_match_the_schema(
    live_api: tuple[FastAPI, str], tenant: Tenant
) -> None:
    app, base_url = live_api
    config = schemathesis.Config.from_dict(
        {"base-url": base_url, "generation": {"with-security-parameters": False}}
    )
    schema = schemathesis.openapi.from_dict(app.openapi(), config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures = [
        failure
        for operation in operations
        for mode in modes(operation)
        if (failure := failures_of(operation, mode, tenant.admin)) is not None
    ]
    assert failures == [], "\n\n".join(failures)
