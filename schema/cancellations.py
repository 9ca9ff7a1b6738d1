"""Queries and mutations on cancellation requests: merchants ask and answer, suppliers decide."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from db import models
from domain import cancellations as cancellation_cases
from domain.access import visible
from domain.actors import Scope
from schema.context import context_of, require_reader, require_scope, require_supplier
from schema.errors import UserError, run_on_id
from schema.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    PageRequest,
    Reverse,
    int_sort,
    keyset_page,
)
from schema.types import CancellationReason, CancellationRequest, CancellationRequestStatus

_INPUT = "The request and what to do with it."

CancellationDecision = strawberry.enum(cancellation_cases.Decision, name="CancellationDecision")


@strawberry.type
class CancellationsQuery:
    @strawberry.field(
        description="Cancellation requests, oldest first unless reversed; a supplier sees its own."
    )
    async def cancellation_requests(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        status: Annotated[
            CancellationRequestStatus | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only requests in this status."),
        ] = None,
        reverse: Reverse = False,
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


def _node(row: models.CancellationRequest | None) -> CancellationRequest | None:
    return CancellationRequest.of(row) if row else None


@strawberry.type
class CancellationsMutation:
    @strawberry.mutation(
        description="Ask the supplier to cancel a supplier order that has not shipped; an unpaid one is "
        "cancelled at once."
    )
    async def cancellation_request_create(
        self,
        info: Info,
        input: Annotated[CancellationRequestCreateInput, strawberry.argument(description=_INPUT)],
    ) -> CancellationRequestCreatePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        response_time = timedelta(hours=context_of(info).settings.cancellation_response_hours)
        row, errors = await run_on_id(
            info,
            input.supplier_order_id,
            "SupplierOrder",
            "supplierOrderId",
            lambda session, actor, pk: cancellation_cases.request_cancellation(
                session, actor, pk, input.reason, input.message, response_time=response_time
            ),
        )
        return CancellationRequestCreatePayload(cancellation_request=_node(row), user_errors=errors)

    @strawberry.mutation(
        description="Answer the supplier's request for information; the request is PENDING again."
    )
    async def cancellation_request_reply(
        self,
        info: Info,
        input: Annotated[CancellationRequestReplyInput, strawberry.argument(description=_INPUT)],
    ) -> CancellationRequestReplyPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        row, errors = await run_on_id(
            info,
            input.id,
            "CancellationRequest",
            "id",
            lambda session, actor, pk: cancellation_cases.reply_to_cancellation(
                session, actor, pk, input.message
            ),
        )
        return CancellationRequestReplyPayload(cancellation_request=_node(row), user_errors=errors)

    @strawberry.mutation(
        description="Withdraw an open request; the supplier order goes back to its status before."
    )
    async def cancellation_request_withdraw(
        self,
        info: Info,
        input: Annotated[CancellationRequestWithdrawInput, strawberry.argument(description=_INPUT)],
    ) -> CancellationRequestWithdrawPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        row, errors = await run_on_id(
            info,
            input.id,
            "CancellationRequest",
            "id",
            lambda session, actor, pk: cancellation_cases.withdraw_cancellation(
                session, actor, pk, input.message
            ),
        )
        return CancellationRequestWithdrawPayload(cancellation_request=_node(row), user_errors=errors)

    @strawberry.mutation(description="The supplier approves, rejects, or asks for more information.")
    async def cancellation_request_decide(
        self,
        info: Info,
        input: Annotated[CancellationRequestDecideInput, strawberry.argument(description=_INPUT)],
    ) -> CancellationRequestDecidePayload:
        require_supplier(info)
        row, errors = await run_on_id(
            info,
            input.id,
            "CancellationRequest",
            "id",
            lambda session, actor, pk: cancellation_cases.decide_cancellation(
                session, actor, pk, input.decision, input.message
            ),
        )
        return CancellationRequestDecidePayload(cancellation_request=_node(row), user_errors=errors)
