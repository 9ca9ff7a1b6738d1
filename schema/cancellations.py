"""Queries and mutations on cancellation requests: merchants ask and answer, suppliers decide."""

from __future__ import annotations

from datetime import timedelta

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from db import models
from domain import cancellations as cancellation_cases
from domain.access import visible
from domain.actors import Scope
from domain.errors import ErrorCode
from schema.context import context_of, require_reader, require_scope, require_supplier
from schema.errors import UserError, run_use_case, user_error
from schema.ids import parse_id
from schema.pagination import Connection, PageRequest, int_sort, keyset_page
from schema.types import CancellationReason, CancellationRequest, CancellationRequestStatus

CancellationDecision = strawberry.enum(cancellation_cases.Decision, name="CancellationDecision")


@strawberry.type
class CancellationsQuery:
    @strawberry.field(
        description="Cancellation requests, oldest first unless reversed; a supplier sees its own."
    )
    async def cancellation_requests(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        status: CancellationRequestStatus | None = None,  # type: ignore[valid-type]
        reverse: bool = False,
    ) -> Connection[CancellationRequest]:
        context = context_of(info)
        actor = require_reader(info)
        statement = select(models.CancellationRequest).where(visible(models.CancellationRequest, actor))
        if status is not None:
            statement = statement.where(models.CancellationRequest.status == status)
        return await keyset_page(
            context,
            statement,
            int_sort(models.CancellationRequest.id),
            models.CancellationRequest.id,
            PageRequest(first, after, last, before, reverse),
            to_node=CancellationRequest.of,
        )


@strawberry.input
class CancellationRequestCreateInput:
    supplier_order_id: strawberry.ID
    reason: CancellationReason  # type: ignore[valid-type]
    message: str | None = strawberry.field(default=None, description="Required when the reason is OTHER.")


@strawberry.input
class CancellationRequestReplyInput:
    id: strawberry.ID
    message: str


@strawberry.input
class CancellationRequestWithdrawInput:
    id: strawberry.ID
    message: str | None = None


@strawberry.input
class CancellationRequestDecideInput:
    id: strawberry.ID
    decision: CancellationDecision  # type: ignore[valid-type]
    message: str | None = strawberry.field(default=None, description="Required with REQUEST_INFO.")


@strawberry.type
class CancellationRequestCreatePayload:
    cancellation_request: CancellationRequest | None
    user_errors: list[UserError]


@strawberry.type
class CancellationRequestReplyPayload:
    cancellation_request: CancellationRequest | None
    user_errors: list[UserError]


@strawberry.type
class CancellationRequestWithdrawPayload:
    cancellation_request: CancellationRequest | None
    user_errors: list[UserError]


@strawberry.type
class CancellationRequestDecidePayload:
    cancellation_request: CancellationRequest | None
    user_errors: list[UserError]


def _not_found(field: str) -> list[UserError]:
    return user_error(ErrorCode.NOT_FOUND, "not found", field)


def _node(row: models.CancellationRequest | None) -> CancellationRequest | None:
    return CancellationRequest.of(row) if row else None


@strawberry.type
class CancellationsMutation:
    @strawberry.mutation(
        description="Ask the supplier to cancel a supplier order that has not shipped; an unpaid one is "
        "cancelled at once."
    )
    async def cancellation_request_create(
        self, info: Info, input: CancellationRequestCreateInput
    ) -> CancellationRequestCreatePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        pk = parse_id(input.supplier_order_id, "SupplierOrder")
        if pk is None:
            return CancellationRequestCreatePayload(
                cancellation_request=None, user_errors=_not_found("supplierOrderId")
            )
        response_time = timedelta(hours=context_of(info).settings.cancellation_response_hours)
        row, errors = await run_use_case(
            info,
            lambda session, actor: cancellation_cases.request_cancellation(
                session, actor, pk, input.reason, input.message, response_time=response_time
            ),
        )
        return CancellationRequestCreatePayload(cancellation_request=_node(row), user_errors=errors)

    @strawberry.mutation(
        description="Answer the supplier's request for information; the request is PENDING again."
    )
    async def cancellation_request_reply(
        self, info: Info, input: CancellationRequestReplyInput
    ) -> CancellationRequestReplyPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        pk = parse_id(input.id, "CancellationRequest")
        if pk is None:
            return CancellationRequestReplyPayload(cancellation_request=None, user_errors=_not_found("id"))
        row, errors = await run_use_case(
            info,
            lambda session, actor: cancellation_cases.reply_to_cancellation(
                session, actor, pk, input.message
            ),
        )
        return CancellationRequestReplyPayload(cancellation_request=_node(row), user_errors=errors)

    @strawberry.mutation(
        description="Withdraw an open request; the supplier order goes back to its status before."
    )
    async def cancellation_request_withdraw(
        self, info: Info, input: CancellationRequestWithdrawInput
    ) -> CancellationRequestWithdrawPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        pk = parse_id(input.id, "CancellationRequest")
        if pk is None:
            return CancellationRequestWithdrawPayload(cancellation_request=None, user_errors=_not_found("id"))
        row, errors = await run_use_case(
            info,
            lambda session, actor: cancellation_cases.withdraw_cancellation(
                session, actor, pk, input.message
            ),
        )
        return CancellationRequestWithdrawPayload(cancellation_request=_node(row), user_errors=errors)

    @strawberry.mutation(description="The supplier approves, rejects, or asks for more information.")
    async def cancellation_request_decide(
        self, info: Info, input: CancellationRequestDecideInput
    ) -> CancellationRequestDecidePayload:
        require_supplier(info)
        pk = parse_id(input.id, "CancellationRequest")
        if pk is None:
            return CancellationRequestDecidePayload(cancellation_request=None, user_errors=_not_found("id"))
        row, errors = await run_use_case(
            info,
            lambda session, actor: cancellation_cases.decide_cancellation(
                session, actor, pk, input.decision, input.message
            ),
        )
        return CancellationRequestDecidePayload(cancellation_request=_node(row), user_errors=errors)
