"""Catalogue files for the sync tests, made from a trimmed copy of a real genai-prices payload.

`fixtures/genai-prices-2026-08-21-trimmed.json` is genai-prices' published v2 data file of
2026-08-21 with six providers (209 models), descriptions and usage extractors left out.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).parent / "fixtures" / "genai-prices-2026-08-21-trimmed.json"


@cache
def _fixture() -> list[dict[str, Any]]:
    document: list[dict[str, Any]] = json.loads(FIXTURE.read_text())
    return document


def catalogue_doc() -> list[dict[str, Any]]:
    """A fresh copy of the fixture catalogue to change."""
    return copy.deepcopy(_fixture())


def _model_entry(doc: list[dict[str, Any]], provider: str, model: str) -> dict[str, Any]:
    for entry in doc:
        if entry["id"] == provider:
            for info in entry["models"]:
                if info["id"] == model:
                    found: dict[str, Any] = info
                    return found
    raise KeyError(f"{provider}:{model}")


def set_price(
    doc: list[dict[str, Any]], provider: str, model: str, key: str, value: float | str
) -> None:
    """Set one price of a model (a plain price, not conditional)."""
    prices = _model_entry(doc, provider, model)["prices"]
    assert isinstance(prices, dict), "conditional prices are not changed by this helper"
    prices[key] = value


def remove_model(doc: list[dict[str, Any]], provider: str, model: str) -> None:
    for entry in doc:
        if entry["id"] == provider:
            entry["models"] = [m for m in entry["models"] if m["id"] != model]


def add_model(
    doc: list[dict[str, Any]], provider: str, model: str, input_mtok: float, output_mtok: float
) -> None:
    for entry in doc:
        if entry["id"] == provider:
            entry["models"].append(
                {
                    "id": model,
                    "name": model,
                    "match": {"equals": model},
                    "prices": {"input_mtok": input_mtok, "output_mtok": output_mtok},
                }
            )


def encode(doc: list[dict[str, Any]]) -> bytes:
    return json.dumps(doc).encode()


@dataclass
class CatalogueServer:
    """A loopback HTTP server serving one catalogue file, replaceable between requests."""

    body: bytes = b""
    status: int = 200
    requests: int = 0
    url: str = ""
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)

    def serve(self, doc: list[dict[str, Any]] | bytes) -> None:
        self.body = doc if isinstance(doc, bytes) else encode(doc)
        self.status = 200

    def stop(self) -> None:
        """Take the server down: the port then refuses connections."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@contextmanager
def catalogue_server() -> Iterator[CatalogueServer]:
    server = CatalogueServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests += 1
            self.send_response(server.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(server.body)))
            self.end_headers()
            self.wfile.write(server.body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server._httpd = httpd
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/prices/data.json"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(5)
