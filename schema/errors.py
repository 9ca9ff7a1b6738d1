"""Business errors as data: every mutation payload carries ``userErrors``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from domain.actors import Actor
from domain.errors import DomainError, ErrorCode, FieldError
from schema.context import context_of
from schema.ids import InvalidId, decode_id

T = TypeVar("T")

UserErrorCode = strawberry.enum(ErrorCode, name="UserErrorCode")


@strawberry.type(
    description="A problem with the input or the state that stopped a mutation; nothing changed."
)
class UserError:
    field: list[str] | None
    message: str
    code: UserErrorCode  # type: ignore[valid-type]

    @classmethod
    def of(cls, error: FieldError) -> UserError:
        return cls(field=list(error.field) or None, message=error.message, code=error.code)


def user_error(code: ErrorCode, message: str, *field: str) -> list[UserError]:
    return [UserError.of(FieldError(field=tuple(field), message=message, code=code))]


async def run_use_case(
    info: Info[Any, Any], use_case: Callable[[AsyncSession, Actor], Awaitable[T]]
) -> tuple[T | None, list[UserError]]:
    """Run one use case in its own write transaction; a DomainError rolls it back and becomes userErrors."""
    context = context_of(info)
    try:
        async with context.database.write() as session:
            result = await use_case(session, context.actor)
    except DomainError as error:
        return None, [UserError.of(item) for item in error.errors]
    context.forget_loaded()
    return result, []


async def run_on_id(
    info: Info[Any, Any],
    value: str,
    expected_type: str,
    field: str,
    use_case: Callable[[AsyncSession, Actor, int], Awaitable[T]],
) -> tuple[T | None, list[UserError]]:
    """``run_use_case`` on the record a mutation's id input names; a malformed id is a userError and runs
    nothing."""
    pk, id_errors = input_id(value, expected_type, field)
    if pk is None:
        return None, id_errors
    return await run_use_case(info, lambda session, actor: use_case(session, actor, pk))


def input_id(value: str, expected_type: str, *field: str) -> tuple[int | None, list[UserError]]:
    """The primary key of a mutation's id input, or a userError naming the field when it is malformed."""
    try:
        return decode_id(value, expected_type)[1], []
    except InvalidId as error:
        return None, user_error(ErrorCode.INVALID, str(error), *field)
