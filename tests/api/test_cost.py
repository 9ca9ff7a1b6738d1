"""Query cost before execution, the per-query maximum, the leaky bucket per token, extensions.cost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from api.app import create_app
from config.settings import load_settings
from db.engine import Database, StatementCounter, statement_counter
from schema.cost import CostBuckets
from tests.factories import Api, Tenant, order_input

SMALL_PAGE = "{ orders(first: 5) { pageInfo { hasNextPage } nodes { number total { amount } } } }"


async def test_cost_is_reported_on_every_answer(api: Api, tenant: Tenant) -> None:
    await api.import_orders(tenant, order_input(tenant, "#1"), order_input(tenant, "#2"))
    body = await api.gql(tenant.merchant_token, SMALL_PAGE)
    cost = body["extensions"]["cost"]
    # connection 1 + pageInfo 1 + 5 x (order 1 + total 1); actual: 2 orders came back.
    assert cost["requestedQueryCost"] == 12
    assert cost["actualQueryCost"] == 6
    assert cost["throttleStatus"]["maximumAvailable"] == 2000
    assert cost["throttleStatus"]["restoreRate"] == 100
    assert 1950 <= cost["throttleStatus"]["currentlyAvailable"] <= 2000

    edges = await api.gql(
        tenant.merchant_token, "{ orders(first: 3) { edges { cursor node { number customer { name } } } } }"
    )
    assert edges["extensions"]["cost"]["requestedQueryCost"] == 1 + 3 * 2
    assert edges["extensions"]["cost"]["actualQueryCost"] == 1 + 2 * 2

    failed = await api.gql(tenant.merchant_token, "{ orders(first: 1) { nodes { colour } } }")
    assert "cost" in failed["extensions"]
    syntax = await api.gql(tenant.merchant_token, "{ orders(")
    assert syntax["extensions"]["cost"]["requestedQueryCost"] == 0


async def test_variables_and_mutations_count(api: Api, tenant: Tenant) -> None:
    body = await api.gql(
        tenant.merchant_token, "query($n: Int) { orders(first: $n) { nodes { number } } }", {"n": 40}
    )
    assert body["extensions"]["cost"]["requestedQueryCost"] == 41
    mutation = await api.gql(
        tenant.merchant_token,
        "mutation($input: OrdersImportInput!) { ordersImport(input: $input) { orders { id } userErrors { code } } }",
        {"input": {"orders": [order_input(tenant, "#9")]}},
    )
    # 10 for the mutation, 1 for its payload, 1 for the orders list, 1 for each error object.
    assert mutation["extensions"]["cost"]["requestedQueryCost"] == 13


async def test_a_query_over_the_maximum_is_refused_before_any_sql(api: Api, tenant: Tenant) -> None:
    heavy = " ".join(
        f"a{n}: orders(first: 250) {{ nodes {{ number lines {{ title }} supplierOrders {{ status "
        f"packages {{ trackingNumber events {{ status }} }} }} events {{ type }} }} }}"
        for n in range(30)
    )
    counter = StatementCounter()
    reset = statement_counter.set(counter)
    try:
        body = await api.gql(tenant.merchant_token, "{ " + heavy + " }")
    finally:
        statement_counter.reset(reset)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["cost"] == 30 * (1 + 250 * 6)
    assert body["data"] is None
    # Only the token lookup ran (and perhaps its last-use write); no resolver reached the database.
    assert all("access_tokens" in statement for statement in counter.statements), counter.statements


@pytest.fixture
async def throttled_client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = replace(
        load_settings(), database_url=db.url, cost_bucket_size=60, cost_restore_rate=10, max_query_cost=50
    )
    app = create_app(settings, db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


async def test_the_bucket_throttles_with_the_seconds_to_wait(
    throttled_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    query = "{ orders(first: 40) { nodes { number } } }"  # costs 41
    headers = {"Authorization": f"Bearer {tenant.merchant_token}"}
    first = (await throttled_client.post("/graphql", json={"query": query}, headers=headers)).json()
    assert "errors" not in first
    # Nothing came back, so the unused 41 points were given back: the bucket is nearly full again.
    assert first["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] >= 59

    spend = "{ " + " ".join(f"s{n}: shop {{ name }}" for n in range(25)) + " }"  # costs 25, all used
    for _ in range(2):
        spent = (await throttled_client.post("/graphql", json={"query": spend}, headers=headers)).json()
        assert "errors" not in spent
    response = await throttled_client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "THROTTLED"
    assert 2.5 <= error["extensions"]["retryAfterSeconds"] <= 3.2
    assert response.headers["retry-after"] == "4" or response.headers["retry-after"] == "3"
    assert body["data"] is None
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 41

    # Another token has its own bucket.
    other = {"Authorization": f"Bearer {tenant.readonly_token}"}
    assert (
        "errors" not in (await throttled_client.post("/graphql", json={"query": query}, headers=other)).json()
    )

    # Under application/graphql-response+json a throttled request is an HTTP 429.
    strict = await throttled_client.post(
        "/graphql",
        json={"query": spend},
        headers={**headers, "Accept": "application/graphql-response+json"},
    )
    assert strict.status_code == 429
    assert strict.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in strict.json()


def test_the_bucket_leaks_back_at_the_restore_rate() -> None:
    now = [100.0]
    buckets = CostBuckets(size=100, restore_rate=10, clock=lambda: now[0])
    assert buckets.take("t", 80) is None
    assert buckets.status("t").currently_available == 20
    assert buckets.take("t", 50) == pytest.approx(3.0)
    now[0] += 3
    assert buckets.take("t", 50) is None
    buckets.give_back("t", 30)
    assert buckets.status("t").currently_available == 30
    now[0] += 100
    assert buckets.status("t").currently_available == 100


async def test_a_document_sent_again_is_costed_and_checked_by_its_variables(api: Api, tenant: Tenant) -> None:
    """The requested cost is kept per document text and variables: other variables are costed and checked
    again, not answered from what the same text cost before."""
    document = "query($first: Int!, $q: String) { orders(first: $first, query: $q) { nodes { number } } }"
    costs = []
    for first in (5, 50, 5):
        body = await api.gql(tenant.merchant_token, document, {"first": first, "q": "a"})
        costs.append(body["extensions"]["cost"]["requestedQueryCost"])
    assert costs == [1 + 5, 1 + 50, 1 + 5]
    refused = await api.gql(tenant.merchant_token, document, {"first": 5, "q": "a\x00"})
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
