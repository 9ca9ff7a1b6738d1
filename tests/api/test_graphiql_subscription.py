"""GraphiQL runs a subscription in headless Chromium: the token given in the page's token field authenticates
the WebSocket (connection_init), and an order event committed meanwhile shows up in the result pane."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from db.engine import Database
from tests.api.test_graphiql_browser import (
    ARTIFACTS,
    CHROMIUM,
    LAUNCH_ARGS,
    QUERY_EDITOR,
    SETUP_HINT,
    TOKEN_FIELD,
    app_over,
    assets,  # noqa: F401  (fixture)
    paste_into,
    serving,
)
from tests.factories import IMPORT, make_tenant, order_input

SCREENSHOT = ARTIFACTS / "5-subscription.png"


async def test_graphiql_runs_a_subscription(db: Database, assets: Path) -> None:  # noqa: F811
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: {SETUP_HINT}")
    from playwright.async_api import async_playwright, expect

    tenant = await make_tenant(db)
    async with serving(app_over(db)) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 850})
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            await page.goto(f"{base}/graphql")
            await page.wait_for_selector(QUERY_EDITOR, timeout=20_000)
            await page.locator(TOKEN_FIELD).fill(tenant.merchant_token)
            await page.locator(TOKEN_FIELD).press("Enter")
            await expect(page.locator("#dropdesk-token-status")).to_contain_text(
                "merchant token", timeout=15_000
            )
            await paste_into(
                page, QUERY_EDITOR, "subscription { orderEvents { type message order { number } } }"
            )
            # The editor parses what was typed a moment later; run once it knows this is a subscription.
            await page.wait_for_timeout(1000)
            await page.click(".graphiql-execute-button")

            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                # Changed until an event shows, since the page subscribes a moment after the click.
                for attempt in range(40):
                    variables = {"input": {"orders": [order_input(tenant, "#6101", note=str(attempt))]}}
                    response = await client.post(
                        "/graphql",
                        json={"query": IMPORT, "variables": variables},
                        headers={"Authorization": f"Bearer {tenant.merchant_token}"},
                    )
                    assert response.json()["data"]["ordersImport"]["userErrors"] == []
                    if "#6101" in (await page.locator(".result-window").inner_text()):
                        break
                    await page.wait_for_timeout(250)
            await expect(page.locator(".result-window")).to_contain_text("#6101", timeout=5_000)
            # The pane shows the latest event streamed: the first import or one of the re-imports after it.
            await expect(page.locator(".result-window")).to_contain_text(
                re.compile(r"order_(imported|updated)")
            )
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT))
        finally:
            await browser.close()
    assert sockets and all(url.startswith(base.replace("http", "ws")) for url in sockets), sockets
    blocked = [line for line in console if "Content Security Policy" in line or line.startswith("pageerror")]
    assert not blocked, blocked
