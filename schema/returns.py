"""Queries and mutations on customer returns and the returned stock they feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from db import models
from domain import returns as return_cases
from domain.access import visible
from domain.actors import Actor, Scope
from domain.validation import unsafe_text
from schema.context import context_of, require_scope
from schema.errors import UserError, input_id, run_on_id, run_use_case
from schema.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    PageRequest,
    Reverse,
    bad_input,
    int_sort,
    keyset_page,
    str_sort,
)
from schema.types import (
    Return,
    ReturnDeclineReason,
    ReturnDisposition,
    ReturnedStockCondition,
    ReturnedStockItem,
    ReturnReason,
    ReturnStatus,
)


@strawberry.type
class ReturnsQuery:
    @strawberry.field(description="Returns of the shop's orders, oldest first unless reversed.")
    async def returns(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        status: Annotated[
            ReturnStatus | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only returns in this status."),
        ] = None,
        reverse: Reverse = False,
    ) -> Connection[Return]:
        actor = require_scope(info, Scope.READ_ORDERS)
        statement = select(models.Return).where(visible(models.Return, actor))
        if status is not None:
            statement = statement.where(models.Return.status == status)
        return await keyset_page(
            context_of(info),
            statement,
            int_sort(models.Return.id),
            models.Return.id,
            PageRequest(first, after, last, before, reverse),
            to_node=Return.of,
        )

    @strawberry.field(
        description="Returned units that can be sold again (received for RESTOCK or RESELL), by SKU; "
        "`sku` narrows to one SKU."
    )
    async def returned_stock(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        sku: Annotated[str | None, strawberry.argument(description="Only this SKU (exact match).")] = None,
        reverse: Reverse = False,
    ) -> Connection[ReturnedStockItem]:
        actor = require_scope(info, Scope.READ_ORDERS)
        statement = select(models.ReturnedStock).where(
            visible(models.ReturnedStock, actor), models.ReturnedStock.quantity > 0
        )
        if sku is not None:
            problem = unsafe_text(sku)
            if problem is not None:
                raise bad_input(f"sku {problem}")
            statement = statement.where(models.ReturnedStock.sku == sku.strip())
        return await keyset_page(
            context_of(info),
            statement,
            str_sort(models.ReturnedStock.sku),
            models.ReturnedStock.id,
            PageRequest(first, after, last, before, reverse),
            to_node=ReturnedStockItem.of,
        )


@strawberry.input
class ReturnLineInput:
    order_line_id: strawberry.ID
    quantity: int
    reason: ReturnReason  # type: ignore[valid-type]
    note: str | None = None


@strawberry.input
class ReturnRequestInput:
    order_id: strawberry.ID
    lines: list[ReturnLineInput]
    note: str | None = None


@strawberry.input
class ReturnApproveInput:
    id: strawberry.ID
    note: str | None = None


@strawberry.input
class ReturnDeclineInput:
    id: strawberry.ID
    reason: ReturnDeclineReason  # type: ignore[valid-type]
    note: str | None = strawberry.field(
        default=None, description="At most 500 characters; needed with OTHER."
    )


@strawberry.input
class ReturnReceiveLineInput:
    return_line_id: strawberry.ID
    quantity: int
    disposition: ReturnDisposition  # type: ignore[valid-type]


@strawberry.input
class ReturnReceiveInput:
    id: strawberry.ID
    lines: list[ReturnReceiveLineInput]


@strawberry.input
class ReturnIdInput:
    id: strawberry.ID


@strawberry.input
class ReturnedStockUseInput:
    sku: str
    quantity: int
    order_id: strawberry.ID = strawberry.field(description="The order the units are used for.")
    condition: ReturnedStockCondition | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Take units in this condition; by default NEW ones, else USED ones."
    )


@strawberry.type
class ReturnPayload:
    return_: Return | None = strawberry.field(name="return")
    user_errors: list[UserError]


@strawberry.type
class ReturnedStockUsePayload:
    returned_stock_item: ReturnedStockItem | None
    user_errors: list[UserError]


async def _on_return(
    info: Info,
    return_id: strawberry.ID,
    use_case: Callable[[AsyncSession, Actor, int], Awaitable[models.Return]],
) -> ReturnPayload:
    require_scope(info, Scope.WRITE_ORDERS)
    row, errors = await run_on_id(info, return_id, "Return", "id", use_case)
    return _payload(row, errors)


def _payload(row: models.Return | None, errors: list[UserError]) -> ReturnPayload:
    return ReturnPayload(return_=Return.of(row) if row else None, user_errors=errors)


def _ids(values: list[str], expected_type: str, *path: str) -> tuple[list[int], list[UserError]]:
    """The primary keys of the ids in a list of inputs, or a userError for each malformed one."""
    pks: list[int] = []
    errors: list[UserError] = []
    for index, value in enumerate(values):
        pk, id_errors = input_id(value, expected_type, path[0], str(index), *path[1:])
        pks.append(pk if pk is not None else -1)
        errors += id_errors
    return pks, errors


_INPUT = "The return and what to do with it."


@strawberry.type
class ReturnsMutation:
    @strawberry.mutation(
        description="Record a customer's return request; flagged when asked after the return window."
    )
    async def return_request(
        self,
        info: Info,
        input: Annotated[
            ReturnRequestInput, strawberry.argument(description="The order and the lines coming back.")
        ],
    ) -> ReturnPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        order_pk, id_errors = input_id(input.order_id, "Order", "orderId")
        line_pks, line_errors = _ids(
            [line.order_line_id for line in input.lines], "OrderLine", "lines", "orderLineId"
        )
        if order_pk is None or line_errors:
            return _payload(None, id_errors + line_errors)
        lines = [
            return_cases.ReturnLineInput(
                order_line_id=line_pk, quantity=line.quantity, reason=line.reason, note=line.note
            )
            for line, line_pk in zip(input.lines, line_pks, strict=True)
        ]
        row, errors = await run_use_case(
            info,
            lambda session, actor: return_cases.request_return(session, actor, order_pk, lines, input.note),
        )
        return _payload(row, errors)

    @strawberry.mutation(description="Approve a requested return; it then shows the shop's return address.")
    async def return_approve(
        self, info: Info, input: Annotated[ReturnApproveInput, strawberry.argument(description=_INPUT)]
    ) -> ReturnPayload:
        return await _on_return(
            info,
            input.id,
            lambda session, actor, pk: return_cases.approve_return(session, actor, pk, input.note),
        )

    @strawberry.mutation(description="Decline a requested return.")
    async def return_decline(
        self, info: Info, input: Annotated[ReturnDeclineInput, strawberry.argument(description=_INPUT)]
    ) -> ReturnPayload:
        return await _on_return(
            info,
            input.id,
            lambda session, actor, pk: return_cases.decline_return(
                session, actor, pk, input.reason, input.note
            ),
        )

    @strawberry.mutation(
        description="Record items that arrived, each with its disposition; RECEIVED once everything is in."
    )
    async def return_receive(
        self, info: Info, input: Annotated[ReturnReceiveInput, strawberry.argument(description=_INPUT)]
    ) -> ReturnPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        pk, id_errors = input_id(input.id, "Return", "id")
        line_pks, line_errors = _ids(
            [line.return_line_id for line in input.lines], "ReturnLine", "lines", "returnLineId"
        )
        if pk is None or line_errors:
            return _payload(None, id_errors + line_errors)
        receipts = [
            return_cases.ReceiptInput(
                return_line_id=line_pk, quantity=line.quantity, disposition=line.disposition
            )
            for line, line_pk in zip(input.lines, line_pks, strict=True)
        ]
        row, errors = await run_use_case(
            info, lambda session, actor: return_cases.receive_return(session, actor, pk, receipts)
        )
        return _payload(row, errors)

    @strawberry.mutation(description="Close a return whose items arrived (all, or all that will).")
    async def return_close(
        self, info: Info, input: Annotated[ReturnIdInput, strawberry.argument(description="The return.")]
    ) -> ReturnPayload:
        return await _on_return(
            info, input.id, lambda session, actor, pk: return_cases.close_return(session, actor, pk)
        )

    @strawberry.mutation(description="Cancel a return before any of its items arrived.")
    async def return_cancel(
        self, info: Info, input: Annotated[ReturnIdInput, strawberry.argument(description="The return.")]
    ) -> ReturnPayload:
        return await _on_return(
            info, input.id, lambda session, actor, pk: return_cases.cancel_return(session, actor, pk)
        )

    @strawberry.mutation(description="Take returned units out of stock to fulfil an order.")
    async def returned_stock_use(
        self,
        info: Info,
        input: Annotated[
            ReturnedStockUseInput,
            strawberry.argument(description="The SKU, how many units, and the order they are for."),
        ],
    ) -> ReturnedStockUsePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        row, errors = await run_on_id(
            info,
            input.order_id,
            "Order",
            "orderId",
            lambda session, actor, order_pk: return_cases.use_returned_stock(
                session, actor, input.sku, input.quantity, order_pk, input.condition
            ),
        )
        return ReturnedStockUsePayload(
            returned_stock_item=ReturnedStockItem.of(row) if row else None, user_errors=errors
        )
