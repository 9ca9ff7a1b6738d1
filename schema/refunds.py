"""Refunds to customers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from domain import refunds as refund_cases
from domain.actors import Scope
from schema.context import require_scope
from schema.errors import UserError, input_id, run_use_case
from schema.types import Refund


@strawberry.input
class RefundLineInput:
    order_line_id: strawberry.ID
    quantity: int


@strawberry.input
class RefundCreateInput:
    order_id: strawberry.ID
    amount: Decimal | None = strawberry.field(
        default=None,
        description="In the order's currency. Without it: the value of `lines`, else of the return's items "
        "less the restocking fee.",
    )
    lines: list[RefundLineInput] = strawberry.field(default_factory=list)
    return_id: strawberry.ID | None = None
    dispute_id: strawberry.ID | None = None
    note: str | None = None


@strawberry.type
class RefundCreatePayload:
    refund: Refund | None
    user_errors: list[UserError]


@strawberry.type
class RefundsMutation:
    @strawberry.mutation(description="Refund the customer, never more than the order's refundableAmount.")
    async def refund_create(
        self,
        info: Info,
        input: Annotated[
            RefundCreateInput,
            strawberry.argument(description="The order, and the amount, lines or return to refund."),
        ],
    ) -> RefundCreatePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        order_pk, errors = input_id(input.order_id, "Order", "orderId")
        return_pk = dispute_pk = None
        if input.return_id is not None:
            return_pk, return_errors = input_id(input.return_id, "Return", "returnId")
            errors += return_errors
        if input.dispute_id is not None:
            dispute_pk, dispute_errors = input_id(input.dispute_id, "Dispute", "disputeId")
            errors += dispute_errors
        lines = []
        for index, line in enumerate(input.lines):
            line_pk, line_errors = input_id(
                line.order_line_id, "OrderLine", "lines", str(index), "orderLineId"
            )
            errors += line_errors
            lines.append(refund_cases.RefundLineInput(order_line_id=line_pk or -1, quantity=line.quantity))
        if order_pk is None or errors:
            return RefundCreatePayload(refund=None, user_errors=errors)
        row, use_case_errors = await run_use_case(
            info,
            lambda session, actor: refund_cases.create_refund(
                session,
                actor,
                order_pk,
                amount=input.amount,
                lines=lines,
                return_id=return_pk,
                dispute_id=dispute_pk,
                note=input.note,
            ),
        )
        return RefundCreatePayload(refund=Refund.of(row) if row else None, user_errors=use_case_errors)
