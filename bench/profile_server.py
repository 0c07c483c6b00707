"""Profile `margindash serve` under load: cProfile on the event-loop thread and the writer thread.

    .venv/bin/python bench/profile_server.py --db sqlite --body single --seconds 10
    .venv/bin/python bench/profile_server.py --db postgres --body batch

Serves the app in this process (same uvicorn settings as `margindash serve`), drives it from
bench/loadgen.py in a second process, then prints the top functions of each thread by
cumulative time. Both profiles count per-thread CPU time (`time.thread_time`), so time one
thread spends waiting for the GIL is not charged to whatever function it was in. cProfile
slows Python code down, so read shares, not absolute rates.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import uvicorn
from servers import free_port, init_org, postgres_database, run_load

from margindash.app import create_app
from margindash.config import Settings
from margindash.ledger.writer import LedgerWriter

_WRITER_PROFILE = cProfile.Profile(time.thread_time)


def _profiled_writer(original: Callable[[LedgerWriter], None]) -> Callable[[LedgerWriter], None]:
    def run(self: LedgerWriter) -> None:
        _WRITER_PROFILE.enable()
        try:
            original(self)
        finally:
            _WRITER_PROFILE.disable()

    return run


def _drive(server: uvicorn.Server, port: int, key: str, args: argparse.Namespace) -> None:
    """Wait for the server, run the load, then ask the server to exit."""
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        result = run_load(
            port=port,
            api_key=key,
            body=args.body,
            concurrency=args.clients,
            duration_s=args.seconds,
            warmup_s=1.0,
            prefix=f"profile-{time.time_ns()}",
        )
        print(
            f"load: {result['throughput']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
            f"statuses {result['statuses']} (under cProfile)"
        )
    finally:
        server.should_exit = True


def _top(profile: cProfile.Profile, title: str, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    return f"===== {title} =====\n{out.getvalue()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--body", choices=("single", "batch"), default="single")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--limit", type=int, default=40, help="functions to print per thread")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="margindash-profile-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        url = f"sqlite:///{workdir / 'profile.db'}"
        if args.db == "postgres":
            url = stack.enter_context(postgres_database()) or ""
            if not url:
                raise SystemExit("PostgreSQL is not reachable")
        keys = init_org(url, "profile", workdir=workdir)
        LedgerWriter._run = _profiled_writer(LedgerWriter._run)  # type: ignore[method-assign]
        app = create_app(Settings(_env_file=None, database_url=url))
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_config=None)
        server = uvicorn.Server(config)
        driver = threading.Thread(target=_drive, args=(server, port, keys.ingest_key, args))
        driver.start()
        loop_profile = cProfile.Profile(time.thread_time)
        loop_profile.enable()
        server.run()
        loop_profile.disable()
        driver.join()
    print(_top(loop_profile, "event-loop thread (HTTP, auth, checks, pricing)", args.limit))
    print(_top(_WRITER_PROFILE, "ledger-writer thread (SQL)", args.limit))


if __name__ == "__main__":
    main()
