"""Notes on orders: staff add them (for staff only, or for the supplier of one supplier order) and delete them."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from db import models
from domain import notes as note_cases
from domain.actors import Scope
from domain.errors import ErrorCode
from schema.context import require_scope
from schema.errors import UserError, run_use_case, user_error
from schema.ids import parse_id
from schema.types import NoteVisibility, OrderNote


@strawberry.input
class OrderNoteAddInput:
    order_id: strawberry.ID
    body: str
    visibility: NoteVisibility = models.NoteVisibility.STAFF  # type: ignore[valid-type]
    supplier_order_id: strawberry.ID | None = strawberry.field(
        default=None, description="A supplier order of the order; required with SUPPLIER visibility."
    )


@strawberry.input
class OrderNoteDeleteInput:
    id: strawberry.ID


@strawberry.type
class OrderNoteAddPayload:
    note: OrderNote | None
    user_errors: list[UserError]


@strawberry.type
class OrderNoteDeletePayload:
    deleted_note_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class NotesMutation:
    @strawberry.mutation(
        description="Add a note to an order's timeline; the author is the token's name. A SUPPLIER note on a "
        "supplier order is shown to that supplier; a STAFF note never is."
    )
    async def order_note_add(self, info: Info, input: OrderNoteAddInput) -> OrderNoteAddPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        order_pk = parse_id(input.order_id, "Order")
        if order_pk is None:
            return OrderNoteAddPayload(
                note=None, user_errors=user_error(ErrorCode.NOT_FOUND, "order not found", "orderId")
            )
        supplier_order_pk = None
        if input.supplier_order_id is not None:
            # A malformed or foreign id must fail like an unknown one: -1 matches no supplier order.
            supplier_order_pk = parse_id(input.supplier_order_id, "SupplierOrder") or -1
        data = note_cases.NoteInput(
            order_id=order_pk,
            body=input.body,
            visibility=input.visibility,
            supplier_order_id=supplier_order_pk,
        )
        row, errors = await run_use_case(
            info, lambda session, actor: note_cases.add_note(session, actor, data)
        )
        return OrderNoteAddPayload(note=OrderNote.of(row) if row else None, user_errors=errors)

    @strawberry.mutation(description="Delete a note of the shop; the timeline keeps that it was deleted.")
    async def order_note_delete(self, info: Info, input: OrderNoteDeleteInput) -> OrderNoteDeletePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        pk = parse_id(input.id, "OrderNote")
        if pk is None:
            return OrderNoteDeletePayload(
                deleted_note_id=None, user_errors=user_error(ErrorCode.NOT_FOUND, "note not found", "id")
            )
        deleted, errors = await run_use_case(
            info, lambda session, actor: note_cases.delete_note(session, actor, pk)
        )
        return OrderNoteDeletePayload(
            deleted_note_id=input.id if deleted is not None else None, user_errors=errors
        )
