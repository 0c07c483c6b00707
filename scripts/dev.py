"""Set up and run margindash from a checkout with nothing but Python ≥ 3.11.

    python3 scripts/dev.py run    # create .venv, install, load demo data, serve on :8000
    python3 scripts/dev.py test   # create .venv, install, lint, type-check, run all tests
    python3 scripts/dev.py bench  # run the benchmark suite, rewriting docs/benchmarks.md

Everything runs inside the project virtualenv `.venv`, so a package installed by hand
elsewhere can never hide a missing dependency.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
STAMP = VENV / ".installed"


def run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def ensure_venv() -> None:
    """Create the virtualenv and (re)install the project when pyproject.toml changed."""
    if sys.version_info < (3, 11):  # noqa: UP036  (users may run an older python3)
        sys.exit("margindash needs Python 3.11 or newer")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("Creating .venv …", flush=True)
        venv.create(VENV, with_pip=True)
    print("Installing margindash and its development tools …", flush=True)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def lint() -> None:
    run(BIN / "ruff", "check", "src", "tests", "scripts")
    run(BIN / "ruff", "format", "--check", "src", "tests", "scripts")
    run(BIN / "mypy")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    extra = sys.argv[2:]
    ensure_venv()
    if command == "run":
        run(BIN / "margindash", "demo", "--serve", *extra)
    elif command == "test":
        lint()
        run(BIN / "python", "-m", "pytest", "-q", *extra)
    elif command == "lint":
        lint()
    elif command == "bench":
        run(BIN / "python", "bench/run.py", *extra)
    else:
        sys.exit(f"unknown command {command!r}: use run, test, lint or bench")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
    except KeyboardInterrupt:
        sys.exit(130)
