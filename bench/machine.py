"""The machine and software a run measured, for the report's header."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_PACKAGES = (
    "margindash",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "psycopg",
    "genai-prices",
    "orjson",
)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def filesystem(path: Path) -> str:
    """The file system type under `path` (fsync cost depends on it)."""
    done = subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def packages() -> str:
    found = []
    for name in _PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def source_revision(repo: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    revision = done.stdout.strip() if done.returncode == 0 else "no commit yet"
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{revision}{' (uncommitted changes)' if dirty else ''}"


def describe(*, data_dir: Path, postgres: str | None, repo: Path) -> list[tuple[str, str]]:
    """(label, value) rows describing this machine and its software."""
    usable = len(os.sched_getaffinity(0))
    return [
        ("CPU", cpu_model()),
        ("Cores", f"{os.cpu_count()} logical ({usable} usable by this run)"),
        ("RAM", f"{memory_gib():.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("SQLite", sqlite3.sqlite_version),
        ("PostgreSQL", postgres or "not reachable (PostgreSQL figures skipped)"),
        ("Data directory file system", filesystem(data_dir)),
        ("Packages", packages()),
        ("Source", source_revision(repo)),
    ]
