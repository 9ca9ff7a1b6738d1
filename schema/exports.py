"""Order exports: ask for a CSV or Excel file of orders, follow its progress, list past exports."""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from db import models
from domain import exports as export_cases
from domain.access import visible
from domain.actors import Scope
from schema.context import context_of, require_scope
from schema.errors import UserError, input_id, run_use_case
from schema.ids import id_argument
from schema.pagination import After, Connection, First, PageRequest, int_sort, keyset_page
from schema.types import Export, ExportFormat, ExportLayout, ExportStatus


@strawberry.input
class OrdersExportInput:
    format: ExportFormat = models.ExportFormat.CSV  # type: ignore[valid-type]
    layout: ExportLayout = models.ExportLayout.LINE_ITEM  # type: ignore[valid-type]
    query: str | None = strawberry.field(
        default=None, description="The search syntax of `orders(query:)`; with `ids`, both must match."
    )
    ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Orders to export; leave out (and `query` too) to export every order."
    )
    email: str | None = strawberry.field(
        default=None, description="Where to send the link (and the file when small) once it is ready."
    )


@strawberry.type
class OrdersExportPayload:
    export: Export | None
    user_errors: list[UserError]


@strawberry.type
class ExportsQuery:
    @strawberry.field(description="The shop's exports, newest first.")
    async def exports(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        status: Annotated[
            ExportStatus | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only exports in this status."),
        ] = None,
    ) -> Connection[Export]:
        actor = require_scope(info, Scope.WRITE_EXPORTS)
        statement = select(models.Export).where(visible(models.Export, actor))
        if status is not None:
            statement = statement.where(models.Export.status == status)
        return await keyset_page(
            context_of(info),
            statement,
            int_sort(models.Export.id),
            models.Export.id,
            PageRequest(first, after, None, None, reverse=True),
            to_node=Export.of,
        )

    @strawberry.field(description="An export by id; null when it does not exist or is not the shop's.")
    async def export(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The export's id (gid://dropdesk/Export/…).")
        ],
    ) -> Export | None:
        require_scope(info, Scope.WRITE_EXPORTS)
        _, pk = id_argument(id, "Export", "id")
        row = await context_of(info).loaders.export.load(pk)
        return Export.of(row) if row else None


@strawberry.type
class ExportsMutation:
    @strawberry.mutation(
        description="Export orders to CSV or Excel in the background; the file is mailed and linked when ready."
    )
    async def orders_export(
        self,
        info: Info,
        input: Annotated[
            OrdersExportInput, strawberry.argument(description="What to export, in which format.")
        ],
    ) -> OrdersExportPayload:
        require_scope(info, Scope.WRITE_EXPORTS)
        order_ids: list[int] | None = None
        if input.ids is not None:
            order_ids = []
            for index, gid in enumerate(input.ids):
                pk, id_errors = input_id(gid, "Order", "ids", str(index))
                if pk is None:
                    return OrdersExportPayload(export=None, user_errors=id_errors)
                order_ids.append(pk)
        request = export_cases.ExportRequest(
            format=input.format,
            layout=input.layout,
            query=input.query,
            order_ids=order_ids,
            email=input.email,
        )
        row, errors = await run_use_case(
            info, lambda session, actor: export_cases.create_export(session, actor, request)
        )
        return OrdersExportPayload(export=Export.of(row) if row else None, user_errors=errors)
