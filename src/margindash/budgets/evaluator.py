"""Budget evaluation: right after each ingest commit (in a thread of its own) and in a sweep.

`evaluate_budgets` reads each budget's spend from the rollups, records an alert for every
threshold reached this period (once: see `alerts.record_alert`), marks exhausted `block`
budgets for the guard, and delivers the new alerts. The commit hook only queues the committed
rows; the `BudgetEvaluator` thread works out which budgets they touch and evaluates those, and
hands the alerts to its `AlertOutbox`, so a slow relay never delays the next evaluation.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine

from margindash.budgets.alerts import NewAlert, deliver_alert, fired_keys, record_alert
from margindash.budgets.guard import BudgetGuard
from margindash.budgets.messages import budget_alert
from margindash.budgets.notifiers import Notifier, notifiers_from
from margindash.budgets.outbox import AlertOutbox
from margindash.budgets.service import Budget, list_budgets, orgs_with_budgets, set_blocked_until
from margindash.budgets.spec import threshold_text
from margindash.budgets.spend import Drivers, top_drivers
from margindash.budgets.status import BudgetStatus, budget_statuses
from margindash.config import Settings
from margindash.ledger.writer import EventRow
from margindash.orgs.service import Org, get_org

log = logging.getLogger(__name__)
_ORG_TTL_S = 30.0
# How long an org found without budgets is not asked again on each commit. Budgets created
# through this process end it at once (`request`); ones created elsewhere (the CLI) are seen
# within this time, and by the periodic sweep.
_NO_BUDGETS_TTL_S = 10.0
_MAX_REMEMBERED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation found and did."""

    statuses: list[BudgetStatus]
    new_alerts: list[int]
    blocks_changed: bool


def threshold_key(status: BudgetStatus, threshold: Decimal) -> str:
    """The identity of one (budget, revision, period, threshold) alert: it fires once."""
    budget = status.budget
    return (
        f"budget:{budget.id}:r{budget.revision}:{status.period.first_day.isoformat()}"
        f":{threshold_text(threshold)}"
    )


def evaluate_budgets(
    engine: Engine,
    *,
    org: Org,
    budgets: Sequence[Budget],
    settings: Settings,
    notifiers: Mapping[str, Notifier],
    now: datetime | None = None,
    known_fired: set[str] | None = None,
    outbox: AlertOutbox | None = None,
) -> Evaluation:
    """Check budgets against their current period; alert on thresholds reached, once each.

    `known_fired` is a caller's memory of keys already fired, to skip even the lookup. New
    alerts are sent before returning, or handed to `outbox` to be sent in its thread.
    """
    now = now or datetime.now(UTC)
    statuses = budget_statuses(engine, org=org, budgets=budgets, now=now)
    crossed = {
        threshold_key(status, threshold): (status, threshold)
        for status in statuses
        for threshold in status.alert_thresholds
        if status.reached(threshold)
    }
    candidates = [key for key in crossed if known_fired is None or key not in known_fired]
    already = fired_keys(engine, org_id=org.id, keys=candidates)
    new_alerts = []
    drivers: dict[str, Drivers] = {}  # one look per budget, however many thresholds it passed
    for key in candidates:
        if key in already:
            continue
        status, threshold = crossed[key]
        budget = status.budget
        if budget.id not in drivers:
            drivers[budget.id] = _drivers(engine, org, status)
        alert = _threshold_alert(org, status, threshold, key, drivers[budget.id], settings)
        alert_id = record_alert(engine, alert, now=now)
        if alert_id is not None:  # None: another process fired it first
            new_alerts.append(alert_id)
    if known_fired is not None:
        if len(known_fired) > _MAX_REMEMBERED_KEYS:
            known_fired.clear()
        known_fired.update(crossed)
    blocks_changed = _mark_blocks(engine, statuses, now)
    if outbox is not None:
        outbox.send(new_alerts, recorded_at=now)
    else:
        for alert_id in new_alerts:
            deliver_alert(
                engine, alert_id=alert_id, notifiers=notifiers, settings=settings, now=now
            )
    return Evaluation(statuses, new_alerts, blocks_changed)


def sweep_budgets(
    engine: Engine,
    *,
    settings: Settings,
    notifiers: Mapping[str, Notifier],
    now: datetime | None = None,
) -> int:
    """Evaluate every org's budgets: catches what no commit hook saw (CLI imports, other
    processes, a new period). Returns the number of alerts fired."""
    fired = 0
    for org_id in orgs_with_budgets(engine):
        org = get_org(engine, org_id)
        if org is None:
            continue
        result = evaluate_budgets(
            engine,
            org=org,
            budgets=list_budgets(engine, org_id=org_id),
            settings=settings,
            notifiers=notifiers,
            now=now,
        )
        fired += len(result.new_alerts)
    return fired


def _drivers(engine: Engine, org: Org, status: BudgetStatus) -> Drivers:
    return top_drivers(
        engine,
        org=org,
        scope=status.budget.spec.scope,
        first_day=status.period.first_day,
        last_day=status.period.last_day,
    )


def _threshold_alert(
    org: Org,
    status: BudgetStatus,
    threshold: Decimal,
    key: str,
    drivers: Drivers,
    settings: Settings,
) -> NewAlert:
    spec = status.budget.spec
    message = budget_alert(status, threshold, drivers=drivers, public_url=settings.dashboard_url)
    return NewAlert(
        org_id=org.id,
        dedupe_key=key,
        message=message,
        budget_id=status.budget.id,
        emails=spec.notify.emails,
        webhook_url=spec.notify.webhook_url,
    )


def _mark_blocks(engine: Engine, statuses: Sequence[BudgetStatus], now: datetime) -> bool:
    changed = False
    for status in statuses:
        budget = status.budget
        if budget.spec.action != "block":
            continue
        in_force = budget.blocked_until is not None and budget.blocked_until > now
        if status.exhausted and budget.blocked_until != status.period.ends_at:
            until = status.period.ends_at
        elif not status.exhausted and in_force:
            until = None  # spend went down (re-pricing): stop blocking
        else:
            continue
        changed |= set_blocked_until(
            engine, budget_id=budget.id, until=until, revision=budget.revision
        )
    return changed


_Work = Sequence[EventRow] | str


class BudgetEvaluator:
    """Evaluates the budgets touched by each ingest commit, in a thread of its own.

    `on_commit` is a `LedgerWriter` hook: it runs in the writer thread, so it only queues the
    rows. The thread takes everything queued at once, so a burst of commits costs one
    evaluation per org. Alerts go out through `outbox`, in its own thread.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        notifiers: Mapping[str, Notifier] | None = None,
        guard: BudgetGuard | None = None,
    ):
        self.engine = engine
        self.settings = settings
        self.notifiers = notifiers if notifiers is not None else notifiers_from(settings)
        self.guard = guard or BudgetGuard(engine)
        self.outbox = AlertOutbox(engine=engine, settings=settings, notifiers=self.notifiers)
        self._inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._unfinished = 0
        self._fired: set[str] = set()
        self._orgs: dict[str, tuple[Org, float]] = {}
        self._without_budgets: dict[str, float] = {}  # org id -> until when
        self._thread: threading.Thread | None = None

    def on_commit(self, rows: Sequence[EventRow]) -> None:
        """Hand committed rows over to the evaluator thread."""
        if rows:
            self._put(rows)

    def request(self, org_id: str) -> None:
        """Evaluate all of an org's budgets soon (one was created or changed)."""
        self.guard.invalidate(org_id)
        self._without_budgets.pop(org_id, None)
        self._put(org_id)

    def start(self) -> None:
        if self._thread is None:
            self.outbox.start()
            self._thread = threading.Thread(target=self._run, name="budget-evaluator", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Evaluate what is queued, then stop the thread; then send the alerts it recorded
        (for up to `timeout` more seconds: the retry job sends what is left)."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(timeout)
            self._thread = None
            self.outbox.stop(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far has been evaluated; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def _put(self, work: _Work) -> None:
        with self._idle:
            self._unfinished += 1
        self._inbox.put(work)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._inbox.get()]
            while True:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            work = [item for item in batch if item is not None]
            try:
                self._evaluate(work)
            except Exception:  # the next commit or the sweep tries again
                log.exception("budget evaluation failed")
            finally:
                with self._idle:
                    self._unfinished -= len(work)
                    self._idle.notify_all()

    def _evaluate(self, work: list[_Work]) -> None:
        for org_id, rows in _by_org(work).items():
            budgets = self._budgets(org_id)
            if budgets and rows is not None:
                # Runs after every commit, holding the GIL the writer and the event loop
                # need: orgs without budgets skip it.
                touched = {(k.customer_id, k.feature, k.model) for k in (row.key for row in rows)}
                budgets = [b for b in budgets if _touches(b, touched)]
            org = self._org(org_id)
            if not budgets or org is None:
                continue
            result = evaluate_budgets(
                self.engine,
                org=org,
                budgets=budgets,
                settings=self.settings,
                notifiers=self.notifiers,
                known_fired=self._fired,
                outbox=self.outbox,
            )
            if result.blocks_changed:
                self.guard.invalidate(org_id)

    def _budgets(self, org_id: str) -> list[Budget]:
        # Most orgs have no budgets: not asking the database after every commit saved about
        # a twelfth of a busy server's time (measured with single-event ingest).
        now = time.monotonic()
        if self._without_budgets.get(org_id, 0.0) > now:
            return []
        budgets = list_budgets(self.engine, org_id=org_id)
        if not budgets:
            self._without_budgets[org_id] = now + _NO_BUDGETS_TTL_S
        return budgets

    def _org(self, org_id: str) -> Org | None:
        cached = self._orgs.get(org_id)
        if cached is None or cached[1] < time.monotonic():
            org = get_org(self.engine, org_id)
            if org is None:
                return None
            cached = self._orgs[org_id] = (org, time.monotonic() + _ORG_TTL_S)
        return cached[0]


_Key = tuple[str, str, str]  # customer, feature, model


def _by_org(work: list[_Work]) -> dict[str, list[EventRow] | None]:
    """Per org, the committed rows to check budgets against; None: check every budget."""
    by_org: dict[str, list[EventRow] | None] = {}
    for item in work:
        if isinstance(item, str):
            by_org[item] = None
            continue
        for row in item:
            rows = by_org.setdefault(row.org_id, [])
            if rows is not None:
                rows.append(row)
    return by_org


def _touches(budget: Budget, touched: set[_Key]) -> bool:
    scope = budget.spec.scope
    return scope.type == "org" or any(
        scope.covers(customer_id=c, feature=f, model=m) for c, f, m in touched
    )
