"""The load generator: a second process that sends HTTP/1.1 over loopback and prints JSON.

A minimal keep-alive client on asyncio protocols (uvloop when installed) so the generator costs
far less CPU than the server it measures; a general client such as httpx would cap the no-op
baseline on a small machine. Two modes, both bounded in time and in request count:

- closed: `--concurrency` connections each send the next request when the last one answered;
  gives throughput.
- open: requests are scheduled at `--rate` per second whether or not earlier ones finished;
  latency is measured from the scheduled time, so a stalled server cannot hide its queueing
  (no coordinated omission).

Usage: python bench/loadgen.py '{"port": 8000, "body": "single", ...}'  (see `Spec`).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import cast

import orjson
from workload import batch_template, single_event_template

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_DRAIN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Spec:
    """One load run (JSON on the command line)."""

    port: int
    path: str = "/v1/usage"
    body: str = "single"  # single | batch | none (GET)
    batch_size: int = 1000
    api_key: str = ""
    mode: str = "closed"  # closed | open
    concurrency: int = 32
    rate: float = 0.0  # open mode: requests per second
    duration_s: float = 5.0
    warmup_s: float = 1.0
    max_requests: int = 1_000_000
    prefix: str = "r"


@dataclass(slots=True)
class Result:
    """What one run measured; latencies in milliseconds."""

    requests: int = 0
    ok: int = 0
    ok_total: int = 0  # including warm-up, to check what the server stored
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    elapsed_s: float = 0.0
    throughput: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    max_dispatch_lag_ms: float = 0.0
    generator_cpu_s: float = 0.0  # this process's CPU time, to show it was not the bottleneck
    wall_s: float = 0.0


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.expected = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    def _complete(self) -> None:
        if self.waiter is None:
            return
        if self.expected < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            match = _CONTENT_LENGTH.search(self.buffer, 0, end + 2)
            if match is None:
                self.waiter.set_exception(ValueError("response without content-length"))
                return
            self.expected = end + 4 + int(match.group(1))
        if len(self.buffer) >= self.expected:
            status = int(self.buffer[9:12])
            del self.buffer[: self.expected]
            self.expected = -1
            waiter, self.waiter = self.waiter, None
            waiter.set_result(status)

    async def send(self, request: bytes) -> int:
        """Send one request and wait for its status code."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class Requests:
    """Request bytes with unique request ids (ids carry the prefix and a counter)."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.counter = 0
        self.singles = [single_event_template(i) for i in range(16)]
        self.batch = batch_template(spec.batch_size) if spec.body == "batch" else b""
        method = "GET" if spec.body == "none" else "POST"
        self.head = (
            f"{method} {spec.path} HTTP/1.1\r\nHost: 127.0.0.1:{spec.port}\r\n"
            + (f"Authorization: Bearer {spec.api_key}\r\n" if spec.api_key else "")
        ).encode()

    def next(self) -> bytes:
        n = self.counter = self.counter + 1
        rid = f"{self.spec.prefix}-{n}".encode()
        if self.spec.body == "none":
            return self.head + b"\r\n"
        if self.spec.body == "batch":
            body = self.batch % {b"b": rid}
        else:
            body = self.singles[n % len(self.singles)] % (rid, n % 10_000)
        return b"%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            self.head,
            len(body),
            body,
        )


class Recorder:
    """Latencies and statuses of the measured window (warm-up requests are not recorded)."""

    def __init__(self) -> None:
        self.recording = False
        self.latencies_ns: list[int] = []
        self.statuses: Counter[int] = Counter()
        self.ok_total = 0
        self.errors = 0

    def record(self, status: int, latency_ns: int) -> None:
        if 200 <= status < 300:
            self.ok_total += 1
        if self.recording:
            self.latencies_ns.append(latency_ns)
            self.statuses[status] += 1

    def error(self) -> None:
        if self.recording:
            self.errors += 1


async def connect(port: int, count: int) -> list[Connection]:
    loop = asyncio.get_running_loop()
    made = [await loop.create_connection(Connection, "127.0.0.1", port) for _ in range(count)]
    return [protocol for _transport, protocol in made]


async def run_closed(spec: Spec, requests: Requests, recorder: Recorder) -> float:
    """Each connection sends back to back; returns the measured window's length."""
    connections = await connect(spec.port, spec.concurrency)
    started = time.perf_counter()
    measure_from = started + spec.warmup_s
    stop_at = measure_from + spec.duration_s

    async def worker(connection: Connection) -> None:
        while time.perf_counter() < stop_at and len(recorder.latencies_ns) < spec.max_requests:
            if not recorder.recording and time.perf_counter() >= measure_from:
                recorder.recording = True
            sent = time.perf_counter_ns()
            try:
                status = await connection.send(requests.next())
            except (OSError, ValueError):
                recorder.error()
                return
            recorder.record(status, time.perf_counter_ns() - sent)

    await asyncio.gather(*(worker(c) for c in connections))
    _close(connections)
    return time.perf_counter() - max(measure_from, started)


async def run_open(spec: Spec, requests: Requests, recorder: Recorder) -> tuple[float, float]:
    """Send at a fixed rate from a pool of connections; returns window and worst dispatch lag."""
    connections = await connect(spec.port, spec.concurrency)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        pool.put_nowait(connection)
    tasks: set[asyncio.Task[None]] = set()
    worst_lag = 0.0

    async def one(scheduled_ns: int, measured: bool) -> None:
        connection = await pool.get()
        try:
            status = await connection.send(requests.next())
        except (OSError, ValueError):
            if measured:
                recorder.errors += 1
            return
        pool.put_nowait(connection)
        if measured:
            recorder.latencies_ns.append(time.perf_counter_ns() - scheduled_ns)
            recorder.statuses[status] += 1
        if 200 <= status < 300:
            recorder.ok_total += 1

    interval_ns = int(1e9 / spec.rate)
    total = min(int(spec.rate * (spec.warmup_s + spec.duration_s)), spec.max_requests)
    warmup = int(spec.rate * spec.warmup_s)
    start_ns = time.perf_counter_ns()
    for i in range(total):
        scheduled = start_ns + i * interval_ns
        delay = scheduled - time.perf_counter_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        worst_lag = max(worst_lag, (time.perf_counter_ns() - scheduled) / 1e6)
        task = asyncio.create_task(one(scheduled, i >= warmup))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    measured_from = start_ns + warmup * interval_ns
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=_DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
        recorder.errors += len(pending)
    _close(connections)
    return (time.perf_counter_ns() - measured_from) / 1e9, worst_lag


def _close(connections: list[Connection]) -> None:
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def summarise(recorder: Recorder, elapsed_s: float, lag_ms: float) -> Result:
    latencies = sorted(recorder.latencies_ns)
    ok = sum(n for status, n in recorder.statuses.items() if 200 <= status < 300)
    return Result(
        requests=len(latencies),
        ok=ok,
        ok_total=recorder.ok_total,
        statuses={str(k): v for k, v in sorted(recorder.statuses.items())},
        errors=recorder.errors,
        elapsed_s=elapsed_s,
        throughput=ok / elapsed_s if elapsed_s > 0 else 0.0,
        p50_ms=percentile(latencies, 50) / 1e6,
        p95_ms=percentile(latencies, 95) / 1e6,
        p99_ms=percentile(latencies, 99) / 1e6,
        max_ms=(latencies[-1] / 1e6) if latencies else 0.0,
        max_dispatch_lag_ms=lag_ms,
    )


async def run(spec: Spec) -> Result:
    requests, recorder = Requests(spec), Recorder()
    cpu, wall = time.process_time(), time.perf_counter()
    if spec.mode == "open":
        recorder.recording = True
        elapsed, lag = await run_open(spec, requests, recorder)
    else:
        elapsed, lag = await run_closed(spec, requests, recorder), 0.0
    result = summarise(recorder, elapsed, lag)
    result.generator_cpu_s = time.process_time() - cpu
    result.wall_s = time.perf_counter() - wall
    return result


def main() -> None:
    spec = Spec(**orjson.loads(sys.argv[1]))
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")


if __name__ == "__main__":
    main()
