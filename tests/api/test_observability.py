"""/metrics, JSON access logs, the token's last use, and the answer's media type."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from config.logs import JsonFormatter
from config.metrics import REGISTRY
from db.engine import Database
from db.jobs import enqueue
from db.models import AccessToken
from db.types import utcnow
from domain.token_usage import TokenUsage
from tests.factories import Api, Tenant


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


async def test_metrics_count_requests_latency_errors_and_the_job_queue(
    api: Api, tenant: Tenant, db: Database
) -> None:
    before = _sample("dropdesk_graphql_requests_total", operation="CountThem", status="200")
    errors_before = _sample("dropdesk_errors_total", code="GRAPHQL_VALIDATION_FAILED")
    unauthenticated_before = _sample("dropdesk_errors_total", code="UNAUTHENTICATED")
    await api.gql(tenant.merchant_token, "query CountThem { ordersCount }")
    await api.gql(tenant.merchant_token, "query Broken { orders(first: 1) { nodes { colour } } }")
    await api.client.post("/graphql", json={"query": "{ ordersCount }"})
    async with db.write() as session:
        await enqueue(session, "nothing.to.do", run_at=utcnow() - timedelta(seconds=90))

    response = await api.client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'dropdesk_graphql_requests_total{operation="CountThem",status="200"}' in text
    assert _sample("dropdesk_graphql_requests_total", operation="CountThem", status="200") == before + 1
    assert _sample("dropdesk_graphql_request_duration_seconds_count", operation="CountThem") >= 1
    assert _sample("dropdesk_errors_total", code="GRAPHQL_VALIDATION_FAILED") == errors_before + 1
    assert _sample("dropdesk_errors_total", code="UNAUTHENTICATED") == unauthenticated_before + 1
    assert _sample("dropdesk_job_queue_depth", status="QUEUED") >= 1
    assert _sample("dropdesk_job_oldest_due_age_seconds") >= 89
    # Webhook failures and export durations are counted by their own code (their tests check it); the
    # endpoint exposes them.
    assert "dropdesk_webhook_delivery_failures" in text and "dropdesk_export_duration_seconds" in text


async def test_access_log_lines_carry_request_operation_duration_and_token_name(
    api: Api, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dropdesk.access"):
        response = await api.post(tenant.merchant_token, "query Named { ordersCount }")
    [record] = [r for r in caplog.records if r.name == "dropdesk.access"]
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["operation"] == "Named"
    assert entry["operation_type"] == "query"
    assert entry["token_name"] == "staff"
    assert entry["status"] == 200
    assert entry["duration_ms"] > 0
    assert tenant.merchant_token not in line


async def test_last_use_is_written_at_most_once_a_minute(api: Api, tenant: Tenant, db: Database) -> None:
    async def last_used() -> object:
        async with db.read() as session:
            return await session.scalar(select(AccessToken.last_used_at).where(AccessToken.name == "staff"))

    assert await last_used() is None
    await api.gql(tenant.merchant_token, "{ ordersCount }")
    first = await last_used()
    assert first is not None
    await api.gql(tenant.merchant_token, "{ ordersCount }")
    assert await last_used() == first

    # Another process (a fresh TokenUsage) does not write either while the stored time is under a minute old.
    async with db.read() as session:
        token_id = await session.scalar(select(AccessToken.id).where(AccessToken.name == "staff"))
    assert await TokenUsage(db).touch(token_id) is False
    async with db.write() as session:
        await session.execute(
            update(AccessToken)
            .where(AccessToken.id == token_id)
            .values(last_used_at=utcnow() - timedelta(minutes=2))
        )
    assert await TokenUsage(db).touch(token_id) is True


async def test_graphql_response_json_is_answered_when_asked(api: Api, tenant: Tenant) -> None:
    headers = {
        "Authorization": f"Bearer {tenant.merchant_token}",
        "Accept": "application/graphql-response+json",
    }
    ok = await api.client.post("/graphql", json={"query": "{ ordersCount }"}, headers=headers)
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert ok.json()["data"] == {"ordersCount": 0}
    for query in ("{ ordersCount(", "{ colour }", '{ ordersCount(query: "a\\u0000") }'):
        refused = await api.client.post("/graphql", json={"query": query}, headers=headers)
        assert refused.status_code == 400, refused.text
        assert "data" not in refused.json()
        assert refused.json()["errors"]
    coercion = await api.client.post(
        "/graphql",
        json={"query": "query($n: Int) { orders(first: $n) { nodes { id } } }", "variables": {"n": "x"}},
        headers=headers,
    )
    assert coercion.status_code == 400 and "data" not in coercion.json()

    legacy = await api.client.post(
        "/graphql", json={"query": "{ colour }"}, headers={"Authorization": headers["Authorization"]}
    )
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["data"] is None

    refused = await api.client.post(
        "/graphql", json={"query": "{ ordersCount }"}, headers={**headers, "Accept": "text/csv"}
    )
    assert refused.status_code == 406
