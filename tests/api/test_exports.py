"""Order exports over HTTP: GraphQL, mail through a real SMTP server on loopback, signed downloads, dead workers."""

from __future__ import annotations

import asyncio
import csv
import email
import io
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from openpyxl import load_workbook
from sqlalchemy import select

from api.app import create_app
from api.worker import LEASE_EXPIRED, Worker
from config.settings import Settings
from db.engine import Database
from db.jobs import Job, JobStatus, enqueue
from db.models import Export, ExportStatus
from db.types import utcnow
from domain import exports
from domain.links import signed_url
from schema.ids import to_global_id
from tests.factories import Api, Tenant, order_input

ROOT = Path(__file__).resolve().parents[2]
SECRET = "export-api-test-key"
PUBLIC = "http://dropdesk.test"

EXPORT = """
mutation Export($input: OrdersExportInput!) {
  ordersExport(input: $input) { export { id status } userErrors { field message code } }
}
"""
SHOW = """
query Show($id: ID!) {
  export(id: $id) {
    id format layout status progress { done total } rowCount fileSize downloadUrl error query email
    createdAt finishedAt expiresAt
  }
}
"""
LIST = """
query List($status: ExportStatus) { exports(first: 10, status: $status) { nodes { id status } } }
"""


# --- a real SMTP server on loopback -------------------------------------------------------------------------


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def make_settings(db: Database, tmp_path: Path, **overrides: Any) -> Settings:
    base = Settings(
        database_url=db.url,
        secret_key=SECRET,
        public_url=PUBLIC,
        smtp_url="",
        data_dir=tmp_path,
        run_worker_in_server=False,
    )
    return replace(base, **overrides)


@dataclass
class Env:
    api: Api
    client: httpx.AsyncClient
    settings: Settings
    db: Database

    def worker(self, **kwargs: Any) -> Worker:
        return Worker(self.db, self.settings, **kwargs)

    async def export(self, token: str, **fields: Any) -> dict[str, Any]:
        data = await self.api.data(token, EXPORT, {"input": fields})
        return dict(data["ordersExport"])

    async def show(self, token: str, gid: str) -> dict[str, Any] | None:
        data = await self.api.data(token, SHOW, {"id": gid})
        return data["export"]  # type: ignore[no-any-return]


@pytest.fixture
async def env_factory(db: Database, tmp_path: Path) -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> Env:
        settings = make_settings(db, tmp_path, **overrides)
        app = create_app(settings, db)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC)
        clients.append(client)
        return Env(api=Api(client), client=client, settings=settings, db=db)

    yield make
    for client in clients:
        await client.aclose()


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# --- the whole flow -----------------------------------------------------------------------------------------


async def test_export_is_mailed_with_link_and_file_and_the_link_downloads_it(
    env_factory: Any, tenant: Tenant, other_tenant: Tenant, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    env: Env = await env_factory(smtp_url=f"smtp://127.0.0.1:{port}")
    await env.api.import_orders(
        tenant, order_input(tenant, "#1001"), order_input(tenant, "#1002", tags=["x"])
    )
    payload = await env.export(tenant.merchant_token, format="CSV", query="tag:vip", email="me@shop.test")
    assert payload["userErrors"] == []
    gid = payload["export"]["id"]
    assert gid.startswith("gid://dropdesk/Export/") and payload["export"]["status"] == "PENDING"
    pending = await env.show(tenant.merchant_token, gid)
    assert pending is not None and (pending["downloadUrl"], pending["progress"]) == (
        None,
        {"done": 0, "total": None},
    )

    assert await env.worker().drain() == 2  # the build, then the mail

    shown = await env.show(tenant.merchant_token, gid)
    assert shown is not None
    assert (shown["status"], shown["rowCount"], shown["progress"]) == (
        "SUCCEEDED",
        2,
        {"done": 2, "total": 2},
    )
    assert (shown["format"], shown["layout"], shown["query"], shown["email"]) == (
        "CSV",
        "LINE_ITEM",
        "tag:vip",
        "me@shop.test",
    )
    assert shown["finishedAt"] is not None and shown["expiresAt"] is not None and shown["error"] is None
    url = shown["downloadUrl"]
    assert url.startswith(f"{PUBLIC}/exports/")

    [message] = inbox.messages
    assert message["To"] == "me@shop.test" and "ready" in message["Subject"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and url in body.get_content()
    [attachment] = list(message.iter_attachments())
    attached = attachment.get_payload(decode=True)
    filename = attachment.get_filename()
    assert isinstance(attached, bytes) and filename is not None
    assert filename.endswith(".csv") and attachment.get_content_type() == "text/csv"
    assert [row["Name"] for row in csv_rows(attached)] == ["#1001", "#1001"]

    response = await env.client.get(local(url))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert response.content == attached and int(shown["fileSize"]) == len(attached)

    listed = await env.api.data(tenant.merchant_token, LIST, {"status": "SUCCEEDED"})
    assert [node["id"] for node in listed["exports"]["nodes"]] == [gid]
    assert (await env.api.data(tenant.merchant_token, LIST, {"status": "FAILED"}))["exports"]["nodes"] == []
    assert await env.show(other_tenant.merchant_token, gid) is None
    assert (await env.api.data(other_tenant.merchant_token, LIST))["exports"]["nodes"] == []


async def test_download_links_refuse_tampering_other_exports_and_expiry(
    env_factory: Any, tenant: Tenant
) -> None:
    env: Env = await env_factory()
    await env.api.import_orders(tenant, order_input(tenant, "#1001"))
    gid = (await env.export(tenant.merchant_token, format="XLSX"))["export"]["id"]
    await env.worker().drain()
    shown = await env.show(tenant.merchant_token, gid)
    assert shown is not None and shown["status"] == "SUCCEEDED"
    url = local(shown["downloadUrl"])
    export_id = int(gid.rsplit("/", 1)[1])

    good = await env.client.get(url)
    assert good.status_code == 200
    assert good.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert good.content.startswith(b"PK")
    path, _, query = url.partition("?")
    assert (await env.client.get(path)).status_code == 403
    assert (await env.client.get(url[:-1] + ("0" if url[-1] != "0" else "1"))).status_code == 403
    assert (await env.client.get(url.replace(f"/{export_id}/", f"/{export_id + 1}/"))).status_code == 403
    stretched = query.replace("expires=", "expires=9")
    assert (await env.client.get(f"{path}?{stretched}")).status_code == 403
    missing = signed_url("", SECRET, f"/exports/{export_id + 50}/download", utcnow() + timedelta(days=1))
    assert (await env.client.get(missing)).status_code == 404
    assert (await env.client.get("/exports/abc/download?expires=1&signature=x")).status_code == 404
    lapsed = signed_url("", SECRET, f"/exports/{export_id}/download", utcnow() - timedelta(seconds=1))
    response = await env.client.get(lapsed)
    assert response.status_code == 410 and "expired" in response.json()["error"]

    # Once the schedule expires the export, its (still signed) link answers 410 and the file is gone.
    clock_now = utcnow() + timedelta(days=8)
    async with env.db.write() as session:
        await enqueue(session, exports.EXPIRE_KIND, run_at=clock_now)
    await env.worker(clock=lambda: clock_now).drain()
    still_signed = signed_url("", SECRET, f"/exports/{export_id}/download", utcnow() + timedelta(days=1))
    assert (await env.client.get(still_signed)).status_code == 410
    shown = await env.show(tenant.merchant_token, gid)
    assert shown is not None and (shown["status"], shown["downloadUrl"]) == ("EXPIRED", None)
    assert list(env.settings.export_dir.iterdir()) == []


async def test_bad_input_is_a_user_error_at_once_and_scope_is_required(
    env_factory: Any, tenant: Tenant, other_tenant: Tenant
) -> None:
    env: Env = await env_factory()
    [foreign] = await env.api.import_orders(other_tenant, order_input(other_tenant, "#1001"))
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"query": "created_at:>not-a-date"}, ["query"]),
        ({"query": "(unbalanced"}, ["query"]),
        ({"email": "nobody"}, ["email"]),
        ({"ids": [to_global_id("Supplier", 1)]}, ["ids", "0"]),
        ({"ids": [foreign["id"]]}, ["ids", "0"]),
    ]
    for fields, path in cases:
        payload = await env.export(tenant.merchant_token, **fields)
        assert payload["export"] is None, fields
        assert [error["field"] for error in payload["userErrors"]] == [path], fields
    async with env.db.read() as session:
        assert (await session.execute(select(Export))).first() is None

    denied = await env.api.gql(tenant.readonly_token, EXPORT, {"input": {"format": "CSV"}})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    denied = await env.api.gql(tenant.readonly_token, LIST)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    denied = await env.api.gql(tenant.supplier_tokens[0], EXPORT, {"input": {"format": "CSV"}})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_without_smtp_the_export_succeeds_and_shows_its_link(env_factory: Any, tenant: Tenant) -> None:
    env: Env = await env_factory(smtp_url="")
    await env.api.import_orders(tenant, order_input(tenant, "#1001"))
    gid = (await env.export(tenant.merchant_token, email="me@shop.test", layout="ORDER"))["export"]["id"]
    await env.worker().drain()
    shown = await env.show(tenant.merchant_token, gid)
    assert shown is not None and shown["status"] == "SUCCEEDED" and shown["downloadUrl"]
    response = await env.client.get(local(shown["downloadUrl"]))
    assert [row["Lineitem name"] for row in csv_rows(response.content)] == ["Phone case; Charger"]
    async with env.db.read() as session:
        export = (await session.execute(select(Export))).scalar_one()
    assert export.emailed_at is None


async def test_a_file_over_the_attachment_limit_is_linked_not_attached(
    env_factory: Any, tenant: Tenant, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    env: Env = await env_factory(smtp_url=f"smtp://127.0.0.1:{port}", export_attachment_max_bytes=200)
    await env.api.import_orders(tenant, order_input(tenant, "#1001"))
    await env.export(tenant.merchant_token, email="me@shop.test")
    await env.worker().drain()
    [message] = inbox.messages
    assert list(message.iter_attachments()) == []
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "too large to attach" in text and "/download?expires=" in text


async def test_a_failed_export_mails_what_failed(
    env_factory: Any, tenant: Tenant, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    blocker = tmp_path / "occupied"
    blocker.write_text("not a directory")
    env: Env = await env_factory(smtp_url=f"smtp://127.0.0.1:{port}", export_dir_override=str(blocker / "x"))
    await env.api.import_orders(tenant, order_input(tenant, "#1001"))
    gid = (await env.export(tenant.merchant_token, email="me@shop.test"))["export"]["id"]
    now = utcnow()
    for hours in range(4):
        moment = now + timedelta(hours=hours)
        await env.worker(clock=lambda moment=moment: moment, rand=lambda: 1.0).drain()
    shown = await env.show(tenant.merchant_token, gid)
    assert shown is not None and shown["status"] == "FAILED" and "NotADirectoryError" in shown["error"]
    [message] = inbox.messages
    assert "failed" in message["Subject"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "NotADirectoryError" in body.get_content()


# --- STARTTLS and login ---------------------------------------------------------------------------------------


@pytest.fixture
def tls_smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, int]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
    ]
    subprocess.run(
        [*request, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this test server's certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"s3cret:x")
        if ok:
            inbox.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    yield inbox, controller.port
    controller.stop()


async def test_mail_goes_through_starttls_with_login(
    env_factory: Any, tenant: Tenant, tls_smtp: tuple[Inbox, int]
) -> None:
    inbox, port = tls_smtp
    wrong: Env = await env_factory(smtp_url=f"smtp://mailer:wrong@127.0.0.1:{port}?starttls=1")
    await wrong.api.import_orders(tenant, order_input(tenant, "#1001"))
    await wrong.export(tenant.merchant_token, email="me@shop.test")
    await wrong.worker().drain()
    assert inbox.messages == []
    async with wrong.db.read() as session:
        notify = (await session.execute(select(Job).where(Job.kind == exports.NOTIFY_KIND))).scalar_one()
    assert notify.status is JobStatus.QUEUED and "535" in (notify.last_error or "")

    right: Env = await env_factory(smtp_url=f"smtp://mailer:s3cret%3Ax@127.0.0.1:{port}?starttls=1")
    later = utcnow() + timedelta(hours=1)
    await right.worker(clock=lambda: later).drain()
    [message] = inbox.messages
    assert inbox.logins == ["mailer"] and "ready" in message["Subject"]


# --- a worker killed mid-export -------------------------------------------------------------------------------


async def test_export_of_a_killed_worker_starts_over_and_finishes_once(
    env_factory: Any, tenant: Tenant, tmp_path: Path
) -> None:
    env: Env = await env_factory()
    for start in (1000, 1100):
        await env.api.import_orders(tenant, *(order_input(tenant, f"#{start + n}") for n in range(100)))
    gid = (await env.export(tenant.merchant_token))["export"]["id"]
    export_id = int(gid.rsplit("/", 1)[1])
    process_env = {
        **os.environ,
        "DROPDESK_DATABASE_URL": env.db.url,
        "DROPDESK_SECRET_KEY": SECRET,
        "DROPDESK_DATA_DIR": str(tmp_path),
        "DROPDESK_PUBLIC_URL": PUBLIC,
        "DROPDESK_SMTP_URL": "",
        "DROPDESK_EXPORT_BATCH_ORDERS": "1",
    }
    command = [sys.executable, "-m", "api.cli", "worker", "--concurrency", "1", "--lease", "1.5"]
    command += ["--poll-interval", "0.1", "--grace", "0"]
    processes: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, cwd=ROOT, env=process_env, stderr=subprocess.DEVNULL)
        processes.append(process)
        return process

    async def current() -> Export:
        async with env.db.read() as session:
            export = await session.get(Export, export_id, populate_existing=True)
        assert export is not None
        return export

    async def wait_for(check: Any, timeout: float) -> Export:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            export = await current()
            if check(export):
                return export
            assert asyncio.get_running_loop().time() < deadline, f"export stuck at {export.status}"
            await asyncio.sleep(0.01)

    try:
        doomed = spawn()
        running = await wait_for(lambda e: e.status is ExportStatus.RUNNING and e.rows_total, timeout=30)
        doomed.send_signal(signal.SIGKILL)  # no chance to release the job or tidy up
        doomed.wait(timeout=10)
        assert (running.attempt, running.rows_total) == (1, 400)
        assert (await current()).status is ExportStatus.RUNNING

        spawn()
        done = await wait_for(lambda e: e.status in exports.FINISHED, timeout=60)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    assert (done.status, done.attempt, done.row_count, done.rows_done) == (
        ExportStatus.SUCCEEDED,
        2,
        400,
        400,
    )
    assert done.file_name == f"export-{export_id}-2.csv"
    rows = csv_rows((env.settings.export_dir / done.file_name).read_bytes())
    assert len(rows) == 400
    assert len({(row["Name"], row["Lineitem sku"]) for row in rows}) == 400
    assert sorted(path.name for path in env.settings.export_dir.iterdir()) == [done.file_name]
    async with env.db.read() as session:
        job = await session.get(Job, done.job_id)
    assert job is not None and (job.attempts, job.last_error) == (2, LEASE_EXPIRED)


# --- races, figures that follow money, the command line ------------------------------------------------------


async def test_concurrent_export_requests_each_get_their_export_and_job(
    env_factory: Any, tenant: Tenant
) -> None:
    env: Env = await env_factory()
    await env.api.import_orders(tenant, order_input(tenant, "#1001"))
    payloads = await asyncio.gather(
        *(env.export(tenant.merchant_token, format="CSV", query=f"total:>{n}") for n in range(8))
    )
    assert all(payload["userErrors"] == [] for payload in payloads)
    async with env.db.read() as session:
        rows = list((await session.execute(select(Export.id, Export.job_id, Export.query))).all())
        jobs = list(
            (await session.execute(select(Job.id, Job.key).where(Job.kind == exports.BUILD_KIND))).all()
        )
    assert len(rows) == len({row.id for row in rows}) == 8
    assert sorted(row.query for row in rows) == sorted(f"total:>{n}" for n in range(8))
    assert {job.key for job in jobs} == {f"{exports.BUILD_KIND}:{row.id}" for row in rows}
    assert {job.id for job in jobs} == {row.job_id for row in rows}


MARGINS = "{ orders(first: 10) { nodes { number supplierCost { amount } margin { amount } } } }"


async def test_export_figures_match_what_graphql_shows_after_a_cancellation(
    env_factory: Any, tenant: Tenant
) -> None:
    env: Env = await env_factory()
    cancelled = order_input(tenant, "#1002")
    cancelled["supplierOrders"][0].update(status="FINISH", endReason="cancel_order_close_trade")
    await env.api.import_orders(tenant, order_input(tenant, "#1001"), cancelled)
    gid = (await env.export(tenant.merchant_token, layout="ORDER"))["export"]["id"]
    await env.worker().drain()
    shown = await env.show(tenant.merchant_token, gid)
    assert shown is not None
    rows = csv_rows((await env.client.get(local(shown["downloadUrl"]))).content)
    exported = {row["Name"]: (row["Supplier Cost"], row["Margin"]) for row in rows}
    graphql = {
        node["number"]: (node["supplierCost"]["amount"], node["margin"]["amount"])
        for node in (await env.api.data(tenant.merchant_token, MARGINS))["orders"]["nodes"]
    }
    assert exported == graphql
    assert exported["#1002"] == ("8.00", "41.99")  # the cancelled supplier order costs nothing


async def test_cli_export_writes_the_file_with_a_progress_bar(
    env_factory: Any, tenant: Tenant, tmp_path: Path
) -> None:
    env: Env = await env_factory()
    await env.api.import_orders(tenant, order_input(tenant, "#1001"), order_input(tenant, "#1002"))
    out = tmp_path / "orders.xlsx"
    process_env = {key: value for key, value in os.environ.items() if not key.startswith("DROPDESK_")}
    process_env.update(DROPDESK_DATABASE_URL=env.db.url, DROPDESK_DATA_DIR=str(tmp_path))
    command = [sys.executable, "-m", "api.cli", "export", "--shop", str(tenant.shop_id), "--format", "xlsx"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=process_env, capture_output=True, text=True, timeout=120, check=False
        )

    done = await asyncio.to_thread(run, "--query", "number:1002", "--layout", "order", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "1/1 rows" in done.stderr and "rows/s" in done.stderr and "done" in done.stderr
    assert "wrote 1 rows" in done.stdout
    sheet = load_workbook(out)["Orders"]
    assert [cell.value for cell in sheet[2]][:2] == ["#1002", "ana@example.com"]
    bad = await asyncio.to_thread(run, "--query", "total:>>", "--out", str(tmp_path / "bad.xlsx"))
    assert bad.returncode == 2 and "invalid search query" in bad.stderr
    assert not (tmp_path / "bad.xlsx").exists()

    # A line-item CSV of more than one batch, read and formatted by processes forked from the command.
    await env.api.import_orders(tenant, *(order_input(tenant, f"#{1003 + n}") for n in range(5)))
    files = []
    for processes in ("1", "2"):
        process_env.update(DROPDESK_EXPORT_BATCH_ORDERS="2", DROPDESK_EXPORT_PROCESSES=processes)
        csv_out = tmp_path / f"orders-{processes}.csv"
        done = await asyncio.to_thread(run, "--format", "csv", "--out", str(csv_out))
        assert done.returncode == 0, done.stderr
        assert "14/14 rows" in done.stderr
        files.append(csv_out.read_bytes())
    assert files[0] == files[1] and files[0].count(b"\r\n") == 15
    assert sorted(path.name for path in tmp_path.glob("*.csv")) == ["orders-1.csv", "orders-2.csv"]
