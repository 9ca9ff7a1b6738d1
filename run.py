#!/usr/bin/env python3
"""Set up and run Dropdesk with nothing but Python 3.11+.

    python3 run.py serve   # virtualenv, install, migrate, demo data on first run, GraphiQL on :8000
    python3 run.py test    # virtualenv, install with test tools, lint, type-check, run the tests
    python3 run.py bench   # every workload at 100,000 orders; --search: search latencies only;
                           # --scale-out: several processes under load

Extra arguments go to `dropdesk serve` or to pytest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    completed = subprocess.run([str(part) for part in command], cwd=ROOT, env=env)
    if completed.returncode != 0:
        raise SystemExit(completed.returncode)


def ensure_environment(extras: str) -> None:
    """Create the virtualenv and install the project; skipped when nothing changed since last time."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        raise SystemExit("Dropdesk needs Python 3.11 or newer")
    if not PYTHON.exists():
        print("creating virtualenv in .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".installed-{extras or 'base'}"
    if stamp.exists() and stamp.read_text() == fingerprint:
        return
    print(f"installing dropdesk{'[' + extras + ']' if extras else ''} into .venv", flush=True)
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]" if extras else ".")
    stamp.write_text(fingerprint)


def ensure_graphiql_assets() -> None:
    """GraphiQL's files come from npm once and are then served by the app itself (works offline)."""
    if shutil.which("npm") is None:
        print("npm not found: GraphiQL will explain how to install its assets", flush=True)
        return
    _run(PYTHON, "-m", "api.graphiql")


def serve(args: list[str]) -> None:
    ensure_environment("")
    ensure_graphiql_assets()
    os.execv(BIN / "dropdesk", [str(BIN / "dropdesk"), "serve", *args])


def test(args: list[str]) -> None:
    ensure_environment("test")
    ensure_graphiql_assets()
    # The GraphiQL test drives Debian's chromium; installing it takes root (CI and these machines have it).
    if Path("/usr/bin/chromium").exists() or (shutil.which("apt-get") and os.geteuid() == 0):
        _run("bash", ROOT / "tests" / "browser_setup.sh", VENV)
    else:
        print(
            "chromium missing and not root: the GraphiQL browser test will fail (see tests/browser_setup.sh)"
        )
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "ruff", "format", "--check", ".")
    _run(BIN / "mypy", ".")
    _run(BIN / "lint-imports", "--no-cache")
    _run(PYTHON, "-m", "pytest", *args)


def bench(args: list[str]) -> None:
    """Benchmarks, not tests: CI does not run them."""
    ensure_environment("test")
    # --reads is what the default was called before it ran every workload; it still works.
    modes = {"--scale-out": "bench.scale_out", "--search": "bench.search", "--reads": "bench.reads"}
    module = next((modes[arg] for arg in args if arg in modes), "bench.reads")
    _run(PYTHON, "-m", module, *(arg for arg in args if arg not in modes))


def main() -> None:
    commands = {"serve": serve, "test": test, "bench": bench}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
