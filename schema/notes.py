"""Notes on orders: staff add them (for staff only, or for the supplier of one supplier order) and delete them."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from db import models
from domain import notes as note_cases
from domain.actors import Scope
from schema.context import require_scope
from schema.errors import UserError, input_id, run_on_id, run_use_case
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
    async def order_note_add(
        self,
        info: Info,
        input: Annotated[OrderNoteAddInput, strawberry.argument(description="The fields of the change.")],
    ) -> OrderNoteAddPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        order_pk, id_errors = input_id(input.order_id, "Order", "orderId")
        supplier_order_pk = None
        if input.supplier_order_id is not None:
            supplier_order_pk, more = input_id(input.supplier_order_id, "SupplierOrder", "supplierOrderId")
            id_errors = [*id_errors, *more]
        if order_pk is None or id_errors:
            return OrderNoteAddPayload(note=None, user_errors=id_errors)
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
    async def order_note_delete(
        self,
        info: Info,
        input: Annotated[OrderNoteDeleteInput, strawberry.argument(description="The fields of the change.")],
    ) -> OrderNoteDeletePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        deleted, errors = await run_on_id(
            info,
            input.id,
            "OrderNote",
            "id",
            lambda session, actor, pk: note_cases.delete_note(session, actor, pk),
        )
        return OrderNoteDeletePayload(
            deleted_note_id=input.id if deleted is not None else None, user_errors=errors
        )
