"""Servers under test as subprocesses on 127.0.0.1, the databases behind them, and load runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
_STARTUP_TIMEOUT_S = 60.0


class BenchError(RuntimeError):
    """The suite could not run a step (a server did not start, a load run failed)."""


@dataclass(frozen=True, slots=True)
class OrgKeys:
    """What `margindash init --json` prints."""

    org_id: str
    api_key: str
    ingest_key: str


@dataclass(slots=True)
class Server:
    """A running server process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    keys: dict[str, OrgKeys] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mib(self) -> float:
        """The process's peak resident set size so far (VmHWM)."""
        return _status_kib(self.pid, "VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without margindash settings, plus `extra` (so runs are reproducible)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINDASH_")}
    env.update(extra)
    return env


def init_org(database_url: str, org: str, *, workdir: Path) -> OrgKeys:
    """Create an org with `margindash init --json` (which also creates the schema)."""
    done = subprocess.run(
        [
            str(VENV_BIN / "margindash"),
            "init",
            "--org",
            org,
            "--admin-email",
            f"{org}@bench.invalid",
            "--json",
        ],
        env=clean_env(MARGINDASH_DATABASE_URL=database_url),
        cwd=workdir,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"margindash init failed: {done.stderr.decode()[-2000:]}")
    printed = orjson.loads(done.stdout.splitlines()[-1])
    return OrgKeys(printed["org_id"], printed["api_key"], printed["ingest_key"])


def start_margindash(name: str, database_url: str, *, workdir: Path) -> Server:
    """`margindash serve --no-worker` on a free loopback port, once /healthz answers."""
    port = free_port()
    command = [
        str(VENV_BIN / "margindash"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-worker",
    ]
    env = clean_env(MARGINDASH_DATABASE_URL=database_url)
    return _start(name, command, port, env=env, workdir=workdir)


def start_noop(*, workdir: Path) -> Server:
    """The no-op FastAPI baseline (bench/noop_app.py)."""
    port = free_port()
    command = [sys.executable, str(BENCH_DIR / "noop_app.py"), str(port)]
    return _start("no-op FastAPI", command, port, env=clean_env(), workdir=workdir)


def _start(
    name: str, command: list[str], port: int, *, env: dict[str, str], workdir: Path
) -> Server:
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(name, port, process, log)
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise BenchError(f"{name} did not answer /healthz within {_STARTUP_TIMEOUT_S:.0f} s")


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A throw-away database `bench_<pid>` (dropped at the end); None if PostgreSQL is down."""
    import psycopg

    name = f"bench_{os.getpid()}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        yield None
        return
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postgres_version() -> str | None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.OperationalError:
        return None
    return str(row[0]) if row else None


def run_load(**spec: Any) -> dict[str, Any]:
    """Run bench/loadgen.py in its own process with this spec; its JSON result."""
    timeout = float(spec.get("duration_s", 5)) + float(spec.get("warmup_s", 1)) + 60
    done = subprocess.run(
        [sys.executable, str(BENCH_DIR / "loadgen.py"), orjson.dumps(spec).decode()],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"load generator failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result
