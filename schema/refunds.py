"""Refunds to customers."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from strawberry.types import Info

from domain import refunds as refund_cases
from domain.actors import Scope
from domain.errors import ErrorCode
from schema.context import require_scope
from schema.errors import UserError, run_use_case, user_error
from schema.ids import parse_id
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


def _refused(code: ErrorCode, message: str, field: str) -> RefundCreatePayload:
    return RefundCreatePayload(refund=None, user_errors=user_error(code, message, field))


@strawberry.type
class RefundsMutation:
    @strawberry.mutation(description="Refund the customer, never more than the order's refundableAmount.")
    async def refund_create(self, info: Info, input: RefundCreateInput) -> RefundCreatePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        order_pk = parse_id(input.order_id, "Order")
        if order_pk is None:
            return _refused(ErrorCode.NOT_FOUND, "order not found", "orderId")
        return_pk = None
        if input.return_id is not None:
            return_pk = parse_id(input.return_id, "Return")
            if return_pk is None:
                return _refused(ErrorCode.NOT_FOUND, "no such return on this order", "returnId")
        dispute_pk = None
        if input.dispute_id is not None:
            dispute_pk = parse_id(input.dispute_id, "Dispute")
            if dispute_pk is None:
                return _refused(ErrorCode.INVALID, "not a Dispute id", "disputeId")
        lines = [
            refund_cases.RefundLineInput(
                order_line_id=parse_id(line.order_line_id, "OrderLine") or -1, quantity=line.quantity
            )
            for line in input.lines
        ]
        row, errors = await run_use_case(
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
        return RefundCreatePayload(refund=Refund.of(row) if row else None, user_errors=errors)
