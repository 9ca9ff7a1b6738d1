"""When each access token was last used: kept for operators, written at most once a minute per token."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import or_, update

from db.engine import Database
from db.models import AccessToken
from db.types import utcnow

WRITE_EVERY = timedelta(minutes=1)


class TokenUsage:
    """Remembers in this process when each token's use was last written, so that most requests write nothing;
    the conditional UPDATE keeps it to one write a minute across processes too."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._written: dict[int, float] = {}

    def due(self, token_id: int | None) -> bool:
        """Whether a use of this token would be written now (the caller may release its connection first)."""
        if token_id is None:
            return False
        last = self._written.get(token_id)
        return last is None or time.monotonic() - last >= WRITE_EVERY.total_seconds()

    async def touch(self, token_id: int | None, now: datetime | None = None) -> bool:
        """Record a use of the token; True when it wrote."""
        if token_id is None or not self.due(token_id):
            return False
        self._written[token_id] = time.monotonic()
        if len(self._written) > 100_000:
            self._written.clear()
        now = now or utcnow()
        async with self.database.write() as session:
            result = await session.execute(
                update(AccessToken)
                .where(
                    AccessToken.id == token_id,
                    or_(AccessToken.last_used_at.is_(None), AccessToken.last_used_at <= now - WRITE_EVERY),
                )
                .values(last_used_at=now)
            )
        return bool(getattr(result, "rowcount", 0))
