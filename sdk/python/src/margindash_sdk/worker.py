"""The background side of the client: a bounded queue drained by one daemon thread in batches."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _guard
from .config import Options
from .transport import SendResult, Transport, backoff_delay

logger = logging.getLogger("margindash_sdk")

Item = tuple[str, dict[str, Any]]


class _Signal:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_FLUSH = _Signal("flush")
_STOP = _Signal("stop")


class EventQueue(queue.Queue[Item | _Signal]):
    """A Queue that counts what it took in, under the lock it already holds."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.enqueued = 0
        self.dropped = 0

    def _put(self, item: Item | _Signal) -> None:
        super()._put(item)
        if not isinstance(item, _Signal):
            self.enqueued += 1


@dataclass(frozen=True)
class Stats:
    """Cumulative counters of one client in this process."""

    queued: int
    sent: int
    duplicates: int
    dropped: int
    failed: int
    rejected: int
    pending: int
    errors: int


class BatchWorker:
    """Owns the queue and the thread that sends its contents; rebuilt in a forked child."""

    def __init__(self, options: Options, make_transport: Callable[[], Transport]) -> None:
        self._options = options
        self._make_transport = make_transport
        self._start()

    def _start(self) -> None:
        self.queue = EventQueue(self._options.max_queue_size)
        self._transport = self._make_transport()
        self._settled = threading.Condition()
        self._wake = threading.Event()
        self._resolved = 0
        self.sent = self.duplicates = self.failed = self.rejected = self.errors = 0
        self._logged: set[str] = set()
        self._deadline: float | None = None
        self._stopping = False
        self.closed = False
        self._thread = threading.Thread(target=self._run, name="margindash-worker", daemon=True)
        self._thread.start()

    def restart_after_fork(self) -> None:
        """Start afresh in a forked child: the parent's locks, sockets and thread are unusable."""
        self._start()

    def submit(self, kind: str, payload: dict[str, Any]) -> bool:
        """Queue one payload without blocking; count it as dropped when the queue is full."""
        try:
            self.queue.put_nowait((kind, payload))
        except queue.Full:
            with self.queue.mutex:
                self.queue.dropped += 1
            return False
        return True

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return Stats(
            queued=self.queue.enqueued,
            sent=self.sent,
            duplicates=self.duplicates,
            dropped=self.queue.dropped,
            failed=self.failed,
            rejected=self.rejected,
            pending=self.queue.enqueued - self._resolved,
            errors=self.errors,
        )

    def flush(self, timeout: float) -> bool:
        """Send everything queued so far now; True when all of it was settled within `timeout`."""
        deadline = time.monotonic() + timeout
        target = self.queue.enqueued
        if self._resolved >= target:
            return True
        if not self._thread.is_alive():
            return False
        try:
            self.queue.put(_FLUSH, timeout=max(timeout, 0.0))
        except queue.Full:
            return False
        return self._wait_settled(target, deadline)

    def shutdown(self, timeout: float) -> bool:
        """Deliver what is queued within `timeout`, then stop the thread; idempotent."""
        deadline = time.monotonic() + timeout
        if self.closed:
            return self._resolved >= self.queue.enqueued
        self.closed = True
        self._deadline = deadline
        self._wake.set()
        try:
            self.queue.put(_STOP, timeout=max(timeout, 0.0))
        except queue.Full:
            return False
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        done = self._resolved >= self.queue.enqueued
        if not self._thread.is_alive():
            self._transport.close()
        return done

    def _wait_settled(self, target: int, deadline: float) -> bool:
        with self._settled:
            return self._settled.wait_for(
                lambda: self._resolved >= target, max(deadline - time.monotonic(), 0.0)
            )

    def _run(self) -> None:
        while True:
            try:
                batch = self._collect()
                if batch:
                    self._deliver(batch)
                if self._stopping:
                    self._drain()
                    return
            except Exception as exc:
                # The worker must outlive its own bugs, or every later event would pile up unsent.
                self.errors += 1
                _guard.record_worker_error(exc)

    def _collect(self) -> list[Item]:
        batch: list[Item] = []
        batch_deadline: float | None = None
        while len(batch) < self._options.batch_size:
            try:
                if batch_deadline is None:
                    item = self.queue.get()
                else:
                    remaining = batch_deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    item = self.queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _STOP:
                self._stopping = True
                break
            if item is _FLUSH:
                break
            assert isinstance(item, tuple)
            batch.append(item)
            if batch_deadline is None:
                batch_deadline = time.monotonic() + self._options.flush_interval
        return batch

    def _drain(self) -> None:
        leftovers: list[Item] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                leftovers.append(item)
        for start in range(0, len(leftovers), self._options.batch_size):
            self._deliver(leftovers[start : start + self._options.batch_size])

    def _deliver(self, batch: list[Item]) -> None:
        for kind in ("usage", "revenue"):
            payloads = [payload for item_kind, payload in batch if item_kind == kind]
            if payloads:
                self._settle(self._send_with_retries(kind, payloads), len(payloads))

    def _send_with_retries(self, kind: str, payloads: list[dict[str, Any]]) -> SendResult:
        attempt = 0
        while True:
            timeout = self._request_timeout()
            if timeout <= 0:
                return SendResult(retry=True, problem="shutdown deadline passed")
            result = self._transport.send(kind, payloads, timeout=timeout)
            if not result.retry:
                return result
            attempt += 1
            delay = result.retry_after
            if delay is None:
                delay = backoff_delay(
                    attempt, base=self._options.backoff_base, cap=self._options.backoff_max
                )
            logger.debug("margindash: %s, retry %d in %.2fs", result.problem, attempt, delay)
            if attempt > self._options.max_retries or not self._may_wait(delay):
                return result
            # Shutdown sets _wake so a long backoff cannot hold the process past its deadline.
            self._wake.wait(delay)

    def _request_timeout(self) -> float:
        if self._deadline is None:
            return self._options.timeout
        return min(self._options.timeout, self._deadline - time.monotonic())

    def _may_wait(self, delay: float) -> bool:
        return self._deadline is None or time.monotonic() + delay < self._deadline

    def _settle(self, result: SendResult, count: int) -> None:
        if result.retry:
            self.failed += count
            self._log_once(f"gave up: {result.problem_key or result.problem}", result.problem)
        else:
            self.sent += result.sent
            self.duplicates += result.duplicates
            self.rejected += result.rejected
            if result.problem:
                self._log_once(result.problem_key or result.problem, result.problem)
        with self._settled:
            self._resolved += count
            self._settled.notify_all()

    def _log_once(self, key: str, message: str | None) -> None:
        if key in self._logged:
            logger.debug("margindash: %s", message)
            return
        self._logged.add(key)
        logger.warning("margindash: %s (further occurrences are logged at debug level)", message)
