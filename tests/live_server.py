"""A real `margindash serve` process on a loopback port, for crash, outage and log tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import httpx

from tests.test_cli_e2e import MARGINDASH, free_port

_START_TIMEOUT_S = 30.0
# What a request answered 500 leaves in the log: ours (api/errors.py) and uvicorn's.
_SERVER_ERROR_MARKERS = ("unhandled error on", "Exception in ASGI application")


def server_env(database_url: str, **settings: str) -> dict[str, str]:
    """This environment without any MARGINDASH_ setting, pointed at `database_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINDASH_")}
    env.update(MARGINDASH_DATABASE_URL=database_url, **settings)
    return env


class LiveServer:
    """`margindash serve` in a subprocess; its stdout and stderr go to `log_path`.

    The same port is reused across restarts, so clients keep their base URL.
    """

    def __init__(self, env: dict[str, str], workdir: Path, *, access_log: bool = False):
        self.env = env
        self.workdir = workdir  # the working directory: no stray .env or margindash.yaml
        self.log_path = workdir / f"server-{free_port()}.log"
        self.port = free_port()
        self.access_log = access_log
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until `/healthz` answers 200."""
        self._log = self.log_path.open("ab")
        args = [MARGINDASH, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--no-worker"]
        if self.access_log:
            args.append("--access-log")
        self.process = subprocess.Popen(
            args, env=self.env, cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"server did not start:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, like a crash or the OOM killer."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def stop(self) -> None:
        """SIGTERM and wait for a clean shutdown (SIGKILL if it takes over 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._close_log()

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def server_errors(self) -> list[str]:
        """Log lines of requests that failed with a 500 or crashed the ASGI app."""
        return [
            line
            for line in self.log().splitlines()
            if any(marker in line for marker in _SERVER_ERROR_MARKERS)
        ]

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
