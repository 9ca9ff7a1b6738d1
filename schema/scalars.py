"""Scalars as clients read them: every DateTime in UTC, to the second, whatever precision it was stored with."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition


def _serialize_datetime(value: object) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"DateTime cannot represent {value!r}")
    if value.tzinfo is UTC:  # as the database columns hand them back
        return value.isoformat(timespec="seconds")
    moment = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


DATETIME = dataclasses.replace(
    DateTimeDefinition,
    description="A moment as an ISO 8601 string, in UTC to the second (2026-11-02T08:00:00+00:00); "
    "input may carry any offset.",
    serialize=_serialize_datetime,
)

SCALARS: dict[object, ScalarDefinition] = {datetime: DATETIME}
