"""Access tokens written by two transactions at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from db.engine import Database
from db.models import AccessToken
from domain.tokens import hash_token, revoke_token
from tests.factories import Tenant


async def test_two_revocations_at_once_report_one(db: Database, tenant: Tenant) -> None:
    async with db.read() as session:
        token_id = await session.scalar(
            select(AccessToken.id).where(AccessToken.token_hash == hash_token(tenant.readonly_token))
        )
    assert token_id is not None

    async def revoke() -> bool:
        async with db.write() as session:
            return await revoke_token(session, token_id)

    assert sorted(await asyncio.gather(revoke(), revoke(), revoke())) == [False, False, True]
    async with db.read() as session:
        token = await session.get(AccessToken, token_id)
    assert token is not None and token.revoked_at is not None
    async with db.write() as session:
        assert await revoke_token(session, token_id) is False
        assert await revoke_token(session, token_id + 10_000) is False
