"""GraphiQL served by the app: its assets over HTTP, and a query run in headless Chromium with no request
leaving the machine (the IDE must work without internet access)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
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
# Screenshots are CI artefacts: a git-ignored folder of the working tree that `.ci/run` leaves in place.
ARTIFACTS = Path(__file__).resolve().parents[2] / "ci-artifacts" / "graphiql"
SCREENSHOTS = ("1-token-given.png", "2-docs-order.png", "3-query-result.png", "4-bad-token.png")
ORDER_DESCRIPTION = "A customer's store order, with the supplier orders that fulfil it."
TOKEN_FIELD = "#dropdesk-token"

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


async def test_graphiql_takes_a_token_loads_the_docs_and_runs_a_query_offline(
    db: Database, assets: Path
) -> None:
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
    token = tenant.merchant_token
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    async with serving(app_over(db)) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 850})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))

            # The root leads to the IDE, which opens asking for a token.
            response = await page.goto(f"{base}/")
            assert response is not None and response.status == 200
            assert urlsplit(page.url).path == "/graphql"
            await page.wait_for_selector(QUERY_EDITOR, timeout=20_000)
            status = page.locator("#dropdesk-token-status")
            await expect(status).to_have_text("no token yet")

            # A token typed in the field is checked, and the schema is fetched again with it.
            await page.locator(TOKEN_FIELD).fill(token)
            await page.locator(TOKEN_FIELD).press("Enter")
            await expect(status).to_have_text(
                f"merchant token \u201cstaff\u201d of {shop_name}", timeout=15_000
            )
            await page.screenshot(path=str(ARTIFACTS / "1-token-given.png"))

            # The docs work at once: Query -> order -> Order shows the type's description.
            await page.click("button[aria-label='Show Documentation Explorer']")
            docs = page.locator(".graphiql-doc-explorer")
            await docs.locator("a.graphiql-doc-explorer-type-name", has_text="Query").first.click()
            await docs.locator("a.graphiql-doc-explorer-field-name", has_text=re.compile("^order$")).click()
            await docs.locator(
                "a.graphiql-doc-explorer-type-name", has_text=re.compile("^Order$")
            ).first.click()
            await expect(docs).to_contain_text(ORDER_DESCRIPTION, timeout=15_000)
            await page.screenshot(path=str(ARTIFACTS / "2-docs-order.png"))

            # The default query runs for any kind of token.
            await page.click(".graphiql-execute-button")
            await expect(page.locator(".result-window")).to_contain_text(shop_name, timeout=15_000)
            result = await page.evaluate(
                f"document.querySelector({json.dumps(RESULT)}).CodeMirror.getValue()"
            )
            viewer = json.loads(result)["data"]["viewer"]
            assert viewer["kind"] == "MERCHANT" and viewer["shop"]["name"] == shop_name
            await page.screenshot(path=str(ARTIFACTS / "3-query-result.png"))

            # A query of the user's own, typed as a user types it.
            await paste_into(page, QUERY_EDITOR, "{ shop { name } }")
            await page.click(".graphiql-execute-button")
            # The result pane empties while the query runs: wait for the new answer itself.
            await page.wait_for_function(
                """(selector) => {
                    const text = document.querySelector(selector).CodeMirror.getValue();
                    return text.includes('"data"') && !text.includes("viewer");
                }""",
                arg=RESULT,
                timeout=15_000,
            )
            result = await page.evaluate(
                f"document.querySelector({json.dumps(RESULT)}).CodeMirror.getValue()"
            )
            assert json.loads(result)["data"] == {"shop": {"name": shop_name}}

            # The token survives a reload (browser storage), and never appears in the URL.
            stored = await page.evaluate(f"localStorage.getItem({json.dumps(graphiql.TOKEN_STORAGE_KEY)})")
            assert stored == token
            await page.reload()
            await page.wait_for_selector(QUERY_EDITOR, timeout=20_000)
            await expect(page.locator(TOKEN_FIELD)).to_have_value(token)
            await expect(status).to_contain_text(shop_name, timeout=15_000)

            # A bad token is refused with the server's reason.
            await page.locator(TOKEN_FIELD).fill("ddm_not-a-token")
            await page.locator(TOKEN_FIELD).press("Enter")
            await expect(status).to_have_text("invalid or revoked token", timeout=15_000)
            await page.screenshot(path=str(ARTIFACTS / "4-bad-token.png"))

            # Or the header editor, as GraphiQL users are used to: the token is taken from it.
            await page.click("button:has-text('Forget')")
            await expect(status).to_have_text("no token yet")
            await page.click("button:has-text('Headers')")
            await paste_into(page, HEADER_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
            await expect(status).to_contain_text(shop_name, timeout=15_000)
            await expect(page.locator(TOKEN_FIELD)).to_have_value(token)
        finally:
            await browser.close()

    assert requested, "the page made no requests at all"
    outside = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert not outside, f"requests left the machine: {outside}"
    assert not [url for url in requested if token in url], "the token reached a URL"
    assert any("/graphiql/assets/graphiql.min.js" in url for url in requested)
    blocked = [line for line in console if "Content Security Policy" in line or line.startswith("pageerror")]
    assert not blocked, blocked
    assert all((ARTIFACTS / name).stat().st_size > 10_000 for name in SCREENSHOTS)


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
