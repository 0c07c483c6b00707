"""guarded_call against a stand-in serving the documented `GET /v1/budgets/blocklist` shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import FAST
from margindash_sdk import BudgetExceeded, MarginDash
from servers import Reply, Request, StandIn, free_port


class BlocklistStandIn:
    """Serves a blocklist with an ETag and answers 304 to a matching If-None-Match."""

    def __init__(self, blocked: list[dict[str, Any]]) -> None:
        self.blocked = blocked
        self.version = 1
        self.server = StandIn(self)

    def __call__(self, request: Request) -> Reply:
        if request.path.startswith("/v1/budgets/check?"):
            return self.check(request)
        etag = f'"v{self.version}"'
        if request.headers.get("if-none-match") == etag:
            return Reply(status=304, headers={"ETag": etag})
        return Reply(
            json_body={"version": self.version, "blocked": self.blocked}, headers={"ETag": etag}
        )

    def check(self, request: Request) -> Reply:
        # What the real server answers for `?model=`: the name events of that model are
        # booked under (the catalogue and the org's aliases decide it there).
        name = parse_qs(urlsplit(request.path).query)["model"][0]
        booked = BOOKED.get(name, name.strip().lower())
        return Reply(
            json_body={"allowed": True, "version": self.version, "blocked_by": [], "model": booked}
        )

    def gets(self) -> list[Request]:
        return [r for r in self.server.requests if r.path == "/v1/budgets/blocklist"]

    def checks(self) -> list[str]:
        return [
            parse_qs(urlsplit(r.path).query)["model"][0]
            for r in self.server.requests
            if r.path.startswith("/v1/budgets/check?")
        ]


BOOKED = {
    "gpt-4.5-preview-2025-02-27": "gpt-4.5-preview",
    "openai/gpt-4.5-preview": "gpt-4.5-preview",
    "openai/gpt-4o-mini": "gpt-4o-mini",
}


@pytest.fixture
def blocklist() -> Iterator[BlocklistStandIn]:
    stand_in = BlocklistStandIn(
        [
            {"type": "customer", "value": "over_budget"},
            {"type": "feature", "value": "image_generation"},
            {"type": "customer_feature", "value": "acme:summarize"},
            {"type": "model", "value": "gpt-4.5-preview"},
        ]
    )
    stand_in.server.start()
    yield stand_in
    stand_in.server.stop()


def client_for(url: str, **overrides: Any) -> MarginDash:
    return MarginDash(environ={}, api_key="md_ingest", base_url=url, **{**FAST, **overrides})


def test_blocked_customer_raises_before_fn_runs(blocklist: BlocklistStandIn) -> None:
    client = client_for(blocklist.server.url)
    calls: list[str] = []
    with pytest.raises(BudgetExceeded) as raised:
        client.guarded_call(calls.append, "x", customer_id="over_budget", feature="chat")
    assert calls == []
    assert (raised.value.scope_type, raised.value.value) == ("customer", "over_budget")
    assert blocklist.gets()[0].headers["authorization"] == "Bearer md_ingest"
    client.shutdown(timeout=1)


@pytest.mark.parametrize(
    ("customer", "feature", "model", "blocked_by"),
    [
        ("acme", "image_generation", None, "feature"),
        ("acme", "summarize", None, "customer_feature"),
        ("acme", "chat", "gpt-4.5-preview", "model"),
        ("acme", "chat", "gpt-4o-mini", None),
        ("other", "summarize", None, None),
    ],
)
def test_each_scope_type_blocks_only_its_calls(
    blocklist: BlocklistStandIn,
    customer: str,
    feature: str,
    model: str | None,
    blocked_by: str | None,
) -> None:
    client = client_for(blocklist.server.url)
    try:
        result = client.guarded_call(
            lambda a, b=0, **provider_args: (a + b, provider_args),
            1,
            b=2,
            customer_id=customer,
            feature=feature,
            model=model,
        )
    except BudgetExceeded as exc:
        assert exc.scope_type == blocked_by
    else:
        assert blocked_by is None and result == (3, {"model": model})
    client.shutdown(timeout=1)


@pytest.mark.parametrize(
    ("model", "asked"),
    [
        ("gpt-4.5-preview", False),
        (" GPT-4.5-Preview ", False),
        ("gpt-4.5-preview-2025-02-27", True),
        ("openai/gpt-4.5-preview", True),
    ],
)
def test_a_model_budget_blocks_every_spelling_the_server_books_as_its_model(
    blocklist: BlocklistStandIn, model: str, asked: bool
) -> None:
    client = client_for(blocklist.server.url)
    for _ in range(3):
        with pytest.raises(BudgetExceeded) as raised:
            client.guarded_call(lambda **_: None, customer_id="acme", feature="chat", model=model)
        assert (raised.value.scope_type, raised.value.value) == ("model", "gpt-4.5-preview")
    # A spelling that is not the blocked name is asked once, then remembered.
    assert blocklist.checks() == ([model] if asked else [])
    client.shutdown(timeout=1)


def test_other_models_pass_and_nothing_is_asked_without_model_budgets(
    blocklist: BlocklistStandIn,
) -> None:
    client = client_for(blocklist.server.url)
    assert client.guarded_call(lambda **kw: kw["model"], model="openai/gpt-4o-mini") == (
        "openai/gpt-4o-mini"
    )
    assert blocklist.checks() == ["openai/gpt-4o-mini"]
    client.shutdown(timeout=1)

    blocklist.blocked = [{"type": "customer", "value": "over_budget"}]
    blocklist.version = 2
    client = client_for(blocklist.server.url)
    assert client.guarded_call(lambda **_: "ok", model="openai/gpt-4.5-preview") == "ok"
    assert blocklist.checks() == ["openai/gpt-4o-mini"]  # no model budget: nothing to ask
    client.shutdown(timeout=1)


def test_without_an_answer_a_model_is_only_trimmed_and_lower_cased(
    blocklist: BlocklistStandIn,
) -> None:
    """A server that cannot answer (or an older one, which does not say) fails open for
    spellings it would have resolved, and is not asked again until the blocklist is due."""
    answer = blocklist.server.responder

    def no_check(request: Request) -> Reply:
        if request.path.startswith("/v1/budgets/check?"):
            return Reply(status=503)
        return answer(request)

    blocklist.server.responder = no_check
    client = client_for(blocklist.server.url)
    for _ in range(3):
        assert client.guarded_call(lambda **_: "ok", model="openai/gpt-4.5-preview") == "ok"
    with pytest.raises(BudgetExceeded):
        client.guarded_call(lambda **_: None, model="GPT-4.5-preview")
    asked = [r for r in blocklist.server.requests if r.path.startswith("/v1/budgets/check?")]
    assert len(asked) == 1
    client.shutdown(timeout=1)


def test_an_org_block_blocks_everything(blocklist: BlocklistStandIn) -> None:
    blocklist.blocked = [{"type": "org", "value": "org_1"}]
    client = client_for(blocklist.server.url)
    with pytest.raises(BudgetExceeded):
        client.guarded_call(lambda: None, customer_id="anyone")
    client.shutdown(timeout=1)


def test_fn_exceptions_propagate_unchanged(blocklist: BlocklistStandIn) -> None:
    client = client_for(blocklist.server.url)
    error = ValueError("provider said no")

    def fail() -> None:
        raise error

    with pytest.raises(ValueError) as raised:
        client.guarded_call(fail, customer_id="acme", feature="chat")
    assert raised.value is error
    client.shutdown(timeout=1)


def test_cached_for_the_ttl_then_revalidated_with_if_none_match(
    blocklist: BlocklistStandIn,
) -> None:
    client = client_for(blocklist.server.url, blocklist_ttl=0.2)
    for _ in range(20):
        client.guarded_call(lambda: None, customer_id="acme", feature="chat")
    assert len(blocklist.gets()) == 1
    time.sleep(0.25)
    with pytest.raises(BudgetExceeded):
        client.guarded_call(lambda: None, customer_id="over_budget")
    second = blocklist.gets()[1]
    assert second.headers["if-none-match"] == '"v1"'

    blocklist.version = 2
    blocklist.blocked = []
    time.sleep(0.25)
    assert client.guarded_call(lambda: "ok", customer_id="over_budget") == "ok"
    client.shutdown(timeout=1)


def test_fails_open_when_the_server_is_unreachable() -> None:
    client = client_for(f"http://127.0.0.1:{free_port()}/v1")
    assert client.guarded_call(lambda: "served", customer_id="over_budget") == "served"
    client.shutdown(timeout=1)


def test_fails_open_on_a_server_error(blocklist: BlocklistStandIn) -> None:
    blocklist.server.responder = lambda request: Reply(status=404)
    client = client_for(blocklist.server.url)
    assert client.guarded_call(lambda: "served", customer_id="over_budget") == "served"
    client.shutdown(timeout=1)


def test_customers_outside_the_canary_are_not_checked(blocklist: BlocklistStandIn) -> None:
    client = client_for(blocklist.server.url, rollout_customers=["someone_else"])
    assert client.guarded_call(lambda: "served", customer_id="over_budget") == "served"
    assert blocklist.gets() == []
    client.shutdown(timeout=1)
