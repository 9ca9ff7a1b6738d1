"""Checks of the running server from outside, as clients and attackers see it (run by .ci/run).

1. The GraphQL over HTTP audit (npm ``graphql-http``), with a merchant token, when Node is installed:
   every MUST and every SHOULD has to pass.
2. Schemathesis in GraphQL mode with a merchant token and with a supplier token: at least ``--min-requests``
   fuzzed requests in all, within a time bound, and then zero 5xx answers and zero error lines in the
   server's log (masked internal errors are logged at ERROR, so they count too).

Usage: .venv/bin/python .ci/edge_checks.py [--examples N] [--min-requests N] [--time-limit SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
AUDIT_DIR = ROOT / ".ci" / "graphql-http"
HOOKS_DIR = ROOT / ".ci" / "fuzz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], Path, Path]:
    env = {
        **os.environ,
        "DROPDESK_DATA_DIR": str(workdir),
        "DROPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'fuzz.sqlite3'}",
        # The fuzzer should reach the resolvers, not spend its examples on THROTTLED answers.
        "DROPDESK_COST_RESTORE_RATE": "1000000",
        "DROPDESK_LOG_LEVEL": "INFO",
    }
    env.pop("DROPDESK_SECRET_KEY", None)
    out, err = workdir / "stdout.txt", workdir / "server.log"
    process = subprocess.Popen(
        [str(BIN / "dropdesk"), "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=out.open("wb"),
        stderr=err.open("wb"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server stopped:\n{err.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200 and "GraphiQL" in out.read_text():
                    return process, out, err
        except OSError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the server did not become ready in 120 s")


def tokens(stdout: Path) -> tuple[str, str]:
    text = stdout.read_text()
    merchant = re.search(r"merchant\s+.+?\s+(ddm_\w+)", text)
    supplier = re.search(r"supplier\s+.+?\s+(dds_\w+)", text)
    if not merchant or not supplier:
        raise SystemExit(f"no demo tokens in the server's output:\n{text[-2000:]}")
    return merchant.group(1), supplier.group(1)


def run_audit(url: str, token: str) -> bool:
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("== graphql-http audit skipped: Node is not installed")
        return True
    print("== graphql-http audit", flush=True)
    install = ["npm", "ci" if (AUDIT_DIR / "package-lock.json").exists() else "install"]
    subprocess.run([*install, "--no-audit", "--no-fund", "--silent"], cwd=AUDIT_DIR, check=True, timeout=300)
    completed = subprocess.run(["node", "audit.mjs", url, token], cwd=AUDIT_DIR, timeout=300)
    return completed.returncode == 0


def run_fuzz(url: str, token: str, examples: int, time_limit: float, seed: int, workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(HOOKS_DIR), "SCHEMATHESIS_HOOKS": "hooks"}
    command = [
        str(BIN / "st"),
        "run",
        url,
        "-H",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--continue-on-failure",
        "--workers",
        "2",
        "--no-color",
    ]
    try:
        # Schemathesis counts FORBIDDEN and BAD_USER_INPUT answers as failures (ST113, ST206); what this
        # check judges is the server's side, read from its log below, so its exit code is not used.
        completed = subprocess.run(
            command, env=env, cwd=workdir, timeout=time_limit, capture_output=True, text=True
        )
        summary = [line for line in completed.stdout.splitlines() if "generated" in line or "Tested" in line]
        print("\n".join(summary))
    except subprocess.TimeoutExpired:
        print(f"schemathesis stopped at the time bound ({time_limit:.0f} s)")


def read_log(log: Path) -> tuple[int, list[str], list[str]]:
    requests, server_errors, error_lines = 0, [], []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("ERROR", "CRITICAL"):
            error_lines.append(line[:2000])
        if entry.get("logger") == "dropdesk.access" and entry.get("path") == "/graphql":
            requests += entry.get("method") == "POST"
            if (entry.get("status") or 500) >= 500:
                server_errors.append(line[:2000])
    return requests, server_errors, error_lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=20, help="Schemathesis examples per operation")
    parser.add_argument("--min-requests", type=int, default=500)
    parser.add_argument("--time-limit", type=float, default=300, help="seconds per token")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dropdesk-edge-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    process, stdout, log = start_server(workdir, port)
    ok = True
    try:
        merchant, supplier = tokens(stdout)
        ok = run_audit(url, merchant) and ok
        before, _, _ = read_log(log)
        for seed, (name, token) in enumerate((("merchant", merchant), ("supplier", supplier)), start=1):
            print(f"== schemathesis with the {name} token", flush=True)
            run_fuzz(url, token, args.examples, args.time_limit, seed, workdir)
    finally:
        process.terminate()
        process.wait(timeout=30)
    requests, server_errors, error_lines = read_log(log)
    fuzzed = requests - before
    print(
        f"fuzz: {fuzzed} requests, {len(server_errors)} answered 5xx, {len(error_lines)} error lines in the log"
    )
    for line in (server_errors + error_lines)[:20]:
        print(line)
    if fuzzed < args.min_requests:
        print(f"fewer than {args.min_requests} fuzzed requests")
        ok = False
    ok = ok and not server_errors and not error_lines
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"server log kept in {log}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
