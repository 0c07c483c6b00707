"""An HTTP transport that passes requests to the real server and alters chosen answers: a
server that miscounts, or one without an endpoint, as verify would meet it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

Rewrite = Callable[[httpx.Request, Any], Any]


class TamperingTransport(httpx.HTTPTransport):
    """Rewrites the JSON body of answers to paths in `rewrites`; `missing` paths answer 404."""

    def __init__(
        self,
        *,
        rewrites: dict[str, Rewrite] | None = None,
        missing: tuple[str, ...] = (),
    ):
        super().__init__()
        self.rewrites = rewrites or {}
        self.missing = missing

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.missing and path.startswith(self.missing):
            return httpx.Response(404, json={"detail": "Not Found"})
        response = super().handle_request(request)
        rewrite = next((r for prefix, r in self.rewrites.items() if path.startswith(prefix)), None)
        if rewrite is None or response.status_code != 200:
            return response
        response.read()
        return httpx.Response(200, json=rewrite(request, response.json()))
