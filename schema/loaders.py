"""DataLoaders: each batches one kind of lookup into a single SQL statement per request level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.dataloader import DataLoader

from db.models import (
    BulkAction,
    BulkActionResult,
    CancellationMessage,
    CancellationRequest,
    Dispute,
    DisputeAttachment,
    DisputeMessage,
    Export,
    Order,
    OrderEvent,
    OrderLine,
    OrderNote,
    Package,
    Refund,
    RefundLine,
    Return,
    ReturnedStock,
    ReturnLine,
    ReturnReceipt,
    SavedSearch,
    Shop,
    ShopPolicy,
    Supplier,
    SupplierOrder,
    SupplierRefund,
)
from domain.access import visible
from domain.actors import Actor, ActorKind
from domain.figures import OrderFigures, order_figures

# Lends the request's one session; sibling resolvers take turns with it.
SessionLender = Callable[[], AbstractAsyncContextManager[AsyncSession]]

M = TypeVar("M")
K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


def loaded_now_or_later(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R:
    """``convert`` of what ``loader`` holds for ``key``, at once when a parent resolver has already loaded it for
    the whole page; otherwise an awaitable of it.

    graphql-core awaits an awaitable returned by any resolver, so a plain ``def`` field may return either: the
    common, preloaded case then costs no coroutine, task or future per item. (Typed as ``R`` so that strawberry
    reads the field's GraphQL type from the annotation.)
    """
    future = loader.cache_map.get(key)
    if future is not None and future.done() and not future.cancelled() and future.exception() is None:
        return convert(future.result())

    async def later() -> R:
        return convert(await loader.load(key))

    return cast(R, later())


# Relations read as rows (SQLAlchemy Core rows, attributes named as the model's columns) rather than ORM
# objects, for answers that only read them (schema/plan.py): (model, key column, order within a key), or no
# order for a load by id.
ROW_RELATIONS: dict[str, tuple[Any, InstrumentedAttribute[Any], InstrumentedAttribute[Any] | None]] = {
    "lines_by_order": (OrderLine, OrderLine.order_id, OrderLine.position),
    "lines_by_supplier_order": (OrderLine, OrderLine.supplier_order_id, OrderLine.position),
    "supplier_orders_by_order": (SupplierOrder, SupplierOrder.order_id, SupplierOrder.id),
    "packages_by_supplier_order": (Package, Package.supplier_order_id, Package.id),
    "cancellation_requests_by_order": (
        CancellationRequest,
        CancellationRequest.order_id,
        CancellationRequest.id,
    ),
    "cancellation_requests_by_supplier_order": (
        CancellationRequest,
        CancellationRequest.supplier_order_id,
        CancellationRequest.id,
    ),
    "supplier": (Supplier, Supplier.id, None),
}


@lru_cache(maxsize=1024)
def _row_statement(
    relation: str, kind: ActorKind, shop_id: int | None, supplier_id: int | None
) -> Select[Any]:
    """The statement of a row relation for one kind of reader, built once: what ``visible`` allows depends only
    on the actor's kind, shop and supplier; the keys are bound when it runs."""
    model, key, order_by = ROW_RELATIONS[relation]
    reader = Actor(kind=kind, name="", shop_id=shop_id, supplier_id=supplier_id)
    statement = select(*model.__table__.c).where(
        key.in_(bindparam("keys", expanding=True)), visible(model, reader)
    )
    return statement if order_by is None else statement.order_by(key, order_by)


class Loaders:
    def __init__(self, actor: Actor, reading: SessionLender) -> None:
        self._actor = actor
        self._reading = reading
        self.order = self._by_id(Order)
        self.supplier_order = self._by_id(SupplierOrder)
        self.supplier = self._by_id(Supplier)
        self.shop = self._by_id(Shop)
        self.order_line = self._by_id(OrderLine)
        self.package = self._by_id(Package)
        self.order_event = self._by_id(OrderEvent)
        self.lines_by_order = self._by_parent(OrderLine, OrderLine.order_id, OrderLine.position)
        self.lines_by_supplier_order = self._by_parent(
            OrderLine, OrderLine.supplier_order_id, OrderLine.position
        )
        self.supplier_orders_by_order = self._by_parent(
            SupplierOrder, SupplierOrder.order_id, SupplierOrder.id
        )
        self.packages_by_supplier_order = self._by_parent(Package, Package.supplier_order_id, Package.id)
        self.events_by_order = self._by_parent(OrderEvent, OrderEvent.order_id, OrderEvent.id)
        self.suppliers_by_shop = self._by_parent(Supplier, Supplier.shop_id, Supplier.id)
        self.cancellation_request = self._by_id(CancellationRequest)
        self.export = self._by_id(Export)
        self.cancellation_requests_by_order = self._by_parent(
            CancellationRequest, CancellationRequest.order_id, CancellationRequest.id
        )
        self.cancellation_requests_by_supplier_order = self._by_parent(
            CancellationRequest,
            CancellationRequest.supplier_order_id,
            CancellationRequest.id,
        )
        self.cancellation_messages_by_request = self._by_parent(
            CancellationMessage, CancellationMessage.request_id, CancellationMessage.id
        )
        self.supplier_refunded = DataLoader(load_fn=self._refunded)
        self.dispute = self._by_id(Dispute)
        self.disputes_by_order = self._by_parent(Dispute, Dispute.order_id, Dispute.id)
        self.disputes_by_supplier_order = self._by_parent(Dispute, Dispute.supplier_order_id, Dispute.id)
        self.dispute_messages_by_dispute = self._by_parent(
            DisputeMessage, DisputeMessage.dispute_id, DisputeMessage.id
        )
        self.dispute_attachments_by_message = self._by_parent(
            DisputeAttachment, DisputeAttachment.message_id, DisputeAttachment.id
        )
        self.order_figures = self._figures()
        self.return_ = self._by_id(Return)
        self.return_line = self._by_id(ReturnLine)
        self.returns_by_order = self._by_parent(Return, Return.order_id, Return.id)
        self.return_lines_by_return = self._by_parent(ReturnLine, ReturnLine.return_id, ReturnLine.id)
        self.return_receipts_by_return = self._by_parent(
            ReturnReceipt, ReturnReceipt.return_id, ReturnReceipt.id
        )
        self.refund = self._by_id(Refund)
        self.refunds_by_order = self._by_parent(Refund, Refund.order_id, Refund.id)
        self.refunds_by_return = self._by_parent(Refund, Refund.return_id, Refund.id)
        self.refund_lines_by_refund = self._by_parent(RefundLine, RefundLine.refund_id, RefundLine.id)
        self.shop_policy = self._by_id(ShopPolicy)
        self.policies_by_shop = self._by_parent(ShopPolicy, ShopPolicy.shop_id, ShopPolicy.id)
        self.returned_stock = self._by_id(ReturnedStock)
        self.order_note = self._by_id(OrderNote)
        self.notes_by_order = self._by_parent(OrderNote, OrderNote.order_id, OrderNote.id)
        self.notes_by_supplier_order = self._by_parent(OrderNote, OrderNote.supplier_order_id, OrderNote.id)
        self.saved_search = self._by_id(SavedSearch)
        self.bulk_action = self._by_id(BulkAction)
        self.bulk_action_result = self._by_id(BulkActionResult)

    async def _refunded(self, supplier_order_ids: list[int]) -> Sequence[Decimal]:
        """What the supplier has refunded so far, per supplier order, whatever the source."""
        statement = (
            select(SupplierRefund.supplier_order_id, func.sum(SupplierRefund.amount))
            .where(
                SupplierRefund.supplier_order_id.in_(supplier_order_ids), visible(SupplierRefund, self._actor)
            )
            .group_by(SupplierRefund.supplier_order_id)
        )
        async with self._reading() as session:
            totals = {key: Decimal(total or 0) for key, total in (await session.execute(statement)).all()}
        return [totals.get(key, Decimal(0)) for key in supplier_order_ids]

    def by_type(self, type_name: str) -> DataLoader[int, Any] | None:
        loaders: dict[str, DataLoader[int, Any]] = {
            "Order": self.order,
            "SupplierOrder": self.supplier_order,
            "Supplier": self.supplier,
            "Shop": self.shop,
            "OrderLine": self.order_line,
            "Package": self.package,
            "OrderEvent": self.order_event,
            "CancellationRequest": self.cancellation_request,
            "Export": self.export,
            "Return": self.return_,
            "ReturnLine": self.return_line,
            "Refund": self.refund,
            "ShopPolicy": self.shop_policy,
            "ReturnedStockItem": self.returned_stock,
            "Dispute": self.dispute,
            "OrderNote": self.order_note,
            "SavedSearch": self.saved_search,
            "BulkAction": self.bulk_action,
            "BulkActionResult": self.bulk_action_result,
        }
        return loaders.get(type_name)

    def rows(self, relation: str) -> Callable[[list[int]], Awaitable[Sequence[Any]]]:
        """A load of ``ROW_RELATIONS[relation]`` for a batch of keys: a list of rows per key, or the row (or
        None) of an id. The statement an ORM loader of the relation would send, without building objects or
        the DataLoader's future per key; the caller keeps what it loaded."""
        actor = self._actor
        statement = _row_statement(relation, actor.kind, actor.shop_id, actor.supplier_id)
        key = ROW_RELATIONS[relation][1].key
        by_id = ROW_RELATIONS[relation][2] is None

        async def load(keys: list[int]) -> Sequence[Any]:
            async with self._reading() as session:
                connection = await session.connection()
                rows = await connection.execute(statement, {"keys": keys})
                if by_id:
                    found = {row.id: row for row in rows}
                    return [found.get(k) for k in keys]
                groups: dict[int, list[Any]] = defaultdict(list)
                for row in rows:
                    groups[getattr(row, key)].append(row)
            return [groups.get(k, []) for k in keys]

        return load

    def _by_id(self, model: type[M]) -> DataLoader[int, M | None]:
        async def load(ids: list[int]) -> Sequence[M | None]:
            statement = select(model).where(model.id.in_(ids), visible(model, self._actor))  # type: ignore[attr-defined]
            async with self._reading() as session:
                rows = {row.id: row for row in (await session.execute(statement)).scalars()}  # type: ignore[attr-defined]
            return [rows.get(key) for key in ids]

        return DataLoader(load_fn=load)

    def _by_parent(
        self,
        model: type[M],
        parent_key: InstrumentedAttribute[Any],
        order_by: InstrumentedAttribute[Any],
    ) -> DataLoader[int, list[M]]:
        async def load(keys: list[int]) -> Sequence[list[M]]:
            statement = (
                select(model)
                .where(parent_key.in_(keys), visible(model, self._actor))
                .order_by(parent_key, order_by)
            )
            groups: dict[int, list[M]] = defaultdict(list)
            async with self._reading() as session:
                for row in (await session.execute(statement)).scalars():
                    groups[getattr(row, parent_key.key)].append(row)
            return [groups.get(key, []) for key in keys]

        return DataLoader(load_fn=load)

    def _figures(self) -> DataLoader[int, OrderFigures | None]:
        """Money figures of orders the actor may read, all of one request level in one statement."""

        async def load(ids: list[int]) -> Sequence[OrderFigures | None]:
            async with self._reading() as session:
                figures = await order_figures(session, ids, only=visible(Order, self._actor))
            return [figures.get(key) for key in ids]

        return DataLoader(load_fn=load)
