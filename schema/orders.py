"""Queries and mutations on store orders and supplier orders."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import ColumnElement, Select, and_, func, select
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from db import models
from db.search import SearchSyntaxError, child_rows_count, order_filter
from domain import orders as order_cases
from domain import supplier_orders as supplier_order_cases
from domain.access import visible
from domain.actors import Scope
from schema.context import (
    children_loaded_by_plan,
    context_of,
    require_reader,
    require_scope,
    require_supplier,
)
from schema.errors import UserError, input_id, run_on_id, run_use_case
from schema.ids import id_argument, parse_id
from schema.loaders import Loaders
from schema.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    PageRequest,
    Reverse,
    SortColumn,
    datetime_sort,
    decimal_sort,
    int_sort,
    keyset_page,
    keyset_rows,
    str_sort,
)
from schema.types import Order, OrderSortKeys, SupplierOrder, SupplierOrderStatus

SearchQuery = Annotated[
    str | None,
    strawberry.argument(
        description='Search syntax, e.g. "supplier_status:wait_seller_send_goods total:>50 -tag:test" '
        "(fields, comparators, OR, NOT; see the README)."
    ),
]


ORDER_SORTS: dict[models.OrderSortKey, SortColumn] = {
    models.OrderSortKey.CREATED_AT: datetime_sort(models.Order.created_at),
    models.OrderSortKey.UPDATED_AT: datetime_sort(models.Order.updated_at),
    models.OrderSortKey.NUMBER: int_sort(models.Order.number_value),
    models.OrderSortKey.TOTAL_PRICE: decimal_sort(models.Order.total),
    models.OrderSortKey.CUSTOMER_NAME: str_sort(models.Order.customer_name),
}


def search_clause(
    query: str | None, shop_id: int | None, *, ordered_page: bool = False
) -> ColumnElement[bool] | None:
    if not query:
        return None
    try:
        return order_filter(query, shop_id=shop_id, ordered_page=ordered_page)
    except SearchSyntaxError as error:
        raise GraphQLError(
            f"invalid search query: {error}",
            extensions={"code": "BAD_USER_INPUT", "argument": "query", "position": error.position},
        ) from error


async def saved_search_of(info: Info, gid: strawberry.ID | None) -> models.SavedSearch | None:
    """The saved view an ``orders`` field applies; an unknown one, or one whose query no longer parses, is an
    error rather than an empty list."""
    if gid is None:
        return None
    context = context_of(info)
    _, pk = id_argument(gid, "SavedSearch", "savedSearchId")
    saved = await context.loaders.saved_search.load(pk)
    if saved is None:
        raise GraphQLError(
            "saved search not found", extensions={"code": "NOT_FOUND", "argument": "savedSearchId"}
        )
    try:
        order_filter(saved.query) if saved.query.strip() else None
    except SearchSyntaxError as error:
        raise GraphQLError(
            f"saved search {saved.name!r} has a query that no longer parses: {error}",
            extensions={
                "code": "BAD_USER_INPUT",
                "argument": "savedSearchId",
                "position": error.position,
            },
        ) from error
    return saved


def combined_clause(
    query: str | None, saved: models.SavedSearch | None, shop_id: int | None, *, ordered_page: bool = False
) -> ColumnElement[bool] | None:
    """The view's query AND the given query; ``ordered_page`` as in ``db.search.compile_order_filter``."""
    clauses = [
        clause
        for clause in (
            search_clause(saved.query, shop_id, ordered_page=ordered_page) if saved else None,
            search_clause(query, shop_id, ordered_page=ordered_page),
        )
        if clause is not None
    ]
    return and_(*clauses) if clauses else None


# What a query selects, by field name (aliases and fragments folded in): {"orders": {"nodes": {"lines": {}}}}.
SelectionTree = dict[str, "SelectionTree"]


def selected_tree(selections: Sequence[Selection]) -> SelectionTree:
    tree: SelectionTree = {}
    for selection in selections:
        children = selected_tree(selection.selections)
        if isinstance(selection, SelectedField):
            tree[selection.name] = merged(tree.get(selection.name, {}), children)
        else:  # a fragment spread or an inline fragment: its fields sit at this level
            tree = merged(tree, children)
    return tree


def merged(left: SelectionTree, right: SelectionTree) -> SelectionTree:
    tree = dict(left)
    for name, children in right.items():
        tree[name] = merged(tree.get(name, {}), children)
    return tree


async def preload_order_children(
    loaders: Loaders, orders: list[models.Order], selected: SelectionTree
) -> None:
    """Load the relations a page of orders selects, level by level, each in the one batch its DataLoader would
    have made anyway (so the statement count does not change); the child fields then answer from the loaders'
    cache without awaiting, item by item."""
    if not orders:
        return
    order_ids = [order.id for order in orders]
    if "lines" in selected:
        await loaders.lines_by_order.load_many(order_ids)
    below = selected.get("supplierOrders")
    if below is None:
        return
    supplier_orders = [
        row for rows in await loaders.supplier_orders_by_order.load_many(order_ids) for row in rows
    ]
    if not supplier_orders:
        return
    supplier_order_ids = [row.id for row in supplier_orders]
    if "supplier" in below:
        await loaders.supplier.load_many(list(dict.fromkeys(row.supplier_id for row in supplier_orders)))
    if "packages" in below:
        await loaders.packages_by_supplier_order.load_many(supplier_order_ids)
    if "cancellationRequests" in below:
        await loaders.cancellation_requests_by_supplier_order.load_many(supplier_order_ids)


@strawberry.type
class OrdersQuery:
    @strawberry.field(
        description="Store orders, newest last unless reversed; `query` uses the search syntax."
    )
    async def orders(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        query: SearchQuery = None,
        sort_key: Annotated[
            OrderSortKeys | None,  # type: ignore[valid-type]
            strawberry.argument(
                description="What the orders are sorted by. Default: the saved search's, else CREATED_AT."
            ),
        ] = None,
        reverse: Annotated[
            bool | None,
            strawberry.argument(
                description="Reverse the sort order. Default: the saved search's, else false."
            ),
        ] = None,
        saved_search_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Apply a saved search: its query AND `query`, and its sort."),
        ] = None,
    ) -> Connection[Order]:
        actor = require_scope(info, Scope.READ_ORDERS)
        context = context_of(info)
        saved = await saved_search_of(info, saved_search_id)
        # Every sort key has its (shop_id, column, id) index, which a page of one shop's orders walks.
        clause = combined_clause(query, saved, actor.shop_id, ordered_page=actor.shop_id is not None)

        def statement() -> Select[Any]:
            visible_orders = select(models.Order).where(visible(models.Order, actor))
            return visible_orders if clause is None else visible_orders.where(clause)

        # Without a search, what the statement selects depends on the actor's tenancy alone.
        reuse = ("orders", actor.kind, actor.shop_id, actor.supplier_id) if clause is None else None
        if sort_key is None:
            sort_key = saved.sort_key if saved else models.OrderSortKey.CREATED_AT
        if reverse is None:
            reverse = saved.reverse if saved else False
        request = PageRequest(first, after, last, before, reverse)
        if children_loaded_by_plan.get():
            # A compiled plan answers: it reads the page's rows as they are and loads their children itself.
            rows = await keyset_rows(
                context, statement, ORDER_SORTS[sort_key], models.Order.id, request, reuse=reuse
            )
            return rows  # type: ignore[return-value]
        page = await keyset_page(
            context,
            statement,
            ORDER_SORTS[sort_key],
            models.Order.id,
            request,
            to_node=Order.of,
            reuse=reuse,
        )
        node = selected_tree(info.selected_fields)["orders"]
        await preload_order_children(
            context.loaders,
            [edge.node.model for edge in page.edges],
            merged(node.get("nodes", {}), node.get("edges", {}).get("node", {})),
        )
        return page

    @strawberry.field(description="How many orders match the search query (and the saved search, if given).")
    async def orders_count(
        self,
        info: Info,
        query: SearchQuery = None,
        saved_search_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Count within a saved search: its query AND `query`."),
        ] = None,
    ) -> int:
        actor = require_scope(info, Scope.READ_ORDERS)
        saved = await saved_search_of(info, saved_search_id)
        clause = combined_clause(query, saved, actor.shop_id)
        # A merchant sees the orders of its shop, all of them: those its child rows name, when they decide.
        from_child_rows = child_rows_count(clause, actor.shop_id) if actor.shop_id is not None else None
        statement = select(func.count()).select_from(models.Order).where(visible(models.Order, actor))
        if clause is not None:
            statement = statement.where(clause)
        if from_child_rows is not None:
            statement = from_child_rows
        async with context_of(info).reading() as session:
            return int((await session.execute(statement)).scalar_one())

    @strawberry.field(description="A store order by id; null when it does not exist or is not yours.")
    async def order(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The order's id (gid://dropdesk/Order/…).")
        ],
    ) -> Order | None:
        require_scope(info, Scope.READ_ORDERS)
        _, pk = id_argument(id, "Order", "id")
        row = await context_of(info).loaders.order.load(pk)
        return Order.of(row) if row else None

    @strawberry.field(description="Supplier orders: a supplier sees only its own.")
    async def supplier_orders(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        status: Annotated[
            SupplierOrderStatus | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only supplier orders in this AliExpress status."),
        ] = None,
        reverse: Reverse = False,
    ) -> Connection[SupplierOrder]:
        context = context_of(info)
        actor = require_reader(info)
        statement = select(models.SupplierOrder).where(visible(models.SupplierOrder, actor))
        if status is not None:
            statement = statement.where(models.SupplierOrder.status == status)
        return await keyset_page(
            context,
            statement,
            int_sort(models.SupplierOrder.id),
            models.SupplierOrder.id,
            PageRequest(first, after, last, before, reverse),
            to_node=SupplierOrder.of,
        )


@strawberry.input
class CustomerInput:
    name: str = ""
    email: str | None = None
    phone: str | None = None


@strawberry.input
class MailingAddressInput:
    name: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    zip: str | None = None
    country_code: str | None = None
    phone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


@strawberry.input
class TrackingEventInput:
    time: datetime
    status: str
    description: str = ""
    location: str | None = None


@strawberry.input
class PackageInput:
    tracking_number: str
    carrier: str | None = None
    tracking_status: str | None = None
    events: list[TrackingEventInput] = strawberry.field(default_factory=list)

    def to_domain(self) -> supplier_order_cases.PackageInput:
        return supplier_order_cases.PackageInput(
            tracking_number=self.tracking_number,
            carrier=self.carrier,
            tracking_status=self.tracking_status,
            events=[
                supplier_order_cases.TrackingEventInput(
                    time=event.time,
                    status=event.status,
                    description=event.description,
                    location=event.location,
                )
                for event in self.events
            ],
        )


@strawberry.input
class OrderLineImportInput:
    title: str
    quantity: int
    unit_price: Decimal
    variant_title: str | None = None
    sku: str | None = None
    image_url: str | None = None
    supplier_id: strawberry.ID | None = strawberry.field(
        default=None, description="The supplier fulfilling this line; goes with aliexpressOrderId."
    )
    aliexpress_order_id: str | None = None


@strawberry.input
class SupplierOrderImportInput:
    aliexpress_order_id: str
    cost: Decimal
    status: SupplierOrderStatus = models.SupplierOrderStatus.PLACE_ORDER_SUCCESS  # type: ignore[valid-type]
    end_reason: str | None = None
    paid_at: datetime | None = None
    packages: list[PackageInput] = strawberry.field(default_factory=list)


@strawberry.input
class OrderImportInput:
    number: str
    currency_code: str = strawberry.field(description="ISO 4217 code, e.g. USD.")
    lines: list[OrderLineImportInput]
    customer: CustomerInput | None = None
    shipping_address: MailingAddressInput | None = None
    shipping_price: Decimal = Decimal(0)
    tags: list[str] = strawberry.field(default_factory=list)
    note: str | None = None
    created_at: datetime | None = None
    supplier_orders: list[SupplierOrderImportInput] = strawberry.field(default_factory=list)


@strawberry.input
class OrdersImportInput:
    orders: list[OrderImportInput]


@strawberry.type
class OrdersImportPayload:
    orders: list[Order]
    user_errors: list[UserError]


@strawberry.input
class SupplierOrderUpdateInput:
    id: strawberry.ID
    status: SupplierOrderStatus | None = None  # type: ignore[valid-type]
    end_reason: str | None = None
    packages: list[PackageInput] = strawberry.field(default_factory=list)


@strawberry.type
class SupplierOrderUpdatePayload:
    supplier_order: SupplierOrder | None
    user_errors: list[UserError]


def _malformed_supplier_ids(orders: list[OrderImportInput]) -> list[UserError]:
    """Supplier ids that are not ids of a supplier, each named by its path in the input."""
    errors = []
    for order_index, order in enumerate(orders):
        for line_index, line in enumerate(order.lines):
            if line.supplier_id is not None:
                path = ("orders", str(order_index), "lines", str(line_index), "supplierId")
                errors += input_id(line.supplier_id, "Supplier", *path)[1]
    return errors


def _line_to_domain(line: OrderLineImportInput) -> order_cases.LineInput:
    supplier_pk = None
    if line.supplier_id is not None:
        # Malformed ids were refused before; a well-formed unknown one fails like a foreign one.
        supplier_pk = parse_id(line.supplier_id, "Supplier") or -1
    return order_cases.LineInput(
        title=line.title,
        quantity=line.quantity,
        unit_price=line.unit_price,
        variant_title=line.variant_title,
        sku=line.sku,
        image_url=line.image_url,
        supplier_id=supplier_pk,
        aliexpress_order_id=line.aliexpress_order_id,
    )


def _order_to_domain(data: OrderImportInput) -> order_cases.OrderInput:
    customer = data.customer or CustomerInput()
    return order_cases.OrderInput(
        number=data.number,
        currency=data.currency_code,
        lines=[_line_to_domain(line) for line in data.lines],
        customer_name=customer.name,
        customer_email=customer.email,
        customer_phone=customer.phone,
        shipping_address=data.shipping_address.to_dict() if data.shipping_address else None,
        shipping=data.shipping_price,
        tags=data.tags,
        note=data.note,
        created_at=data.created_at,
        supplier_orders=[
            order_cases.SupplierOrderInput(
                aliexpress_order_id=so.aliexpress_order_id,
                cost=so.cost,
                status=so.status,
                end_reason=so.end_reason,
                paid_at=so.paid_at,
                packages=[package.to_domain() for package in so.packages],
            )
            for so in data.supplier_orders
        ],
    )


@strawberry.type
class OrdersMutation:
    @strawberry.mutation(
        description="Bring store orders in with their supplier orders; the same number again updates the order."
    )
    async def orders_import(
        self,
        info: Info,
        input: Annotated[
            OrdersImportInput,
            strawberry.argument(description="The orders; all are imported or, on any error, none."),
        ],
    ) -> OrdersImportPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        malformed = _malformed_supplier_ids(input.orders)
        if malformed:
            return OrdersImportPayload(orders=[], user_errors=malformed)
        orders = [_order_to_domain(data) for data in input.orders]
        results, errors = await run_use_case(
            info, lambda session, actor: order_cases.import_orders(session, actor, orders)
        )
        return OrdersImportPayload(orders=[Order.of(r.order) for r in results or []], user_errors=errors)

    @strawberry.mutation(
        description="A supplier reports its order's AliExpress status, packages and tracking."
    )
    async def supplier_order_update(
        self,
        info: Info,
        input: Annotated[
            SupplierOrderUpdateInput,
            strawberry.argument(
                description="The supplier order and what changed: status, packages, tracking."
            ),
        ],
    ) -> SupplierOrderUpdatePayload:
        require_supplier(info)
        change = supplier_order_cases.SupplierOrderChange(
            status=input.status,
            end_reason=input.end_reason,
            packages=[package.to_domain() for package in input.packages],
        )
        row, errors = await run_on_id(
            info,
            input.id,
            "SupplierOrder",
            "id",
            lambda session, actor, pk: supplier_order_cases.update_supplier_order(session, actor, pk, change),
        )
        return SupplierOrderUpdatePayload(
            supplier_order=SupplierOrder.of(row) if row else None, user_errors=errors
        )
