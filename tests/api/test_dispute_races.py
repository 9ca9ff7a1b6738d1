"""Races over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL: openings of one supplier order, and
the supplier's response racing the deadline job."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.worker import Worker
from config.settings import load_settings
from db.engine import Database
from db.models import Dispute, DisputeStatus, OrderEvent, SupplierRefund
from db.types import utcnow
from domain.actors import Actor
from domain.disputes import resolve_overdue
from schema.ids import parse_id
from tests.api.test_cancellation_races import base_url, client, graphql  # noqa: F401  (fixtures)
from tests.api.test_disputes import ACCEPT, OPEN, RESPOND, open_input, shipped
from tests.domain.test_cancellations import Clock
from tests.factories import Api, Tenant

RACERS = 12


async def test_concurrent_openings_open_one_dispute(
    api: Api,
    client: httpx.AsyncClient,  # noqa: F811
    db: Database,
    tenant: Tenant,
) -> None:
    _, so_id = await shipped(api, tenant)
    variables = {"input": open_input(so_id)}
    payloads = await asyncio.gather(
        *(graphql(client, tenant.merchant_token, OPEN, variables) for _ in range(RACERS))
    )
    results = [payload["disputeOpen"] for payload in payloads]
    assert len([r for r in results if not r["userErrors"]]) == 1, results
    assert {e["code"] for r in results for e in r["userErrors"]} == {"ALREADY_EXISTS"}
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Dispute)) == 1
        opened = await session.scalar(
            select(func.count()).select_from(OrderEvent).where(OrderEvent.type == "dispute_opened")
        )
    assert opened == 1


async def _deadline_now(db: Database, shop_id: int, dispute_id: str, now: datetime) -> None:
    """What the deadline job's handler does, without the worker's claim before it, so that it can come first
    (through the worker, the supplier's requests usually get there first; both orders are tested)."""
    pk = parse_id(dispute_id, "Dispute")
    assert pk is not None
    async with db.write() as session:
        await resolve_overdue(session, Actor.system(shop_id), pk, now=now)


@pytest.mark.parametrize(("round", "by_worker"), [(0, True), (1, True), (2, True), (0, False), (1, False)])
async def test_response_racing_the_deadline_has_one_outcome_and_one_refund(
    api: Api,
    client: httpx.AsyncClient,  # noqa: F811
    db: Database,
    tenant: Tenant,
    tmp_path: Path,
    round: int,
    by_worker: bool,
) -> None:
    _, so_id = await shipped(api, tenant)
    opened = await graphql(client, tenant.merchant_token, OPEN, {"input": open_input(so_id, "5.00")})
    dispute_id = opened["disputeOpen"]["dispute"]["id"]
    # The worker's clock says the deadline has passed; the supplier's requests come in "just before".
    worker = Worker(
        db,
        replace(load_settings(), database_url=db.url, data_dir=tmp_path),
        clock=Clock(utcnow() + timedelta(days=5, seconds=1)),
    )
    respond = {"input": {"id": dispute_id, "action": "PROPOSE_REFUND", "amount": "3.00"}}
    responders: list[Awaitable[Any]] = [
        graphql(client, tenant.supplier_tokens[0], RESPOND, respond) for _ in range(RACERS)
    ]
    deadline = (
        worker.drain()
        if by_worker
        else _deadline_now(db, tenant.shop_id, dispute_id, utcnow() + timedelta(days=6))
    )
    responders.insert(round * (RACERS // 3), deadline)  # vary where the job stands in line
    results = await asyncio.gather(*responders)
    answers = [r["disputeRespond"] for r in results if isinstance(r, dict)]
    winners = [a for a in answers if not a["userErrors"]]
    assert {e["code"] for a in answers for e in a["userErrors"]} <= {"INVALID_STATE"}

    pk = parse_id(dispute_id, "Dispute")
    async with db.read() as session:
        dispute = await session.get(Dispute, pk)
    assert dispute is not None
    print("OUTCOME", round, by_worker, bool(winners))
    if winners:
        # The supplier was first: one proposal, the job found nothing to do; the merchant then accepts.
        assert len(winners) == 1
        assert (dispute.status, dispute.outcome) == (DisputeStatus.SUPPLIER_RESPONDED, None)
        accepted = await graphql(client, tenant.merchant_token, ACCEPT, {"input": {"id": dispute_id}})
        assert accepted["disputeAcceptProposal"]["userErrors"] == []
        expected = "3.00"
    else:
        # The deadline was first: resolved for the requested amount, every response refused.
        assert (dispute.status, dispute.proposal_action) == (DisputeStatus.RESOLVED, None)
        expected = "5.00"
    async with db.read() as session:
        refunds = list(await session.scalars(select(SupplierRefund).where(SupplierRefund.source_id == pk)))
        outcomes = await session.scalar(
            select(func.count())
            .select_from(OrderEvent)
            .where(OrderEvent.type.in_(["dispute_supplier_responded", "dispute_deadline_passed"]))
        )
    assert [r.amount for r in refunds] == [Decimal(expected)]
    assert outcomes == 1
