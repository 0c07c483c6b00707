"""The alert outbox: sends the alerts an evaluation recorded, in a thread of its own.

Budget evaluation runs after every ingest commit and keeps the guard current; an SMTP relay
that takes half a minute to answer must not hold it up. The evaluator records each alert (the
record is the exactly-once point, see `alerts.record_alert`) and hands its id here. A send
renews the claim `record_alert` took just before sending, so an alert that waited here longer
than the claim is left to the retry job that took it over: still one e-mail per alert.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Engine

from margindash.budgets.alerts import deliver_alert
from margindash.budgets.notifiers import Notifier
from margindash.config import Settings

log = logging.getLogger(__name__)

_Recorded = tuple[int, datetime]  # alert id, when this process recorded (and claimed) it


class AlertOutbox:
    """Delivers recorded alerts in order, one at a time, off the caller's thread."""

    def __init__(self, *, engine: Engine, settings: Settings, notifiers: Mapping[str, Notifier]):
        self.engine = engine
        self.settings = settings
        self.notifiers = notifiers
        self._inbox: queue.SimpleQueue[_Recorded | None] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._unfinished = 0
        self._give_up_at: float | None = None  # set by `stop`: later sends are left to retries
        self._thread: threading.Thread | None = None

    def send(self, alert_ids: Sequence[int], *, recorded_at: datetime) -> None:
        """Queue alerts this process recorded at `recorded_at` for delivery."""
        if not alert_ids:
            return
        with self._idle:
            self._unfinished += len(alert_ids)
        for alert_id in alert_ids:
            self._inbox.put((alert_id, recorded_at))

    def start(self) -> None:
        if self._thread is None:
            self._give_up_at = None
            self._thread = threading.Thread(target=self._run, name="alert-outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Send what is queued for up to `timeout` seconds, then stop.

        What is not sent by then keeps its claim, and the retry job (of this or another
        process) sends it once the claim runs out. False when a send was still in flight: the
        thread ends when it returns, bounded by the SMTP and webhook timeouts.
        """
        thread = self._thread
        if thread is None:
            return True
        self._give_up_at = time.monotonic() + timeout
        self._inbox.put(None)
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():
            log.warning("alert outbox: a delivery was still in flight at shutdown")
            return False
        return True

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every alert queued so far has been sent or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def _run(self) -> None:
        while (item := self._inbox.get()) is not None:
            alert_id, recorded_at = item
            try:
                if self._give_up_at is None or time.monotonic() < self._give_up_at:
                    self._deliver(alert_id, recorded_at)
            except Exception:  # the retry job tries again once the claim runs out
                log.exception("alert %s: delivery failed", alert_id)
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()

    def _deliver(self, alert_id: int, recorded_at: datetime) -> None:
        deliver_alert(
            self.engine,
            alert_id=alert_id,
            notifiers=self.notifiers,
            settings=self.settings,
            recorded_at=recorded_at,
        )
