"""Races over real HTTP on read-then-write paths: tags added and removed on one order at once, the per-shop
limits of saved searches and webhook subscriptions, two saved searches renamed to one name, and one return
approved and declined at once. The same tests
run on SQLite and PostgreSQL; the rows are checked afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from db.engine import Database
from db.models import OrderEvent, Return, SavedSearch, WebhookSubscription
from domain.saved_searches import MAX_PER_SHOP
from domain.webhooks import MAX_SUBSCRIPTIONS_PER_SHOP
from schema.ids import parse_id
from tests.api import test_cancellation_races as races
from tests.api.test_order_notes_and_tags import ORDER, TAGS_ADD, TAGS_REMOVE
from tests.api.test_outbound_webhooks import SUBSCRIBE
from tests.api.test_returns import APPROVE, DECLINE, REQUEST, set_policies, shipped_order
from tests.api.test_saved_searches import CREATE, UPDATE
from tests.factories import Api, Tenant, order_input

RACERS = 12

# The uvicorn server and its client, shared with the cancellation races.
base_url = races.base_url
client = races.client
graphql = races.graphql


def error_codes(payload: Any) -> list[str]:
    return [error["code"] for error in payload["userErrors"]]


async def test_tags_added_and_removed_at_once_keep_order_and_history_in_step(
    api: Api, tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    """Each racer adds its own tag, removes one tag given beforehand, and adds or removes a shared one."""
    given = [f"r{index}" for index in range(RACERS)]
    [order] = await api.import_orders(tenant, order_input(tenant, "#8101", tags=given))
    order_id = order["id"]

    def change(mutation: str, tag: str) -> Any:
        return graphql(client, tenant.merchant_token, mutation, {"input": {"id": order_id, "tags": [tag]}})

    answers = await asyncio.gather(
        *(change(TAGS_ADD, f"a{index}") for index in range(RACERS)),
        *(change(TAGS_REMOVE, f"r{index}") for index in range(RACERS)),
        *(change(TAGS_ADD if index % 2 else TAGS_REMOVE, "shared") for index in range(RACERS)),
    )
    assert all(not error_codes(next(iter(answer.values()))) for answer in answers), answers
    tags = (await api.data(tenant.merchant_token, ORDER, {"id": order_id}))["order"]["tags"]
    assert sorted(tag for tag in tags if tag != "shared") == sorted(f"a{index}" for index in range(RACERS))
    async with db.read() as session:
        events = (
            await session.execute(
                select(OrderEvent.type, OrderEvent.data)
                .where(
                    OrderEvent.order_id == parse_id(order_id, "Order"),
                    OrderEvent.type.in_(["tags_added", "tags_removed"]),
                )
                .order_by(OrderEvent.id)
            )
        ).all()
    # Every change is one event, and only a real change: the shared tag's history ends where the order is.
    shared = [kind for kind, data in events if data["tags"] == ["shared"]]
    assert shared.count("tags_added") - shared.count("tags_removed") == (1 if "shared" in tags else 0)
    assert all(kind != shared[i - 1] for i, kind in enumerate(shared) if i), shared
    assert len(events) - len(shared) == 2 * RACERS


async def test_saved_searches_racing_for_the_last_place_create_one(
    tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    async with db.write() as session:
        session.add_all(
            SavedSearch(shop_id=tenant.shop_id, name=f"kept {index}", query="", created_by="test")
            for index in range(MAX_PER_SHOP - 1)
        )
    answers = await asyncio.gather(
        *(
            graphql(client, tenant.merchant_token, CREATE, {"input": {"name": f"new {index}", "query": ""}})
            for index in range(RACERS)
        )
    )
    codes = sorted(error_codes(answer["savedSearchCreate"]) for answer in answers)
    assert codes.count([]) == 1 and codes.count(["TOO_MANY"]) == RACERS - 1, codes
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(SavedSearch)) == MAX_PER_SHOP


async def test_webhook_subscriptions_racing_for_the_last_place_create_one(
    tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    async with db.write() as session:
        session.add_all(
            WebhookSubscription(
                shop_id=tenant.shop_id,
                url=f"https://hooks.example.com/{index}",
                topics=["orders/created"],
                secret="s",
            )
            for index in range(MAX_SUBSCRIPTIONS_PER_SHOP - 1)
        )
    answers = await asyncio.gather(
        *(
            graphql(
                client,
                tenant.merchant_token,
                SUBSCRIBE,
                {"input": {"url": f"https://hooks.example.com/new/{index}", "topics": ["orders/created"]}},
            )
            for index in range(RACERS)
        )
    )
    codes = sorted(error_codes(answer["webhookSubscriptionCreate"]) for answer in answers)
    assert codes.count([]) == 1 and codes.count(["TOO_MANY"]) == RACERS - 1, codes
    async with db.read() as session:
        count = await session.scalar(select(func.count()).select_from(WebhookSubscription))
    assert count == MAX_SUBSCRIPTIONS_PER_SHOP


async def test_saved_searches_renamed_to_one_name_at_once_keep_it_once(
    tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    created = [
        await graphql(client, tenant.merchant_token, CREATE, {"input": {"name": f"view {index}"}})
        for index in range(RACERS)
    ]
    ids = [answer["savedSearchCreate"]["savedSearch"]["id"] for answer in created]
    answers = await asyncio.gather(
        *(
            graphql(client, tenant.merchant_token, UPDATE, {"input": {"id": search_id, "name": "Everything"}})
            for search_id in ids
        )
    )
    codes = sorted(error_codes(answer["savedSearchUpdate"]) for answer in answers)
    assert codes.count([]) == 1 and codes.count(["ALREADY_EXISTS"]) == RACERS - 1, codes
    async with db.read() as session:
        names = sorted((await session.scalars(select(SavedSearch.name))).all())
    assert names.count("Everything") == 1 and len(names) == RACERS


async def test_one_return_approved_and_declined_at_once_is_decided_once(
    api: Api, tenant: Tenant, client: httpx.AsyncClient, db: Database
) -> None:
    await set_policies(api, tenant)
    order_id, [line, _] = await shipped_order(api, tenant, "#8201")
    requested = await graphql(
        client,
        tenant.merchant_token,
        REQUEST,
        {
            "input": {
                "orderId": order_id,
                "lines": [{"orderLineId": line, "quantity": 1, "reason": "UNWANTED"}],
            }
        },
    )
    return_id = requested["returnRequest"]["return"]["id"]
    decisions = [
        (APPROVE, "returnApprove", {"id": return_id}),
        (DECLINE, "returnDecline", {"id": return_id, "reason": "FINAL_SALE"}),
    ]
    answers = await asyncio.gather(
        *(
            graphql(client, tenant.merchant_token, document, {"input": input})
            for index in range(RACERS)
            for document, _, input in [decisions[index % len(decisions)]]
        )
    )
    names = [decisions[index % len(decisions)][1] for index in range(RACERS)]
    outcomes = [(name, error_codes(answer[name])) for name, answer in zip(names, answers, strict=True)]
    winners = [name for name, codes in outcomes if not codes]
    assert len(winners) == 1, outcomes
    assert all(codes == ["INVALID_TRANSITION"] for name, codes in outcomes if codes), outcomes
    expected = {"returnApprove": "APPROVED", "returnDecline": "DECLINED", "returnCancel": "CANCELED"}[
        winners[0]
    ]
    async with db.read() as session:
        status = await session.scalar(select(Return.status).where(Return.id == parse_id(return_id, "Return")))
        decided = await session.scalar(
            select(func.count())
            .select_from(OrderEvent)
            .where(OrderEvent.type.in_(["return_approved", "return_declined"]))
        )
    assert (str(status), decided) == (expected, 1)
