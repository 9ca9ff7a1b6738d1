"""Outbound webhooks across real processes: two workers deliver each event once, and a server killed with
SIGKILL right after a commit loses nothing. Same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from tests.factories import IMPORT, Api, Tenant, order_input
from tests.webhook_receiver import Receiver, running_receiver

ROOT = Path(__file__).resolve().parents[2]
DROPDESK = [sys.executable, "-m", "api.cli"]

SUBSCRIBE = """
mutation($url: String!) {
  webhookSubscriptionCreate(input: {url: $url, topics: ["orders/created"]}) {
    secret userErrors { message }
  }
}
"""


def _env(db: Database, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DROPDESK_")}
    return {
        **env,
        "DROPDESK_DATABASE_URL": db.url,
        "DROPDESK_DATA_DIR": str(tmp_path),
        "DROPDESK_WEBHOOK_ALLOW_PRIVATE_URLS": "1",
        "DROPDESK_LOG_LEVEL": "WARNING",
        **extra,
    }


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command in commands
    ]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def subscribe(api: Api, tenant: Tenant, url: str) -> str:
    payload = (await api.data(tenant.merchant_token, SUBSCRIBE, {"url": url}))["webhookSubscriptionCreate"]
    assert payload["userErrors"] == []
    secret: str = payload["secret"]
    return secret


async def test_two_worker_processes_deliver_each_event_once(
    db: Database, tenant: Tenant, receiver: Receiver, tmp_path: Path
) -> None:
    # The app that takes the subscription allows private URLs, as the workers do.
    settings = replace(load_settings(), database_url=db.url, webhook_allow_private_urls=True)
    transport = httpx.ASGITransport(app=create_app(settings, db))
    async with httpx.AsyncClient(transport=transport, base_url="http://dropdesk.test") as client:
        local = Api(client)
        secret = await subscribe(local, tenant, receiver.url)
        events = 40
        await local.import_orders(tenant, *(order_input(tenant, f"#8{index:03d}") for index in range(events)))

    worker = [*DROPDESK, "worker", "--concurrency", "4", "--poll-interval", "0.2"]
    with processes([worker, worker], _env(db, tmp_path)):
        received = await receiver.wait_for(events, timeout=60)
        await asyncio.sleep(1.0)  # time for a duplicate to show up, if there were one
    assert len(receiver.received) == events
    ids = {r.headers["webhook-id"] for r in received}
    assert len(ids) == events
    numbers = sorted(Webhook(secret).verify(r.body, r.headers)["data"]["number"] for r in received)
    assert numbers == [f"#8{index:03d}" for index in range(events)]
    async with db.read() as session:
        statuses = list(await session.scalars(select(WebhookDelivery.status)))
        attempts = await session.scalar(select(func.count()).select_from(WebhookAttempt))
    assert statuses == [DeliveryStatus.SUCCEEDED] * events and attempts == events


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            assert process.poll() is None, "the server exited"
            try:
                if (await client.get(f"{base}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not become ready")


async def test_a_server_killed_right_after_the_commit_loses_no_delivery(
    db: Database, tenant: Tenant, receiver: Receiver, tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [*DROPDESK, "serve", "--port", str(port), "--no-demo"]
    headers = {"Authorization": f"Bearer {tenant.merchant_token}"}
    # The first server sends nothing itself (its worker is off), so the kill surely lands between the commit
    # and any delivery: what survives is only what the commit wrote.
    with processes([serve], _env(db, tmp_path, DROPDESK_RUN_WORKER_IN_SERVER="0")) as [server]:
        await _wait_ready(base, server)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            answer = await client.post(
                "/graphql", json={"query": SUBSCRIBE, "variables": {"url": receiver.url}}
            )
            secret = answer.json()["data"]["webhookSubscriptionCreate"]["secret"]
            variables = {"input": {"orders": [order_input(tenant, "#9001")]}}
            imported = await client.post("/graphql", json={"query": IMPORT, "variables": variables})
            server.send_signal(signal.SIGKILL)
        assert imported.json()["data"]["ordersImport"]["userErrors"] == []
        server.wait(timeout=30)
    assert server.returncode == -signal.SIGKILL
    assert receiver.received == []

    with processes([serve], _env(db, tmp_path)) as [again]:
        await _wait_ready(base, again)
        [got] = await receiver.wait_for(1, timeout=60)
    body = Webhook(secret).verify(got.body, got.headers)
    assert body["type"] == "orders/created" and body["data"]["number"] == "#9001"
    async with db.read() as session:
        assert list(await session.scalars(select(WebhookDelivery.status))) == [DeliveryStatus.SUCCEEDED]
