"""Set up and run margindash from a checkout with nothing but Python ≥ 3.11.

    python3 scripts/dev.py run    # create .venv, install, load demo data, serve on :8000
    python3 scripts/dev.py test   # create .venv, install, lint, type-check, run all tests
                                  # (server, Python SDK in sdk/python/.venv, TypeScript SDK)
    python3 scripts/dev.py bench  # run the benchmark suite, rewriting docs/benchmarks.md

Everything runs inside the project virtualenv `.venv`, so a package installed by hand
elsewhere can never hide a missing dependency.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
SDK = ROOT / "sdk" / "python"
SDK_BIN = SDK / ".venv" / BIN.name
TS_SDK = ROOT / "sdk" / "typescript"


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=cwd, check=True, env=env)


def ensure_venv(root: Path, extras: str) -> Path:
    """Create `root/.venv` and (re)install `root` with extras when its pyproject.toml changed."""
    if sys.version_info < (3, 11):  # noqa: UP036  (users may run an older python3)
        sys.exit("margindash needs Python 3.11 or newer")
    env_dir = root / ".venv"
    python = env_dir / BIN.name / "python"
    stamp = env_dir / ".installed"
    wanted = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        print(f"Creating {env_dir.relative_to(ROOT)} …", flush=True)
        venv.create(env_dir, with_pip=True)
    print(f"Installing {root.relative_to(ROOT) or '.'}[{extras}] …", flush=True)
    run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(python, "-m", "pip", "install", "--quiet", "-e", f"{root}[{extras}]")
    stamp.write_text(wanted)
    return python


def lint() -> None:
    run(BIN / "ruff", "check", "src", "tests", "scripts")
    run(BIN / "ruff", "format", "--check", "src", "tests", "scripts")
    run(BIN / "mypy")


def test_sdks() -> None:
    """The Python SDK (its own venv, against this checkout's server) and the TypeScript SDK."""
    ensure_venv(SDK, "test")
    run(SDK_BIN / "ruff", "check", ".", cwd=SDK)
    run(SDK_BIN / "ruff", "format", "--check", ".", cwd=SDK)
    run(SDK_BIN / "mypy", cwd=SDK)
    env = {**os.environ, "MARGINDASH_BIN": str(BIN / "margindash")}
    run(SDK_BIN / "python", "-m", "pytest", "-q", "tests", cwd=SDK, env=env)
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI") == "true":
            sys.exit("npm is required in CI for the TypeScript SDK tests")
        print("npm not found: TypeScript SDK tests skipped (install Node.js >= 18)")
        return
    run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=TS_SDK)
    run(npm, "test", cwd=TS_SDK, env=env)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    extra = sys.argv[2:]
    ensure_venv(ROOT, "dev")
    if command == "run":
        run(BIN / "margindash", "demo", "--serve", *extra)
    elif command == "test":
        lint()
        run(BIN / "python", "-m", "pytest", "-q", *extra)
        test_sdks()
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
