"""The `dropdesk` command, run as a user runs it: a real process, real database, real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from db.engine import Database
from tests.factories import Api

DROPDESK = [sys.executable, "-m", "api.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DROPDESK_")}
    return {**env, **extra}


def _run(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _env(DROPDESK_DATABASE_URL=database_url, DROPDESK_DATA_DIR=str(tmp_path))
    return subprocess.run(
        [*DROPDESK, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_admin_creates_shop_supplier_and_tokens_that_work(
    api: Api, db: Database, tmp_path: Path
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _run(db.url, tmp_path, *args)

    shop = await asyncio.to_thread(run, "shop", "create", "--name", "Acme", "--currency", "eur")
    assert shop.returncode == 0, shop.stderr
    shop_id = re.search(r"shop (\d+) created", shop.stdout).group(1)  # type: ignore[union-attr]
    supplier = await asyncio.to_thread(
        run, "supplier", "create", "--shop", shop_id, "--name", "Yiwu Store", "--store-id", "1100"
    )
    assert supplier.returncode == 0, supplier.stderr
    assert "webhook secret (shown once): whsec_" in supplier.stdout
    supplier_id = re.search(r"supplier (\d+) created", supplier.stdout).group(1)  # type: ignore[union-attr]

    merchant = await asyncio.to_thread(run, "token", "create", "--shop", shop_id, "--scopes", "read_orders")
    supplier_token = await asyncio.to_thread(run, "token", "create", "--supplier", supplier_id)
    assert merchant.returncode == supplier_token.returncode == 0
    data = await api.data(merchant.stdout.strip(), "{ shop { name currencyCode suppliers { name } } }")
    assert data == {"shop": {"name": "Acme", "currencyCode": "EUR", "suppliers": [{"name": "Yiwu Store"}]}}
    own = await api.data(supplier_token.stdout.strip(), "{ suppliers { name aliexpressStoreId } }")
    assert own == {"suppliers": [{"name": "Yiwu Store", "aliexpressStoreId": "1100"}]}

    listed = await asyncio.to_thread(run, "token", "list", "--shop", shop_id)
    assert merchant.stdout.strip() not in listed.stdout
    [merchant_row] = [line for line in listed.stdout.splitlines() if merchant.stdout.strip()[:8] in line]
    # Created and last used (by the query above); not revoked.
    assert len(re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", merchant_row)) == 2
    assert merchant_row.rstrip().endswith("-")
    revoked = await asyncio.to_thread(run, "token", "revoke", merchant_row.split()[0])
    assert revoked.returncode == 0, revoked.stderr
    assert (await api.post(merchant.stdout.strip(), "{ shop { name } }")).status_code == 401
    again = await asyncio.to_thread(run, "token", "revoke", merchant_row.split()[0])
    assert again.returncode == 1

    bad_scope = await asyncio.to_thread(run, "token", "create", "--shop", shop_id, "--scopes", "everything")
    assert bad_scope.returncode == 2 and "unknown scopes: everything" in bad_scope.stderr
    bad_currency = await asyncio.to_thread(run, "shop", "create", "--name", "X", "--currency", "ZZZ")
    assert bad_currency.returncode == 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_migrates_seeds_prints_tokens_and_answers(tmp_path: Path) -> None:
    """What the README's run command does, on a brand-new embedded database."""
    port = _free_port()
    env = _env(DROPDESK_DATA_DIR=str(tmp_path), DROPDESK_DEMO_SEED_ORDERS="30")
    server = subprocess.Popen(
        [*DROPDESK, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "dropdesk serve exited early"
            assert time.monotonic() < deadline, "dropdesk serve did not become ready"
            time.sleep(0.2)
        assert (tmp_path / "dropdesk.sqlite3").exists()
        lines: list[str] = []
        assert server.stdout is not None
        while not any("GraphiQL:" in line for line in lines):
            lines.append(server.stdout.readline())
        output = "".join(lines)
        token = re.search(r"merchant\s+Demo Outfitters\s+(ddm_\w+)", output).group(1)  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}/graphql" in output
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ shop { name } ordersCount }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.json()["data"] == {"shop": {"name": "Demo Outfitters"}, "ordersCount": 18}
        page = httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"Accept": "text/html"})
        assert page.status_code in (200, 503) and "GraphiQL" in page.text

        # The worker runs inside the server: the scheduled clean-up job gets done without a worker process.
        admin = re.search(r"admin\s+platform\s+(dda_\w+)", output).group(1)  # type: ignore[union-attr]
        while True:
            done = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": "{ jobs(status: DONE) { kind } }"},
                headers={"Authorization": f"Bearer {admin}"},
            ).json()["data"]["jobs"]
            if {"kind": "jobs.cleanup"} in done:
                break
            assert time.monotonic() < deadline + 30, "the embedded worker ran no job"
            time.sleep(0.2)

        # Without DROPDESK_PUBLIC_URL, an export's link points at the port the server listens on.
        def graphql(query: str) -> dict[str, Any]:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": query},
                headers={"Authorization": f"Bearer {token}"},
            )
            data: dict[str, Any] = answer.json()["data"]
            return data

        created = graphql("mutation { ordersExport(input: {format: CSV}) { userErrors { message } } }")
        assert created["ordersExport"]["userErrors"] == []
        while True:
            [export] = graphql("{ exports(first: 1) { nodes { status downloadUrl } } }")["exports"]["nodes"]
            if export["status"] == "SUCCEEDED":
                break
            assert time.monotonic() < deadline + 60, "the export did not finish"
            time.sleep(0.2)
        assert export["downloadUrl"].startswith(f"http://127.0.0.1:{port}/exports/")
        download = httpx.get(export["downloadUrl"])
        assert download.status_code == 200 and download.content.startswith(b"\xef\xbb\xbfName,")
    finally:
        server.terminate()
        server.wait(timeout=30)
