"""Compiled read plans: the order reads answered without resolving plain fields one by one.

graphql-core completes every field of every object through its executor (a resolver call, an ``Info``, type
checks, a path), which for a page of 100 orders and their children is most of a request's cost. A query made
only of fields listed in ``READERS`` is compiled once per validated document (and per value of the variables
its ``@skip``/``@include`` read) into a tree of plain functions: each object is a list of (response key,
function of the source row) built from graphql-core's own field collection, so aliases, fragments, type
conditions and directives mean what they mean to the standard executor.

A request with such a plan still runs its root fields' resolvers (``orders``, ``order``, ``ordersCount``:
authorisation, tenancy, search, paging, and the page's preloading), then loads what the plan's children need
through the request's DataLoaders, level by level, in the same batches the standard executor would make, and
builds the answer from the loaded rows synchronously. Leaves are written as the schema's scalars and enums
write them (enums through a precomputed value→name table).

Whatever a plan does not cover runs on the standard executor: other fields (anything async, with arguments,
abstract types), mutations and subscriptions, middleware, and any error or surprise on the way (a resolver
error, a null in a non-null field, a row not loaded): reads are idempotent, so the whole operation is simply
run again the standard way, which also produces the errors exactly as usual. This runs inside the schema
extensions' execution hook, so the guards' checks and cost report see one execution either way.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.collect_fields import FieldDetails
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from orjson import loads
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from domain.money import quantize
from domain.supplier_orders import can_request_cancellation
from schema.context import Context, children_loaded_by_plan
from schema.ids import to_global_id
from schema.json_answers import OrderAnswers, order_answers

log = logging.getLogger("dropdesk.graphql.plan")

# Distinct (document, operation, directive variables) whose plan, or whose reason for having none, is kept.
PLANS_KEPT = 256

INT_MIN, INT_MAX = -(2**31), 2**31 - 1


class NotCovered(Exception):
    """The document asks for something no plan covers; the message says what (for logs and tests)."""


class Fallback(Exception):
    """At run time the plan met something only the standard executor answers properly (an error, a null
    where the schema promises a value)."""


@dataclass
class PlanStats:
    """How requests were executed, process-wide: ``compiled`` by a plan, ``fallbacks`` by reason."""

    compiled: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    # Of the compiled, how many were known reads answered without the HTTP view (schema/known_reads.py).
    known_reads: int = 0


stats = PlanStats()


# --- what each covered field reads -----------------------------------------------------------------------


class Run:
    """One request's state for a plan: the rows loaded so far, by relation of ``Loaders.rows`` and key."""

    __slots__ = ("answers", "loaded_rows", "loaders")

    def __init__(self, loaders: Any) -> None:
        self.loaders = loaders
        self.loaded_rows: dict[str, dict[Any, Any]] = {}
        # Answers the database built (schema/json_answers.py), by the id of their OrderAnswers and order id.
        self.answers: dict[int, dict[Any, Any]] = {}

    def loaded(self, relation: str, key: Any) -> Any:
        # A key not loaded (KeyError) ends in the standard executor.
        return self.loaded_rows[relation][key]

    async def load(self, relation: str, keys: Iterable[Any]) -> None:
        """Load the keys of ``relation`` not loaded yet, in one statement."""
        rows = self.loaded_rows.setdefault(relation, {})
        missing = [key for key in dict.fromkeys(keys) if key not in rows]
        if missing:
            rows.update(zip(missing, await self.loaders.rows(relation)(missing), strict=True))

    async def load_answers(self, answers: OrderAnswers, sources: list[Any]) -> bool:
        """Have the database build the answers of ``sources``; False when it does not for this reader."""
        rows = await self.loaders.rows_among(answers.statement, [source.id for source in sources])
        if rows is None:
            return False
        found = self.answers.setdefault(id(answers), {})
        for order_id, answer in rows:
            found[order_id] = loads(answer) if isinstance(answer, str | bytes) else answer
        return True


Get = Callable[[Any, Run], Any]


@dataclass(frozen=True)
class Reader:
    """How a field's value is read from its parent's source; ``loader`` and ``key`` name the relation of
    ``Loaders.rows`` it reads, which the plan loads for a whole level before building the answer."""

    get: Get
    loader: str | None = None
    key: Callable[[Any], Any] | None = None
    # Set when the value is a plain read of the source: the Python expression of it, written into the
    # generated function of its object (see ``_generated_build``).
    expression: str | None = None


def _attr(name: str) -> Reader:
    getter = attrgetter(name)
    return Reader(lambda source, _run: getter(source), expression=f"source.{name}")


def _gid(type_name: str) -> Reader:
    return Reader(lambda source, _run: to_global_id(type_name, source.id))


def _money(amount: str) -> Reader:
    getter = attrgetter(amount)
    return Reader(lambda source, _run: (getter(source), source.currency))


def _children(loader: str, key: str, wrap: Callable[[Any, Any], Any] | None = None) -> Reader:
    """A list of rows from a DataLoader keyed by one of the parent's attributes."""
    key_of = attrgetter(key)
    if wrap is None:
        return Reader(lambda source, run: run.loaded(loader, key_of(source)), loader, key_of)
    return Reader(
        lambda source, run: [wrap(source, row) for row in run.loaded(loader, key_of(source))], loader, key_of
    )


def _line_of(parent: Any, line: Any) -> tuple[Any, str]:
    # A line's unit price is in its parent's currency, as the standard resolvers pass it down.
    return (line, parent.currency)


def _line(name: str) -> Reader:
    getter = attrgetter(name)
    return Reader(lambda source, _run: getter(source[0]), expression=f"source[0].{name}")


def _from_dict(name: str) -> Reader:
    return Reader(lambda source, _run: source.get(name), expression=f"source.get({name!r})")


def _event_time(event: dict[str, Any], _run: Run) -> datetime:
    return datetime.fromisoformat(event["time"])


# Sources: connections, edges and page info are the root resolver's objects (a page's nodes are rows while a
# plan answers); every entity is its row, Core or ORM (an OrderLine is (row, currency)); Money is (amount, currency); Customer is the order's row; MailingAddress and
# TrackingEvent are the stored JSON objects.
READERS: dict[tuple[str, str], Reader] = {
    ("OrderConnection", "edges"): _attr("edges"),
    ("OrderConnection", "nodes"): Reader(lambda connection, _run: [edge.node for edge in connection.edges]),
    ("OrderConnection", "pageInfo"): _attr("page_info"),
    ("OrderEdge", "cursor"): _attr("cursor"),
    ("OrderEdge", "node"): _attr("node"),
    ("PageInfo", "hasNextPage"): _attr("has_next_page"),
    ("PageInfo", "hasPreviousPage"): _attr("has_previous_page"),
    ("PageInfo", "startCursor"): _attr("start_cursor"),
    ("PageInfo", "endCursor"): _attr("end_cursor"),
    ("Order", "id"): _gid("Order"),
    ("Order", "number"): _attr("number"),
    ("Order", "createdAt"): _attr("created_at"),
    ("Order", "updatedAt"): _attr("updated_at"),
    ("Order", "cancelledAt"): _attr("cancelled_at"),
    ("Order", "currencyCode"): _attr("currency"),
    ("Order", "financialStatus"): _attr("financial_status"),
    ("Order", "status"): _attr("status"),
    ("Order", "tags"): Reader(lambda order, _run: [tag for tag in order.tags.split(",") if tag]),
    ("Order", "note"): _attr("note"),
    ("Order", "customer"): Reader(lambda order, _run: order),
    ("Order", "shippingAddress"): Reader(lambda order, _run: order.shipping_address or None),
    ("Order", "subtotal"): _money("subtotal"),
    ("Order", "shipping"): _money("shipping"),
    ("Order", "total"): _money("total"),
    ("Order", "lines"): _children("lines_by_order", "id", _line_of),
    ("Order", "supplierOrders"): _children("supplier_orders_by_order", "id"),
    ("Order", "cancellationRequests"): _children("cancellation_requests_by_order", "id"),
    ("Customer", "name"): _attr("customer_name"),
    ("Customer", "email"): _attr("customer_email"),
    ("Customer", "phone"): _attr("customer_phone"),
    **{
        ("MailingAddress", name): _from_dict(key)
        for name, key in (
            ("name", "name"),
            ("address1", "address1"),
            ("address2", "address2"),
            ("city", "city"),
            ("province", "province"),
            ("zip", "zip"),
            ("countryCode", "country_code"),
            ("phone", "phone"),
        )
    },
    ("Money", "amount"): Reader(lambda money, _run: quantize(money[0], money[1])),
    ("Money", "currencyCode"): Reader(lambda money, _run: money[1]),
    ("OrderLine", "id"): Reader(lambda line, _run: to_global_id("OrderLine", line[0].id)),
    ("OrderLine", "title"): _line("title"),
    ("OrderLine", "variantTitle"): _line("variant_title"),
    ("OrderLine", "sku"): _line("sku"),
    ("OrderLine", "quantity"): _line("quantity"),
    ("OrderLine", "imageUrl"): _line("image_url"),
    # Merchants only; both covered roots refuse other actors before any line is read.
    ("OrderLine", "unitPrice"): Reader(lambda line, _run: (line[0].unit_price, line[1])),
    ("SupplierOrder", "id"): _gid("SupplierOrder"),
    ("SupplierOrder", "aliexpressOrderId"): _attr("aliexpress_order_id"),
    ("SupplierOrder", "status"): _attr("status"),
    ("SupplierOrder", "endReason"): _attr("end_reason"),
    ("SupplierOrder", "paidAt"): _attr("paid_at"),
    ("SupplierOrder", "shippedAt"): _attr("shipped_at"),
    ("SupplierOrder", "finishedAt"): _attr("finished_at"),
    ("SupplierOrder", "createdAt"): _attr("created_at"),
    ("SupplierOrder", "updatedAt"): _attr("updated_at"),
    ("SupplierOrder", "cost"): _money("cost"),
    ("SupplierOrder", "supplier"): Reader(
        lambda supplier_order, run: run.loaded("supplier", supplier_order.supplier_id),
        "supplier",
        attrgetter("supplier_id"),
    ),
    ("SupplierOrder", "lines"): _children("lines_by_supplier_order", "id", _line_of),
    ("SupplierOrder", "packages"): _children("packages_by_supplier_order", "id"),
    ("SupplierOrder", "cancellationRequests"): _children("cancellation_requests_by_supplier_order", "id"),
    ("SupplierOrder", "canRequestCancellation"): Reader(
        lambda supplier_order, _run: can_request_cancellation(supplier_order)
    ),
    ("Supplier", "id"): _gid("Supplier"),
    ("Supplier", "name"): _attr("name"),
    ("Supplier", "aliexpressStoreId"): _attr("aliexpress_store_id"),
    ("Supplier", "storeUrl"): _attr("store_url"),
    ("Supplier", "acceptsReturns"): _attr("accepts_returns"),
    ("Supplier", "returnWindowDays"): _attr("return_window_days"),
    ("Package", "id"): _gid("Package"),
    ("Package", "trackingNumber"): _attr("tracking_number"),
    ("Package", "carrier"): _attr("carrier"),
    ("Package", "trackingStatus"): _attr("tracking_status"),
    ("Package", "events"): _attr("tracking_events"),
    ("TrackingEvent", "time"): Reader(_event_time),
    ("TrackingEvent", "status"): Reader(lambda event, _run: event["status"], expression="source['status']"),
    ("TrackingEvent", "location"): _from_dict("location"),
    ("TrackingEvent", "description"): _from_dict("description"),
    ("CancellationRequest", "id"): _gid("CancellationRequest"),
    ("CancellationRequest", "status"): _attr("status"),
    ("CancellationRequest", "reason"): _attr("reason"),
    ("CancellationRequest", "respondBy"): _attr("respond_by"),
    ("CancellationRequest", "decidedAt"): _attr("decided_at"),
    ("CancellationRequest", "createdAt"): _attr("created_at"),
    ("CancellationRequest", "updatedAt"): _attr("updated_at"),
}

# Root fields whose resolver runs as usual, and how its result becomes the source of the plan below it.
ROOTS: dict[str, Callable[[Any], Any]] = {
    "orders": lambda connection: connection,
    "order": lambda order: order.model if order is not None else None,
    "ordersCount": lambda count: count,
}


# --- leaves ----------------------------------------------------------------------------------------------


def _checked(coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def output(value: Any) -> Any:
        coerced = coerce(value)
        if coerced is None:
            raise Fallback("a leaf coerced to null")
        return coerced

    return output


# How a generated build tells a value it may write as it is, per leaf type (``value`` is the field's value).
AS_IS = {
    "String": "value.__class__ is str",
    "ID": "value.__class__ is str",
    "Int": f"value.__class__ is int and {INT_MIN} <= value <= {INT_MAX}",
    "Boolean": "value.__class__ is bool",
}


def leaf_output(named: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """The leaf's JSON value as graphql-core would write it, with the common cases answered without a call
    into the type: strings as they are, ints in range, and enums by a table instead of a scan of the values."""
    coerce = _checked(named.coerce_output_value)
    if isinstance(named, GraphQLEnumType):
        names: dict[Any, str] = {}
        wrapped = getattr(named, "wrapped_cls", None)
        for name, value in named.values.items():
            names[value.value] = name
            if wrapped is not None:
                names[wrapped(value.value)] = name

        def enum_output(value: Any) -> Any:
            found = names.get(value)
            return found if found is not None else coerce(value)

        return enum_output
    kind = named.name
    if kind in ("String", "ID"):
        return lambda value: value if value.__class__ is str else coerce(value)
    if kind == "Int":
        return lambda value: (
            value if value.__class__ is int and INT_MIN <= value <= INT_MAX else coerce(value)
        )
    if kind == "Boolean":
        return lambda value: value if value.__class__ is bool else coerce(value)
    return coerce


# --- plans -----------------------------------------------------------------------------------------------

Complete = Callable[[Any, Run], Any]


@dataclass
class ObjectPlan:
    """What to answer for one selection on one object type."""

    # (response key, its value as a Python expression over ``source`` and ``run``, names the expression uses).
    fields: list[tuple[str, str, dict[str, Any]]]
    # Row relations this level reads: (relation, key of a source).
    loads: list[tuple[str, Callable[[Any], Any]]]
    # Object fields whose own plans read row relations: (reader, is a list, plan).
    descents: list[tuple[Get, bool, ObjectPlan]]
    build: Callable[[Any, Run], dict[str, Any]] = field(init=False)
    # The whole selection as one statement that has the database build each answer, when it has that form.
    answers: OrderAnswers | None = None

    @property
    def needs_loading(self) -> bool:
        return bool(self.loads or self.descents)

    def generate(self) -> None:
        self.build = _generated_build(self.fields)

    async def load(self, sources: list[Any], run: Run) -> None:
        """Load the rows this plan reads for all ``sources`` of one level, one statement per relation, then
        the levels below."""
        if not sources:
            return
        if self.answers is not None and await run.load_answers(self.answers, sources):
            return
        for relation, key_of in self.loads:
            await run.load(relation, map(key_of, sources))
        for get, is_list, plan in self.descents:
            below: list[Any] = []
            for source in sources:
                value = get(source, run)
                if value is None:
                    continue
                if is_list:
                    below.extend(item for item in value if item is not None)
                else:
                    below.append(value)
            await plan.load(below, run)


@dataclass
class RootField:
    key: str
    field_def: GraphQLField | None  # None for __typename
    details: list[FieldDetails]
    source_of: Callable[[Any], Any]
    complete: Complete
    plan: ObjectPlan | None


@dataclass
class Plan:
    roots: list[RootField]


def _completion(
    executor: StrawberryGraphQLCoreExecutionContext,
    type_: GraphQLOutputType,
    details: list[FieldDetails],
    where: str,
) -> tuple[Complete, ObjectPlan | None, bool]:
    """How to complete a value of ``type_``: the function, the object plan inside it if any, and whether it
    is a list."""
    if isinstance(type_, GraphQLNonNull):
        inner, plan, is_list = _completion(executor, type_.of_type, details, where)

        def non_null(value: Any, run: Run) -> Any:
            if value is None:
                raise Fallback(f"null at non-null {where}")
            return inner(value, run)

        return non_null, plan, is_list
    if isinstance(type_, GraphQLList):
        item_type = type_.of_type
        bare = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if isinstance(bare, GraphQLList):
            raise NotCovered(f"{where}: a list of lists")
        item, plan, _ = _completion(executor, item_type, details, where)

        def items(value: Any, run: Run) -> Any:
            return None if value is None else [item(element, run) for element in value]

        return items, plan, True
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        output = leaf_output(type_)
        return (lambda value, _run: None if value is None else output(value)), None, False
    if isinstance(type_, GraphQLObjectType):
        plan = compile_object(executor, type_, details)
        build = plan.build
        return (lambda value, run: None if value is None else build(value, run)), plan, False
    raise NotCovered(f"{where}: {type_} is abstract")


def compile_object(
    executor: StrawberryGraphQLCoreExecutionContext, type_: GraphQLObjectType, details: list[FieldDetails]
) -> ObjectPlan:
    grouped, defer_usages, _ = executor.collect_subfields(type_, details)
    if defer_usages:
        raise NotCovered(f"{type_.name}: deferred fragments")
    plan = ObjectPlan(fields=[], loads=[], descents=[])
    for key, field_details in grouped.items():
        node = field_details[0].node
        name = node.name.value
        if any(d.fragment_variable_values is not None or d.defer_usage is not None for d in field_details):
            raise NotCovered(f"{type_.name}.{name}: fragment variables or deferral")
        if name == "__typename":
            plan.fields.append((key, repr(type_.name), {}))
            continue
        reader = READERS.get((type_.name, name))
        if reader is None:
            raise NotCovered(f"{type_.name}.{name}")
        if any(d.node.arguments for d in field_details):
            raise NotCovered(f"{type_.name}.{name} with arguments")
        field_type = type_.fields[name].type
        where = f"{type_.name}.{name}"
        non_null = isinstance(field_type, GraphQLNonNull)
        bare = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
        get = reader.get
        child = None
        number = len(plan.fields)
        if isinstance(bare, GraphQLScalarType | GraphQLEnumType):
            plan.fields.append((key, *_leaf_expression(reader, bare, non_null, where, number)))
        else:
            complete, child, is_list = _completion(executor, field_type, field_details, where)
            emit = _object_emitter(get, field_type, child, where) or _emitter(get, complete)
            plan.fields.append((key, f"emit{number}(source, run)", {f"emit{number}": emit}))
        if reader.loader is not None and reader.key is not None:
            plan.loads.append((reader.loader, reader.key))
        if child is not None and child.needs_loading:
            plan.descents.append((get, is_list, child))
    plan.generate()
    if plan.needs_loading:
        plan.answers = order_answers(executor, type_, details)
        if plan.answers is not None:
            plan.build = _answered_build(plan.answers, plan.build)
    return plan


def _answered_build(
    answers: OrderAnswers, python_build: Callable[[Any, Run], dict[str, Any]]
) -> Callable[[Any, Run], dict[str, Any]]:
    """The database's answer when it built them for this request, else the Python build."""
    key = id(answers)

    def build(source: Any, run: Run) -> dict[str, Any]:
        found = run.answers.get(key)
        return python_build(source, run) if found is None else found[source.id]

    return build


def _leaf_expression(
    reader: Reader, type_: GraphQLScalarType | GraphQLEnumType, non_null: bool, where: str, number: int
) -> tuple[str, dict[str, Any]]:
    output = leaf_output(type_)
    write = f"write{number}"
    if reader.expression is None:
        emit = f"emit{number}"
        return f"{emit}(source, run)", {emit: _leaf_emitter(reader, output, non_null, where)}
    if non_null:
        # The slow path writes what is not written as is, and refuses None.
        written = _non_null_output(output, where)
        as_is = AS_IS.get(type_.name)
        if as_is is None:
            return f"{write}({reader.expression})", {write: written}
        return (
            f"(value if {as_is.replace('value.', f'(value := {reader.expression}).', 1)} else {write}(value))",
            {write: written},
        )
    as_is = AS_IS.get(type_.name)
    otherwise = f"value if {as_is} else {write}(value)" if as_is else f"{write}(value)"
    return f"(None if (value := {reader.expression}) is None else {otherwise})", {write: output}


def _non_null_output(output: Callable[[Any], Any], where: str) -> Callable[[Any], Any]:
    def non_null_output(value: Any) -> Any:
        if value is None:
            raise Fallback(f"null at non-null {where}")
        return output(value)

    return non_null_output


def _generated_build(fields: list[tuple[str, str, dict[str, Any]]]) -> Callable[[Any, Run], dict[str, Any]]:
    """One function per object plan that returns the object's answer as one dict display: a call per object
    instead of one per field. Only response keys (GraphQL names, written with repr) and the expressions of
    ``READERS`` go into its text."""
    namespace: dict[str, Any] = {}
    entries = []
    for key, expression, names in fields:
        namespace.update(names)
        entries.append(f"        {key!r}: {expression},")
    text = "def build(source, run):\n    return {\n" + "\n".join(entries) + "\n    }\n"
    exec(compile(text, "<compiled read plan>", "exec"), namespace)
    return namespace["build"]  # type: ignore[no-any-return]


def _leaf_emitter(
    reader: Reader, output: Callable[[Any], Any], non_null: bool, where: str
) -> Callable[[Any, Run], Any]:
    """A leaf whose reader is a function rather than an expression."""
    get = reader.get
    if non_null:

        def leaf_value(source: Any, run: Run) -> Any:
            value = get(source, run)
            if value is None:
                raise Fallback(f"null at non-null {where}")
            return output(value)

        return leaf_value

    def nullable_leaf_value(source: Any, run: Run) -> Any:
        value = get(source, run)
        return None if value is None else output(value)

    return nullable_leaf_value


def _object_emitter(
    get: Get, type_: GraphQLOutputType, plan: ObjectPlan | None, where: str
) -> Callable[[Any, Run], Any] | None:
    """An object, or a list of objects, built in one call per object; None for other shapes."""
    if plan is None:
        return None
    build = plan.build
    non_null = isinstance(type_, GraphQLNonNull)
    bare = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(bare, GraphQLObjectType):

        def object_value(source: Any, run: Run) -> Any:
            value = get(source, run)
            if value is None:
                if non_null:
                    raise Fallback(f"null at non-null {where}")
                return None
            return build(value, run)

        return object_value
    if not isinstance(bare, GraphQLList):
        return None
    item_type = bare.of_type
    items_non_null = isinstance(item_type, GraphQLNonNull)
    if not isinstance(item_type.of_type if items_non_null else item_type, GraphQLObjectType):
        return None

    def objects_value(source: Any, run: Run) -> Any:
        value = get(source, run)
        if value is None:
            if non_null:
                raise Fallback(f"null at non-null {where}")
            return None
        built = [None if item is None else build(item, run) for item in value]
        if items_non_null and None in built:
            raise Fallback(f"null item in {where}")
        return built

    return objects_value


def _emitter(get: Get, complete: Complete) -> Callable[[Any, Run], Any]:
    return lambda source, run: complete(get(source, run), run)


def compile_plan(
    executor: StrawberryGraphQLCoreExecutionContext,
    root_type: GraphQLObjectType,
    grouped_field_set: dict[str, list[FieldDetails]],
) -> Plan:
    roots = []
    for key, details in grouped_field_set.items():
        node = details[0].node
        name = node.name.value
        if any(d.fragment_variable_values is not None or d.defer_usage is not None for d in details):
            raise NotCovered(f"{name}: fragment variables or deferral")
        if name == "__typename":
            roots.append(
                RootField(key, None, details, lambda value: value, lambda _v, _r: root_type.name, None)
            )
            continue
        source_of = ROOTS.get(name)
        if source_of is None:
            raise NotCovered(f"Query.{name}")
        field_def = root_type.fields[name]
        complete, plan, _ = _completion(executor, field_def.type, details, f"Query.{name}")
        roots.append(RootField(key, field_def, details, source_of, complete, plan))
    return Plan(roots)


# --- the cache -------------------------------------------------------------------------------------------


def _directive_variables(document: DocumentNode) -> tuple[str, ...]:
    """Variables that @skip/@include read anywhere in the document: a plan holds for given values of them."""
    names: list[str] = []

    def walk(selection_set: SelectionSetNode | None) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            for directive in selection.directives or ():
                for argument in directive.arguments or ():
                    if isinstance(argument.value, VariableNode):
                        names.append(argument.value.name.value)
            walk(getattr(selection, "selection_set", None))

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            walk(definition.selection_set)
    return tuple(sorted(set(names)))


class PlanCache:
    """Plans, or why there is none, per (document text, operation name, values of its directive variables);
    bounded, least recently used out first."""

    def __init__(self, size: int = PLANS_KEPT) -> None:
        self.size = size
        self._variables: OrderedDict[tuple[str, str | None], tuple[str, ...]] = OrderedDict()
        self._plans: OrderedDict[tuple[Any, ...], Plan | str] = OrderedDict()

    def _remember(self, cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        if len(cache) > self.size:
            cache.popitem(last=False)

    def plan_for(
        self,
        executor: StrawberryGraphQLCoreExecutionContext,
        root_type: GraphQLObjectType,
        grouped_field_set: dict[str, list[FieldDetails]],
    ) -> Plan | str:
        operation = executor.operation
        location = operation.loc
        if location is None:
            return self._compiled(executor, root_type, grouped_field_set)
        operation_key = (location.source.body, operation.name.value if operation.name else None)
        variables = self._variables.get(operation_key)
        if variables is None:
            document = DocumentNode(definitions=(operation, *executor.fragment_definitions.values()))
            variables = _directive_variables(document)
            self._remember(self._variables, operation_key, variables)
        else:
            self._variables.move_to_end(operation_key)
        coerced = executor.variable_values.coerced
        key = (*operation_key, *(coerced.get(v) for v in variables))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._compiled(executor, root_type, grouped_field_set)
            self._remember(self._plans, key, plan)
        else:
            self._plans.move_to_end(key)
        return plan

    @staticmethod
    def _compiled(
        executor: StrawberryGraphQLCoreExecutionContext,
        root_type: GraphQLObjectType,
        grouped_field_set: dict[str, list[FieldDetails]],
    ) -> Plan | str:
        try:
            return compile_plan(executor, root_type, grouped_field_set)
        except NotCovered as reason:
            return f"not covered: {reason}"


# --- the executor ----------------------------------------------------------------------------------------


class PlannedExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's executor, answering queries a plan covers from that plan."""

    plans: PlanCache = PlanCache()

    def execute_collected_root_fields(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: Any,
        serially: bool,
        new_defer_usages: Any,
    ) -> Any:
        standard = super().execute_collected_root_fields
        arguments = (root_type, root_value, grouped_field_set, serially, new_defer_usages)
        reason = self._refusal(serially)
        plan = self.plans.plan_for(self, root_type, grouped_field_set) if reason is None else reason
        if isinstance(plan, str):
            stats.fallbacks[plan] += 1
            return standard(*arguments)
        context = self.context_value

        async def planned() -> Any:
            # The plan loads the children it reads itself, as rows; the root resolvers need not preload them.
            answering = children_loaded_by_plan.set(True)
            try:
                data = await self._run(plan, root_type, root_value, Run(context.loaders))
                failure = None
            except Exception as error:  # anything at all: the standard executor answers, errors included
                failure = error
            finally:
                children_loaded_by_plan.reset(answering)
            if failure is None:
                stats.compiled += 1
                context.answered_by_plan = True
                return data
            reason = f"{type(failure).__name__} while running"
            log.debug("compiled plan fell back: %s", reason, exc_info=failure)
            stats.fallbacks[reason] += 1
            await context.read_again()
            result = standard(*arguments)
            return await result if self.is_awaitable(result) else result

        return planned()

    def _refusal(self, serially: bool) -> str | None:
        if serially or self.operation.operation is not OperationType.QUERY:
            return "not a query"
        if self.middleware_manager is not None and self.middleware_manager.middlewares:
            return "field middleware"
        if not isinstance(self.context_value, Context):
            return "not a request context"
        return None

    async def _run(
        self, plan: Plan, root_type: GraphQLObjectType, root_value: Any, run: Run
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for root in plan.roots:
            if root.field_def is None:
                data[root.key] = root.complete(None, run)
                continue
            data[root.key] = await self._root_value(root, root_type, root_value, run)
        return data

    async def _root_value(
        self, root: RootField, root_type: GraphQLObjectType, root_value: Any, run: Run
    ) -> Any:
        field_def = root.field_def
        assert field_def is not None and field_def.resolve is not None
        nodes: list[FieldNode] = [detail.node for detail in root.details]
        info = self.build_resolve_info(field_def, nodes, root_type, Path(None, root.key, root_type.name))
        first = root.details[0]
        arguments = (
            get_argument_values(
                field_def,
                first.node,
                self.variable_values,
                first.fragment_variable_values,
                self.hide_suggestions,
            )
            if field_def.args or first.node.arguments
            else {}
        )
        result = field_def.resolve(root_value, info, **arguments)
        if self.is_awaitable(result):
            result = await result
        if isinstance(result, GraphQLError | Exception):
            raise Fallback("the resolver returned an error")
        source = root.source_of(result)
        if root.plan is not None and root.plan.needs_loading and source is not None:
            await root.plan.load(_as_list(source), run)
        return root.complete(source, run)


def _as_list(source: Any) -> list[Any]:
    return list(source) if isinstance(source, list) else [source]


def planned_executor() -> type[PlannedExecutor]:
    """An executor class with its own plan cache: plans hold one schema's types, so each schema gets one."""
    return type("PlannedExecutor", (PlannedExecutor,), {"plans": PlanCache()})
