"""DataLoaders: each batches one kind of lookup into a single SQL statement per request level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.dataloader import DataLoader

from db.id_lists import rows_among
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
)
from domain.access import visible
from domain.actors import Actor, ActorKind
from domain.figures import OrderFigures, order_figures, supplier_refunded

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


# The loader by id of each GraphQL type that has one (node lookups).
_LOADER_OF_TYPE = {
    "Order": "order",
    "SupplierOrder": "supplier_order",
    "Supplier": "supplier",
    "Shop": "shop",
    "OrderLine": "order_line",
    "Package": "package",
    "OrderEvent": "order_event",
    "CancellationRequest": "cancellation_request",
    "Export": "export",
    "Return": "return_",
    "ReturnLine": "return_line",
    "Refund": "refund",
    "ShopPolicy": "shop_policy",
    "ReturnedStockItem": "returned_stock",
    "Dispute": "dispute",
    "OrderNote": "order_note",
    "SavedSearch": "saved_search",
    "BulkAction": "bulk_action",
    "BulkActionResult": "bulk_action_result",
}


class Loaders:
    """The request's DataLoaders, each made on first use: a request uses a few of the dozens."""

    def __init__(self, actor: Actor, reading: SessionLender) -> None:
        self._actor = actor
        self._reading = reading

    @cached_property
    def order(self) -> DataLoader[int, Order | None]:
        return self._by_id(Order)

    @cached_property
    def supplier_order(self) -> DataLoader[int, SupplierOrder | None]:
        return self._by_id(SupplierOrder)

    @cached_property
    def supplier(self) -> DataLoader[int, Supplier | None]:
        return self._by_id(Supplier)

    @cached_property
    def shop(self) -> DataLoader[int, Shop | None]:
        return self._by_id(Shop)

    @cached_property
    def order_line(self) -> DataLoader[int, OrderLine | None]:
        return self._by_id(OrderLine)

    @cached_property
    def package(self) -> DataLoader[int, Package | None]:
        return self._by_id(Package)

    @cached_property
    def order_event(self) -> DataLoader[int, OrderEvent | None]:
        return self._by_id(OrderEvent)

    @cached_property
    def lines_by_order(self) -> DataLoader[int, list[OrderLine]]:
        return self._by_parent(OrderLine, OrderLine.order_id, OrderLine.position)

    @cached_property
    def lines_by_supplier_order(self) -> DataLoader[int, list[OrderLine]]:
        return self._by_parent(OrderLine, OrderLine.supplier_order_id, OrderLine.position)

    @cached_property
    def supplier_orders_by_order(self) -> DataLoader[int, list[SupplierOrder]]:
        return self._by_parent(SupplierOrder, SupplierOrder.order_id, SupplierOrder.id)

    @cached_property
    def packages_by_supplier_order(self) -> DataLoader[int, list[Package]]:
        return self._by_parent(Package, Package.supplier_order_id, Package.id)

    @cached_property
    def events_by_order(self) -> DataLoader[int, list[OrderEvent]]:
        return self._by_parent(OrderEvent, OrderEvent.order_id, OrderEvent.id)

    @cached_property
    def suppliers_by_shop(self) -> DataLoader[int, list[Supplier]]:
        return self._by_parent(Supplier, Supplier.shop_id, Supplier.id)

    @cached_property
    def cancellation_request(self) -> DataLoader[int, CancellationRequest | None]:
        return self._by_id(CancellationRequest)

    @cached_property
    def export(self) -> DataLoader[int, Export | None]:
        return self._by_id(Export)

    @cached_property
    def cancellation_requests_by_order(self) -> DataLoader[int, list[CancellationRequest]]:
        return self._by_parent(CancellationRequest, CancellationRequest.order_id, CancellationRequest.id)

    @cached_property
    def cancellation_requests_by_supplier_order(self) -> DataLoader[int, list[CancellationRequest]]:
        return self._by_parent(
            CancellationRequest,
            CancellationRequest.supplier_order_id,
            CancellationRequest.id,
        )

    @cached_property
    def cancellation_messages_by_request(self) -> DataLoader[int, list[CancellationMessage]]:
        return self._by_parent(CancellationMessage, CancellationMessage.request_id, CancellationMessage.id)

    @cached_property
    def supplier_refunded(self) -> DataLoader[int, Decimal]:
        return DataLoader(load_fn=self._refunded)

    @cached_property
    def dispute(self) -> DataLoader[int, Dispute | None]:
        return self._by_id(Dispute)

    @cached_property
    def disputes_by_order(self) -> DataLoader[int, list[Dispute]]:
        return self._by_parent(Dispute, Dispute.order_id, Dispute.id)

    @cached_property
    def disputes_by_supplier_order(self) -> DataLoader[int, list[Dispute]]:
        return self._by_parent(Dispute, Dispute.supplier_order_id, Dispute.id)

    @cached_property
    def dispute_messages_by_dispute(self) -> DataLoader[int, list[DisputeMessage]]:
        return self._by_parent(DisputeMessage, DisputeMessage.dispute_id, DisputeMessage.id)

    @cached_property
    def dispute_attachments_by_message(self) -> DataLoader[int, list[DisputeAttachment]]:
        return self._by_parent(DisputeAttachment, DisputeAttachment.message_id, DisputeAttachment.id)

    @cached_property
    def order_figures(self) -> DataLoader[int, OrderFigures | None]:
        return self._figures()

    @cached_property
    def return_(self) -> DataLoader[int, Return | None]:
        return self._by_id(Return)

    @cached_property
    def return_line(self) -> DataLoader[int, ReturnLine | None]:
        return self._by_id(ReturnLine)

    @cached_property
    def returns_by_order(self) -> DataLoader[int, list[Return]]:
        return self._by_parent(Return, Return.order_id, Return.id)

    @cached_property
    def return_lines_by_return(self) -> DataLoader[int, list[ReturnLine]]:
        return self._by_parent(ReturnLine, ReturnLine.return_id, ReturnLine.id)

    @cached_property
    def return_receipts_by_return(self) -> DataLoader[int, list[ReturnReceipt]]:
        return self._by_parent(ReturnReceipt, ReturnReceipt.return_id, ReturnReceipt.id)

    @cached_property
    def refund(self) -> DataLoader[int, Refund | None]:
        return self._by_id(Refund)

    @cached_property
    def refunds_by_order(self) -> DataLoader[int, list[Refund]]:
        return self._by_parent(Refund, Refund.order_id, Refund.id)

    @cached_property
    def refunds_by_return(self) -> DataLoader[int, list[Refund]]:
        return self._by_parent(Refund, Refund.return_id, Refund.id)

    @cached_property
    def refund_lines_by_refund(self) -> DataLoader[int, list[RefundLine]]:
        return self._by_parent(RefundLine, RefundLine.refund_id, RefundLine.id)

    @cached_property
    def shop_policy(self) -> DataLoader[int, ShopPolicy | None]:
        return self._by_id(ShopPolicy)

    @cached_property
    def policies_by_shop(self) -> DataLoader[int, list[ShopPolicy]]:
        return self._by_parent(ShopPolicy, ShopPolicy.shop_id, ShopPolicy.id)

    @cached_property
    def returned_stock(self) -> DataLoader[int, ReturnedStock | None]:
        return self._by_id(ReturnedStock)

    @cached_property
    def order_note(self) -> DataLoader[int, OrderNote | None]:
        return self._by_id(OrderNote)

    @cached_property
    def notes_by_order(self) -> DataLoader[int, list[OrderNote]]:
        return self._by_parent(OrderNote, OrderNote.order_id, OrderNote.id)

    @cached_property
    def notes_by_supplier_order(self) -> DataLoader[int, list[OrderNote]]:
        return self._by_parent(OrderNote, OrderNote.supplier_order_id, OrderNote.id)

    @cached_property
    def saved_search(self) -> DataLoader[int, SavedSearch | None]:
        return self._by_id(SavedSearch)

    @cached_property
    def bulk_action(self) -> DataLoader[int, BulkAction | None]:
        return self._by_id(BulkAction)

    @cached_property
    def bulk_action_result(self) -> DataLoader[int, BulkActionResult | None]:
        return self._by_id(BulkActionResult)

    async def _refunded(self, supplier_order_ids: list[int]) -> Sequence[Decimal]:
        async with self._reading() as session:
            totals = await supplier_refunded(session, supplier_order_ids, seen_by=self._actor)
        return [totals[key] for key in supplier_order_ids]

    def by_type(self, type_name: str) -> DataLoader[int, Any] | None:
        name = _LOADER_OF_TYPE.get(type_name)
        return None if name is None else cast(DataLoader[int, Any], getattr(self, name))

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

    async def rows_among(
        self, statement_for: Callable[[str, Actor], Any | None], ids: list[int]
    ) -> list[Any] | None:
        """The rows, straight from the driver, of the statement ``statement_for(dialect, reader)`` over ``ids``
        (given as in db.id_lists); None when it gives no statement."""
        async with self._reading() as session:
            connection = await session.connection()
            statement = statement_for(connection.dialect.name, self._actor)
            if statement is None:
                return None
            return await rows_among(connection, statement, ids)

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
