"""Runs the real `margindash` server (init + serve) on loopback for end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from servers import free_port


def find_margindash() -> str | None:
    """`MARGINDASH_BIN`, else `margindash` beside this Python, else on PATH."""
    explicit = os.environ.get("MARGINDASH_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "margindash"
    if beside.exists():
        return str(beside)
    return shutil.which("margindash")


class MarginDashServer:
    """One server process over one SQLite file; can be stopped, paused and started again."""

    def __init__(self, executable: str, workdir: Path, *, port: int | None = None) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = port or free_port()
        self.env = {
            **os.environ,
            "MARGINDASH_DATABASE_URL": f"sqlite:///{workdir / 'md.db'}",
            # Lets the SDK's chars-only estimated events through, as the API documents.
            "STRICT_TOKEN_COUNTS": "false",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "serve.log"
        keys = json.loads(
            subprocess.run(
                [executable, "init", "--org", "acme", "--json"],
                cwd=workdir,
                env=self.env,
                capture_output=True,
                check=True,
                timeout=120,
            ).stdout
        )
        self.admin_key: str = keys["api_key"]
        self.ingest_key: str = keys["ingest_key"]

    @property
    def url(self) -> str:
        """The `/v1` base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> MarginDashServer:
        """Start `margindash serve` and wait until /healthz answers."""
        command = [self.executable, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--no-worker"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"margindash serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"margindash serve not healthy:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the server process."""
        if self.process is None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        """Freeze the process: connections are accepted by the kernel but never answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused process."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def get(self, path: str, **params: Any) -> httpx.Response:
        """GET with the admin key."""
        return httpx.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
        )
