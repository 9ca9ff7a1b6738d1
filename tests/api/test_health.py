"""Liveness and readiness probes."""

from __future__ import annotations

from db.migrate import downgrade, upgrade
from tests.factories import Api


async def test_healthz(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_migrations(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "migrations": "ok"}


async def test_readyz_is_503_when_migrations_are_behind(api: Api) -> None:
    database = api.client._transport.app.state.database  # type: ignore[attr-defined]
    await downgrade(database.engine, "0001")
    try:
        response = await api.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["migrations"].startswith("at 0001")
    finally:
        await upgrade(database.engine)
