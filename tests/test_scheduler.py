"""The scheduler runs each due job in one process only, and survives failing jobs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from margindash.config import Settings
from margindash.jobs.scheduler import Job, JobContext, run_due_jobs, try_acquire


def test_a_lease_is_held_by_one_holder_until_it_expires(engine: Engine) -> None:
    assert try_acquire(engine, name="sync", holder="a", ttl=timedelta(hours=1))
    assert not try_acquire(engine, name="sync", holder="b", ttl=timedelta(hours=1))
    assert try_acquire(engine, name="other", holder="b", ttl=timedelta(hours=1))
    assert try_acquire(engine, name="expired", holder="a", ttl=timedelta(seconds=-1))
    assert try_acquire(engine, name="expired", holder="b", ttl=timedelta(hours=1))


def test_due_jobs_run_once_per_interval_and_failures_do_not_stop_others(
    engine: Engine, settings: Settings
) -> None:
    calls: list[str] = []

    def boom(_: JobContext) -> None:
        calls.append("boom")
        raise RuntimeError("job failed")

    jobs = [
        Job("boom", timedelta(hours=1), boom),
        Job("count", timedelta(hours=1), lambda _: calls.append("count")),
    ]
    context = JobContext(settings=settings, engine=engine)
    assert run_due_jobs(context, holder="worker-1", jobs=jobs) == ["boom", "count"]
    assert run_due_jobs(context, holder="worker-2", jobs=jobs) == []
    assert calls == ["boom", "count"]
