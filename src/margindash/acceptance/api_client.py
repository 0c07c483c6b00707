"""The public API over HTTP for `verify` and `reconcile`: auth, JSON, waits on 429 and 503.

Only the documented API is used, so both commands work against any margindash deployment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from margindash import __version__

# Retry-After is honoured up to this long, this many times, before the answer is returned.
_MAX_WAIT_S = 30.0
_MAX_WAITS = 3
_RETRY_STATUSES = (429, 503)


class ServerUnreachable(Exception):
    """No HTTP answer at all: connection refused, DNS, TLS or a timeout."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status and parsed JSON body (None when it was not JSON)."""

    method: str
    path: str
    status: int
    body: Any
    text: str

    @property
    def message(self) -> str:
        """The API's error sentence, or the start of the body."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("message", ""))
        return self.text[:200]

    def describe(self) -> str:
        """`POST /v1/usage answered 403: ...` with a hint for the usual key mistakes."""
        text = f"{self.method} {self.path} answered {self.status}: {self.message}"
        if self.status == 401:
            text += " (unknown API key)"
        elif self.status == 403:
            text += " (the key's scope does not allow this: use the admin `api_key` of `init`)"
        return text


def api_roots(url: str) -> tuple[str, str]:
    """(server root, `/v1` base) from a URL given with or without `/v1`."""
    root = url.strip().rstrip("/")
    root = root.removesuffix("/v1")
    if not root.startswith(("http://", "https://")):
        raise ValueError(f"--url must start with http:// or https://, got {url!r}")
    return root, f"{root}/v1"


class ApiClient:
    """A keep-alive client of one server with one API key."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.root, self.base = api_roots(url)
        self._http = httpx.Client(
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"margindash-verify/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    def health(self) -> Answer:
        """GET /healthz (outside /v1, no auth needed)."""
        return self._send("GET", self.root, "/healthz")

    def get(self, path: str, params: dict[str, str] | None = None) -> Answer:
        """GET /v1{path}."""
        return self._send("GET", self.base, path, params=params)

    def post(self, path: str, body: Any) -> Answer:
        """POST JSON to /v1{path}."""
        return self._send("POST", self.base, path, json=body)

    def delete(self, path: str) -> Answer:
        """DELETE /v1{path}."""
        return self._send("DELETE", self.base, path)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, method: str, prefix: str, path: str, **kwargs: Any) -> Answer:
        shown = path if prefix == self.root else f"/v1{path}"
        for attempt in range(_MAX_WAITS + 1):
            try:
                response = self._http.request(method, prefix + path, **kwargs)
            except httpx.HTTPError as exc:
                raise ServerUnreachable(
                    f"{method} {prefix + path}: {type(exc).__name__}: {exc}"
                ) from None
            wait = _retry_after(response)
            if response.status_code not in _RETRY_STATUSES or wait is None or attempt == _MAX_WAITS:
                return Answer(method, shown, response.status_code, _json(response), response.text)
            time.sleep(wait)
        raise AssertionError("unreachable")  # the loop always returns on its last attempt


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= _MAX_WAIT_S else None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
