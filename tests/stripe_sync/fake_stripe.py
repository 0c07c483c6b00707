"""A small stand-in for Stripe's API on loopback: the list and retrieve endpoints the sync reads,
with Stripe's cursor pagination (newest first, `starting_after`) and `created[gte]` filters."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESOURCES = ("customers", "invoices", "credit_notes", "refunds", "invoice_payments")


@dataclass
class FakeStripe:
    """Objects per resource; `fail` decides, per request, to answer 500 instead."""

    api_key: str
    page_size: int = 1
    objects: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in RESOURCES}
    )
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    fail: Callable[[str, dict[str, str]], bool] | None = None
    url: str = ""

    def add(self, resource: str, *objects: dict[str, Any]) -> None:
        self.objects[resource].extend(objects)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append((path, query))
        if self.fail is not None and self.fail(path, query):
            return 500, {"error": {"type": "api_error", "message": "Something went wrong."}}
        parts = path.strip("/").split("/")  # v1, resource, [id, [lines]]
        if len(parts) == 2 and parts[1] in self.objects:
            return 200, self._page(f"/{'/'.join(parts)}", self._filtered(parts[1], query), query)
        if len(parts) == 4 and parts[1] == "invoices" and parts[3] == "lines":
            return 200, self._page(path, self.lines.get(parts[2], []), query, newest_first=False)
        if len(parts) == 3 and parts[1] in self.objects:
            for obj in self.objects[parts[1]]:
                if obj["id"] == parts[2]:
                    return 200, obj
        return 404, {"error": {"type": "invalid_request_error", "message": f"No such {path}"}}

    def _filtered(self, resource: str, query: dict[str, str]) -> list[dict[str, Any]]:
        found = []
        for obj in self.objects[resource]:
            if "created[gte]" in query and obj["created"] < int(query["created[gte]"]):
                continue
            if "status" in query and obj.get("status") != query["status"]:
                continue
            payment = obj.get("payment") or {}
            if "payment[payment_intent]" in query and (
                payment.get("payment_intent") != query["payment[payment_intent]"]
            ):
                continue
            found.append(obj)
        return found

    def _page(
        self,
        url: str,
        items: list[dict[str, Any]],
        query: dict[str, str],
        *,
        newest_first: bool = True,
    ) -> dict[str, Any]:
        if newest_first:
            items = sorted(items, key=lambda o: (o["created"], o["id"]), reverse=True)
        start = 0
        if "starting_after" in query:
            ids = [o["id"] for o in items]
            start = ids.index(query["starting_after"]) + 1
        size = min(int(query.get("limit", 10)), self.page_size)
        page = items[start : start + size]
        return {
            "object": "list",
            "data": page,
            "has_more": start + size < len(items),
            "url": url,
        }


@contextmanager
def serve(fake: FakeStripe) -> Iterator[FakeStripe]:
    """Run the fake on 127.0.0.1 (a free port) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                status, body = (
                    401,
                    {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}},
                )
            else:
                split = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                status, body = fake.answer(split.path, query)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_fake")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
