"""GraphiQL served by the app: its assets over HTTP, and a query run in headless Chromium with no request
leaving the machine (the IDE must work without internet access)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from api import graphiql
from api.app import create_app
from config.settings import load_settings
from db.engine import Database
from db.models import Shop
from tests.factories import make_tenant

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SETUP_HINT = "run `tests/browser_setup.sh .venv` as root (installs Debian's chromium and playwright)"
SCREENSHOT = Path("/tmp/graphiql.png")

# CodeMirror keeps each editor's instance on its wrapper element.
HEADER_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
RESULT = ".result-window .CodeMirror"


def app_over(db: Database) -> Starlette:
    settings = replace(load_settings(), database_url=db.url, run_worker_in_server=False)
    return create_app(settings, db)


@pytest.fixture
def assets() -> Path:
    """Installs the assets the first time (needs npm); instant afterwards."""
    try:
        return graphiql.install_assets()
    except graphiql.AssetInstallError as error:
        pytest.fail(f"GraphiQL assets could not be installed: {error}")


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Runs the app with uvicorn in this event loop, on a free port bound before the server starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                pytest.fail("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def paste_into(page: Page, selector: str, text: str) -> None:
    """Does what a user does: click the editor, select everything, paste."""
    await page.click(f"{selector} .CodeMirror-lines")
    await page.keyboard.press("Control+a")
    await page.keyboard.insert_text(text)


async def test_graphiql_runs_a_query_offline_in_chromium(db: Database, assets: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: {SETUP_HINT}")
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        pytest.fail(f"the playwright package is missing: {SETUP_HINT}")

    tenant = await make_tenant(db)
    async with db.read() as session:
        shop = await session.get(Shop, tenant.shop_id)
        assert shop is not None
        shop_name = shop.name

    async with serving(app_over(db)) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 850})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))

            response = await page.goto(f"{base}/graphql")
            assert response is not None and response.status == 200
            await page.wait_for_selector(QUERY_EDITOR, timeout=20_000)

            default_headers = await page.evaluate(
                f"document.querySelector({json.dumps(HEADER_EDITOR)}).CodeMirror.getValue()"
            )
            assert json.loads(default_headers) == {"Authorization": "Bearer <paste a token>"}

            headers = json.dumps({"Authorization": f"Bearer {tenant.merchant_token}"})
            await paste_into(page, HEADER_EDITOR, headers)
            await paste_into(page, QUERY_EDITOR, "{ shop { name } }")
            await page.click(".graphiql-execute-button")
            await expect(page.locator(".result-window")).to_contain_text(shop_name, timeout=15_000)
            result = await page.evaluate(
                f"document.querySelector({json.dumps(RESULT)}).CodeMirror.getValue()"
            )
            assert json.loads(result)["data"] == {"shop": {"name": shop_name}}

            # With the token in place the schema loads, and the explorer plugin lists the root fields.
            await page.click("button[aria-label='Re-fetch GraphQL schema']")
            await page.click("button[aria-label='Show GraphiQL Explorer']")
            await expect(page.locator(".graphiql-explorer-root")).to_contain_text("shop", timeout=15_000)
            await page.screenshot(path=str(SCREENSHOT))
        finally:
            await browser.close()

    assert requested, "the page made no requests at all"
    outside = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert not outside, f"requests left the machine: {outside}"
    assert any("/graphiql/assets/graphiql.min.js" in url for url in requested)
    blocked = [line for line in console if "Content Security Policy" in line or line.startswith("pageerror")]
    assert not blocked, blocked


async def test_assets_are_served_with_types_and_cache_headers(db: Database, assets: Path) -> None:
    transport = httpx.ASGITransport(app=app_over(db))
    async with httpx.AsyncClient(transport=transport, base_url="http://dropdesk.test") as client:
        js = await client.get("/graphiql/assets/graphiql.min.js")
        css = await client.get("/graphiql/assets/graphiql.min.css")
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        refused = [
            (await client.get(f"/graphiql/assets/{name}")).status_code
            for name in ("versions.json", "..%2F..%2Fpyproject.toml", "..", "nope.js")
        ]
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "immutable" in js.headers["cache-control"]
    assert js.content == (assets / "graphiql.min.js").read_bytes()
    assert page.status_code == 200 and "/graphiql/assets/graphiql.min.js?v=" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert refused == [404, 404, 404, 404]


async def test_page_explains_how_to_install_missing_assets(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graphiql, "assets_dir", lambda: tmp_path)
    transport = httpx.ASGITransport(app=app_over(db))
    async with httpx.AsyncClient(transport=transport, base_url="http://dropdesk.test") as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        asset = await client.get("/graphiql/assets/graphiql.min.js")
    assert page.status_code == 503
    assert "python -m api.graphiql" in page.text
    assert asset.status_code == 404
