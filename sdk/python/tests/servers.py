"""Small loopback HTTP servers that stand in for margindash and for LLM providers in tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One request a stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Reply:
    """What a stand-in answers: JSON or raw chunks (SSE), after an optional delay."""

    status: int = 200
    json_body: Any = None
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[Request], Reply]


class StandIn:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers via `responder`."""

    def __init__(self, responder: Responder, port: int = 0) -> None:
        self.responder = responder
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                with stand_in._lock:
                    stand_in.requests.append(request)
                reply = stand_in.responder(request)
                if reply.delay:
                    time.sleep(reply.delay)
                self._write(reply)

            def _write(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunks is not None:
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in reply.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                payload = b"" if reply.json_body is None else json.dumps(reply.json_body).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the `/v1` API."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StandIn:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, path: str) -> list[Any]:
        """Parsed JSON bodies received on `path`."""
        with self._lock:
            return [r.json() for r in self.requests if r.path == path and r.body]

    def raw(self) -> bytes:
        """Every byte of every request body received, for no-prompt-text assertions."""
        with self._lock:
            return b"".join(r.body for r in self.requests)


class IngestStandIn:
    """Answers like margindash's ingest API: counters and per-event results, duplicates once."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.revenue: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        # A hook tests replace to inject failures before the normal answer.
        self.fault: Callable[[Request], Reply | None] = lambda request: None
        self.server = StandIn(self)

    @property
    def url(self) -> str:
        """Base URL of the stand-in's `/v1` API."""
        return self.server.url

    def __call__(self, request: Request) -> Reply:
        """Answer one request."""
        injected = self.fault(request)
        if injected is not None:
            return injected
        body = request.json()
        key, id_field, store = (
            ("revenue", "revenue_id", self.revenue)
            if request.path == "/v1/revenue"
            else ("events", "request_id", self.events)
        )
        results = []
        with self.lock:
            for item in body[key]:
                duplicate = item[id_field] in self.seen
                self.seen.add(item[id_field])
                if not duplicate:
                    store.append(item)
                results.append(
                    {id_field: item[id_field], "status": "duplicate" if duplicate else "accepted"}
                )
        accepted = sum(r["status"] == "accepted" for r in results)
        return Reply(
            json_body={
                "accepted": accepted,
                "duplicates": len(results) - accepted,
                "rejected": 0,
                "results": results,
            }
        )

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` distinct events arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.02)
        with self.lock:
            return list(self.events)


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sse(events: Iterator[tuple[str | None, Any]] | list[tuple[str | None, Any]]) -> list[bytes]:
    """Server-sent event frames for (event name, JSON data) pairs."""
    frames = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        prefix = f"event: {name}\n" if name else ""
        frames.append(f"{prefix}data: {text}\n\n".encode())
    return frames
