"""The admin command line when two admins (or two scripts) add the same thing at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from db.engine import Database
from db.models import Supplier
from tests.api.test_cli import _run
from tests.factories import Tenant


async def test_the_same_store_added_twice_at_once_gives_one_supplier(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    def create(name: str) -> tuple[int, str, str]:
        done = _run(
            db.url,
            tmp_path,
            "supplier",
            "create",
            "--shop",
            str(tenant.shop_id),
            "--name",
            name,
            "--store-id",
            "555000",
        )
        return done.returncode, done.stdout, done.stderr

    results = await asyncio.gather(*(asyncio.to_thread(create, name) for name in ("First", "Second")))

    assert sorted(code for code, _, _ in results) == [0, 2], results
    [(_, _, refused)] = [result for result in results if result[0] == 2]
    assert f"shop {tenant.shop_id} already has a supplier with store id 555000" in refused
    assert "Traceback" not in refused
    [(_, created, _)] = [result for result in results if result[0] == 0]
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Supplier.id, Supplier.name).where(Supplier.aliexpress_store_id == "555000")
            )
        ).all()
    assert len(rows) == 1
    assert f"supplier {rows[0].id} created in shop {tenant.shop_id}: {rows[0].name}" in created
