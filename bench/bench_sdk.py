"""What the Python SDK costs the host app: `track()` in the calling thread, against a no-op call.

    .venv/bin/python bench/bench_sdk.py [--quick]

`run(quick)` returns one dict per figure (name, unit, values, baseline_name, baseline_values,
target, note), the shape `bench_simulator.run` returns. The SDK is imported from `sdk/python/src`.
Each repetition builds a fresh client whose background worker really sends: to a stand-in ingest
API in another process that accepts every batch, or to a closed port (the server down), so its
batching, JSON encoding and HTTP retries compete with the caller for the GIL as they would in an
app. Every call is timed on its own with `perf_counter_ns`, each `track()` right after a call of
a no-op function taking the same keyword arguments (the baseline, timed the same way); a figure
is the median (or 99th percentile) per repetition.
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SDK_SRC = Path(__file__).resolve().parent.parent / "sdk" / "python" / "src"
sys.path.insert(0, str(SDK_SRC))

from margindash_sdk import MarginDash  # noqa: E402  (after the path above)

TARGET_NS = 20_000.0
BASELINE = "no-op function, same keyword arguments"
_CUSTOMERS = [f"acct_{i:03d}" for i in range(100)]
_WARM_UP = 500

# A stand-in for POST /v1/usage: accepts every batch, answers like margindash, keeps alive.
STAND_IN = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        count = len(body.get("events") or body.get("revenue") or [])
        reply = json.dumps({"accepted": count, "duplicates": 0, "rejected": 0, "results": []})
        data = reply.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass(frozen=True, slots=True)
class Size:
    calls: int
    runs: int


FULL = Size(calls=20_000, runs=5)
QUICK = Size(calls=2_000, runs=2)


@dataclass(slots=True)
class Samples:
    """Per-call nanoseconds of one repetition: `track()` and the no-op baseline."""

    track: list[int]
    noop: list[int]
    sent: int
    dropped: int


def _noop(
    *, model: str, prompt_tokens: int, completion_tokens: int, customer_id: str, feature: str
) -> None:
    return None


@contextmanager
def _stand_in() -> Iterator[str]:
    """The stand-in ingest API in a child process; yields its /v1 base URL."""
    process = subprocess.Popen([sys.executable, "-c", STAND_IN], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


def _closed_port() -> str:
    """A /v1 base URL on a loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _measure(base_url: str, calls: int, *, reachable: bool) -> Samples:
    """Time `calls` track() calls, each after a no-op call, with a fresh client."""
    client = MarginDash(
        api_key="md_ingest_bench",
        base_url=base_url,
        max_queue_size=calls + _WARM_UP + 1,  # nothing dropped: every call takes the real path
        environ={},
    )
    perf, track = time.perf_counter_ns, client.track
    for _ in range(_WARM_UP):
        track(model="gpt-4o-mini", prompt_tokens=120, completion_tokens=80, customer_id="warm")
    gc.collect()
    tracked, baseline = [0] * calls, [0] * calls
    for i in range(calls):
        customer = _CUSTOMERS[i % len(_CUSTOMERS)]
        started = perf()
        _noop(
            model="gpt-4o-mini",
            prompt_tokens=120,
            completion_tokens=80,
            customer_id=customer,
            feature="summarize",
        )
        middle = perf()
        track(
            model="gpt-4o-mini",
            prompt_tokens=120,
            completion_tokens=80,
            customer_id=customer,
            feature="summarize",
        )
        tracked[i], baseline[i] = perf() - middle, middle - started
    if reachable:
        client.flush(timeout=10.0)
    stats = client.stats
    client.shutdown(timeout=0.2)
    return Samples(tracked, baseline, stats.sent, stats.dropped)


def _p99(values: list[int]) -> float:
    return statistics.quantiles(values, n=100)[98]


def _figure(name: str, runs: list[Samples], *, p99: bool, target: Any) -> dict[str, Any]:
    pick = _p99 if p99 else statistics.median
    return {
        "name": name,
        "unit": "ns",
        "values": [float(pick(r.track)) for r in runs],
        "baseline_name": BASELINE,
        "baseline_values": [float(pick(r.noop)) for r in runs],
        "target": target,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    """Time track() with the server accepting and with it down; return the figures."""
    size = QUICK if quick else FULL
    accepting: list[Samples] = []
    down: list[Samples] = []
    # The down case makes the SDK warn about network errors, on purpose.
    logging.getLogger("margindash_sdk").setLevel(logging.ERROR)
    with _stand_in() as url:
        for _ in range(size.runs):  # interleaved, so both see the same machine
            accepting.append(_measure(url, size.calls, reachable=True))
            down.append(_measure(_closed_port(), size.calls, reachable=False))
    target = {"bound": TARGET_NS, "at_least": False}
    sent = sum(r.sent for r in accepting)
    expected = size.runs * (size.calls + _WARM_UP)
    note = (
        f"{size.runs} repetitions of {size.calls:,} calls each (after {_WARM_UP} untimed), every "
        "call timed on its own; a fresh client per repetition with the default batching (100 "
        "events or 5 s). Accepting: a stand-in ingest API in another process answered every "
        f"batch ({sent:,} of {expected:,} events sent, "
        f"{sum(r.dropped for r in accepting + down)} dropped). Down: connection refused, the "
        "worker retrying with backoff while the queue grows. Python "
        f"{sys.version.split()[0]}, SDK from {SDK_SRC.relative_to(SDK_SRC.parents[2])}."
    )
    figures = [
        _figure("track(), server accepting: median", accepting, p99=False, target=target),
        _figure("track(), server down: median", down, p99=False, target=target),
        _figure("track(), server accepting: p99", accepting, p99=True, target=None),
        _figure("track(), server down: p99", down, p99=True, target=None),
    ]
    return [figure | {"note": note} for figure in figures]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: checks it works")
    args = parser.parse_args(argv)
    figures = run(args.quick)
    for figure in figures:
        median = statistics.median(figure["values"])
        base = statistics.median(figure["baseline_values"])
        met = "" if figure["target"] is None else f", target ≤ {TARGET_NS:,.0f} ns"
        print(
            f"{figure['name']}: {median:,.0f} ns (baseline {base:,.0f} ns, "
            f"{median / base:.1f}x{met})"
        )
    print(figures[0]["note"], file=sys.stderr)


if __name__ == "__main__":
    main()
