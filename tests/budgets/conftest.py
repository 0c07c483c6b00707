"""Budget test fixtures: a real SMTP server and a webhook receiver on loopback, and spenders."""

from __future__ import annotations

import asyncio
import email
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.budgets.notifiers import notifiers_from
from margindash.config import Settings
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.orgs.service import Org
from margindash.pricing.service import Pricer

PUBLIC_URL = "http://dash.example.com"
# gpt-4o output is $10 per million tokens: one completion token costs exactly $0.00001.
TOKEN_USD = Decimal("0.00001")
_MAX_TOKENS = 10_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """One message as the SMTP server got it: envelope and parsed content."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        # Python folds a 70-78 character subject onto its own continuation line and keeps the
        # folding space when parsing it back; mail clients drop it, and so does this.
        return str(self.message["Subject"]).strip()

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content()).replace("\r\n", "\n")


class _Handler:
    def __init__(self, inbox: list[Received], lock: threading.Lock, relay: _Relay):
        self.inbox = inbox
        self.lock = lock
        self.relay = relay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.relay.open.is_set():
            # A slow relay: the client has sent the message and waits for the answer.
            with self.lock:
                self.relay.held += 1
            while not self.relay.open.is_set():
                await asyncio.sleep(0.01)
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.inbox.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@dataclass
class _Relay:
    """Whether messages are answered at once, and how many are waiting for an answer."""

    open: threading.Event = field(default_factory=threading.Event)
    held: int = 0

    def __post_init__(self) -> None:
        self.open.set()


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on a fixed loopback port, which a test can stop and start,
    and stall like a slow relay (`hold` ... `release`)."""

    port: int = field(default_factory=free_port)
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _relay: _Relay = field(default_factory=_Relay)
    _controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            _Handler(self.messages, self._lock, self._relay), hostname="127.0.0.1", port=self.port
        )
        self._controller.start()

    def stop(self) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def hold(self) -> None:
        """Answer no message until `release`: senders wait after sending the content."""
        self._relay.open.clear()

    def release(self) -> None:
        self._relay.open.set()

    def wait_held(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` messages have been held; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._relay.held < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._relay.held >= count

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            return list(self.messages)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def alert_settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    return mail_settings(database_url, smtp_server.port)


def mail_settings(database_url: str, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "alert_from": "margindash@example.com",
        "public_url": PUBLIC_URL,
        "alert_timeout_seconds": 5.0,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def notifiers(alert_settings: Settings) -> dict[str, Any]:
    return dict(notifiers_from(alert_settings))


class WebhookReceiver:
    """A loopback HTTP server that records JSON posts and answers with queued status codes."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.posts.append(json.loads(self.rfile.read(length)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def settle(client: TestClient, *, deliveries: bool = True) -> None:
    """Wait until the app has evaluated the budgets for every commit acknowledged so far, and
    (with `deliveries`) sent the alerts that fired.

    A request is answered as soon as its rows are committed, just before the writer runs its
    after-commit hooks; an empty job through the writer returns only after those hooks ran.
    """
    app: Any = client.app
    app.state.writer.submit([]).result(10)
    evaluator = app.state.budget_evaluator
    assert evaluator.wait_idle(10)
    if deliveries:
        assert evaluator.outbox.wait_idle(10)


def spend_events(
    amount: str | Decimal,
    *,
    prefix: str,
    customer_id: str | None = "acct_1",
    feature: str = "image_generation",
    at: datetime | None = None,
    revenue_cents: int | None = None,
) -> list[dict[str, Any]]:
    """gpt-4o events that cost exactly `amount` USD in total (a multiple of $0.00001)."""
    tokens = Decimal(amount) / TOKEN_USD
    assert tokens == tokens.to_integral_value(), amount
    remaining = int(tokens)
    events = []
    while remaining > 0 or not events:
        chunk = min(remaining, _MAX_TOKENS)
        event: dict[str, Any] = {
            "request_id": f"{prefix}-{len(events)}",
            "model_name": "gpt-4o",
            "prompt_tokens": 0,
            "completion_tokens": chunk,
            "feature": feature,
        }
        if customer_id is not None:
            event["customer_id"] = customer_id
        if at is not None:
            event["timestamp"] = at.isoformat()
        if revenue_cents is not None and not events:
            event["revenue_amount_cents"] = revenue_cents
        events.append(event)
        remaining -= chunk
    return events


def ingest(engine: Engine, org: Org, events: list[dict[str, Any]], *, strict: bool = True) -> None:
    """Store events in the caller's thread, as the CLI and the demo do (no commit hooks)."""
    settings = Settings(database_url="sqlite://", strict_token_counts=strict)
    ingestor = UsageIngestor(engine=engine, pricer=Pricer(engine), rules=event_rules(settings))
    report = ingestor.ingest_now(org=org, raw_events=events)
    assert report.count("rejected") == 0, [r.errors for r in report.results]


def midnight(day_offset: int = 0) -> datetime:
    """UTC midnight of today plus `day_offset` days."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=day_offset)
