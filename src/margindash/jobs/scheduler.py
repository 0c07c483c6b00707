"""A small scheduler: periodic jobs run by `margindash worker` or inside `margindash serve`.

Several processes may run the scheduler at once (N API processes, a worker); a lease row per job
in the database makes sure each run happens in one process only. Jobs must be idempotent anyway:
a lease can expire while a slow run is still going.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from margindash.config import Settings
from margindash.db.tables import job_leases

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job gets: the settings and the engine of the process running it."""

    settings: Settings
    engine: Engine


@dataclass(frozen=True, slots=True)
class Job:
    """A named task run every `interval` (the lease lasts as long, so one run per interval)."""

    name: str
    interval: timedelta
    run: Callable[[JobContext], None]


# Modules register their jobs here at import time (see `margindash.jobs.registry`).
JOBS: list[Job] = []


def register(job: Job) -> Job:
    """Add a job to the scheduler (idempotent by name)."""
    JOBS[:] = [j for j in JOBS if j.name != job.name]
    JOBS.append(job)
    return job


def try_acquire(engine: Engine, *, name: str, holder: str, ttl: timedelta) -> bool:
    """Take the job's lease if it is free or expired; True when this holder now has it."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        taken = conn.execute(
            update(job_leases)
            .where(job_leases.c.name == name, job_leases.c.expires_at <= now)
            .values(holder=holder, expires_at=now + ttl, last_started_at=now)
        ).rowcount
        if taken:
            return True
        if conn.execute(select(job_leases.c.name).where(job_leases.c.name == name)).first():
            return False
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(job_leases).values(
                    name=name, holder=holder, expires_at=now + ttl, last_started_at=now
                )
            )
        return True
    except IntegrityError:
        return False  # another process created it first


def run_due_jobs(context: JobContext, *, holder: str, jobs: list[Job] | None = None) -> list[str]:
    """Run every job whose lease this process can take; returns the names that ran."""
    ran = []
    for job in jobs if jobs is not None else list(JOBS):
        if not try_acquire(context.engine, name=job.name, holder=holder, ttl=job.interval):
            continue
        started = time.perf_counter()
        try:
            job.run(context)
        except Exception:  # a failing job must not stop the others
            log.exception("job %s failed", job.name)
        else:
            log.info("job %s done in %.2fs", job.name, time.perf_counter() - started)
        ran.append(job.name)
    return ran


class Scheduler:
    """A daemon thread that checks for due jobs every `tick` seconds."""

    def __init__(self, context: JobContext, *, tick: float = 15.0):
        self.context = context
        self.tick = tick
        self.holder = f"{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            from margindash.jobs import registry  # noqa: F401  (registers the jobs)

            self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_forever(self) -> None:
        """Run in the calling thread until interrupted (`margindash worker`)."""
        from margindash.jobs import registry  # noqa: F401

        self._loop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_due_jobs(self.context, holder=self.holder)
            except Exception:  # the database may be briefly unreachable; try next tick
                log.exception("scheduler tick failed")
            self._stop.wait(self.tick)
