"""Client threads that send usage events the way a careful SDK does: retry until a 2xx."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import httpx

from tests.test_cli_e2e import event

_RETRY_PAUSE_S = 0.05


class RetryingSender(threading.Thread):
    """Sends one event per request for each id, in order, retrying failures until `deadline`.

    Records the status of each id's 2xx answer, how often each id failed first, and any answer
    that is neither a 2xx nor a 503 (which a fault must never produce).
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        request_ids: Sequence[str],
        *,
        deadline: float,
    ):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.headers = headers
        self.request_ids = list(request_ids)
        self.deadline = deadline
        self.lock = threading.Lock()
        self.acked: dict[str, str] = {}  # request_id -> status of its 2xx answer
        self.failures: Counter[str] = Counter()  # request_id -> failed attempts before it
        self.unexpected: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=10) as client:
            for request_id in self.request_ids:
                while time.monotonic() < self.deadline and not self._send(client, request_id):
                    time.sleep(_RETRY_PAUSE_S)

    def _send(self, client: httpx.Client, request_id: str) -> bool:
        try:
            response = client.post("/v1/usage", json=event(request_id))
        except httpx.TransportError:
            response = None
        with self.lock:
            if response is not None and response.status_code == 200:
                self.acked[request_id] = response.json()["results"][0]["status"]
                return True
            self.failures[request_id] += 1
            if response is not None and not (
                response.status_code == 503 and response.headers.get("retry-after", "").isdigit()
            ):
                self.unexpected.append(f"{response.status_code} {response.text[:300]}")
            return False

    def acked_now(self) -> dict[str, str]:
        with self.lock:
            return dict(self.acked)


def run_senders(senders: Sequence[RetryingSender]) -> None:
    for sender in senders:
        sender.start()


def join_senders(senders: Sequence[RetryingSender]) -> None:
    for sender in senders:
        sender.join(max(0.0, sender.deadline - time.monotonic()) + 15)
        assert not sender.is_alive(), "a client thread outlived its deadline"
