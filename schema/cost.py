"""Query cost, computed from the document before anything runs, and a leaky bucket of cost per token.

The rules, in the style of Shopify's: a scalar or enum costs nothing; every object costs 1; a connection
(``orders(first: 250)``) costs 1 plus its page size (``first`` or ``last``, else the default page size) times
the cost of one node; a list that is not a connection counts its item once, since its size is bounded by the
data rather than asked for; a mutation field costs 10 plus what its payload selects. The actual cost is the
same sum taken over the result, with the number of nodes each connection really returned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)

OBJECT_COST = 1
MUTATION_COST = 10
PAGE_ARGUMENTS = ("first", "last")
CONNECTION_ITEMS = ("edges", "nodes")


def _is_connection(named: GraphQLNamedType) -> bool:
    return named.name.endswith("Connection") and isinstance(named, GraphQLObjectType)


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


class CostCalculator:
    """Walks one operation's selections against the schema; fragments are expanded where they are spread."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any] | None,
        default_page_size: int,
    ) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.default_page_size = default_page_size
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }

    # --- requested -------------------------------------------------------------------------------

    def requested(self, operation: OperationDefinitionNode) -> int:
        root = self._root_type(operation)
        if root is None:
            return 0
        per_field = MUTATION_COST if operation.operation is OperationType.MUTATION else 0
        return sum(
            per_field + self._field_cost(field, definition)
            for field, definition in self._fields(operation.selection_set, root)
        )

    def _field_cost(self, field: FieldNode, definition: GraphQLField) -> int:
        named = get_named_type(definition.type)
        if not is_composite_type(named) or field.selection_set is None:
            return 0
        if _is_connection(named):
            size = self._page_size(field)
            total = OBJECT_COST
            for child, child_definition in self._fields(field.selection_set, named):
                cost = self._field_cost(child, child_definition)
                if child.name.value == "edges":
                    cost -= OBJECT_COST  # the edge wraps the node, which is the object counted
                total += size * cost if child.name.value in CONNECTION_ITEMS else cost
            return total
        return OBJECT_COST + sum(
            self._field_cost(child, child_definition)
            for child, child_definition in self._fields(field.selection_set, named)
        )

    def _page_size(self, field: FieldNode) -> int:
        for argument in field.arguments or ():
            if argument.name.value not in PAGE_ARGUMENTS:
                continue
            value: Any = None
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
            if isinstance(value, int) and not isinstance(value, bool):
                return max(value, 0)
        return self.default_page_size

    # --- actual ----------------------------------------------------------------------------------

    def actual(self, operation: OperationDefinitionNode, data: Mapping[str, Any] | None) -> int:
        root = self._root_type(operation)
        if root is None or not data:
            return 0
        per_field = MUTATION_COST if operation.operation is OperationType.MUTATION else 0
        total = 0
        for field, definition in self._fields(operation.selection_set, root):
            key = field.alias.value if field.alias else field.name.value
            if key in data:
                total += per_field + self._actual_cost(field, definition, data[key])
        return total

    def _actual_cost(self, field: FieldNode, definition: GraphQLField, value: Any) -> int:
        named = get_named_type(definition.type)
        if value is None or not is_composite_type(named) or field.selection_set is None:
            return 0
        if isinstance(value, list):
            # Inside a connection every item counts; elsewhere a list counts once, as it was requested.
            items = value if self._in_connection else value[:1]
            return sum(self._actual_object(field, named, item) for item in items)
        return self._actual_object(field, named, value)

    _in_connection = False

    def _actual_object(self, field: FieldNode, named: GraphQLNamedType, value: Any) -> int:
        if not isinstance(value, Mapping) or field.selection_set is None:
            return 0
        total = 0 if self._in_connection and field.name.value == "edges" else OBJECT_COST
        connection = _is_connection(named)
        for child, child_definition in self._fields(field.selection_set, named, value):
            key = child.alias.value if child.alias else child.name.value
            if key not in value:
                continue
            outer = self._in_connection
            self._in_connection = connection and child.name.value in CONNECTION_ITEMS
            try:
                total += self._actual_cost(child, child_definition, value[key])
            finally:
                self._in_connection = outer
        return total

    # --- selections ------------------------------------------------------------------------------

    def _root_type(self, operation: OperationDefinitionNode) -> GraphQLObjectType | None:
        return self.schema.get_root_type(operation.operation)

    def _fields(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        value: Mapping[str, Any] | None = None,
        seen: frozenset[str] = frozenset(),
    ) -> Iterable[tuple[FieldNode, GraphQLField]]:
        """The fields selected on ``parent``, fragments expanded; unknown fields (never valid) are skipped."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = self._definition(parent, selection.name.value)
                if definition is not None:
                    yield selection, definition
            elif isinstance(selection, InlineFragmentNode):
                target = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                if target is not None and self._applies(target, value):
                    yield from self._fields(selection.selection_set, target, value, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value)
                if target is not None and self._applies(target, value):
                    yield from self._fields(fragment.selection_set, target, value, seen | {name})

    @staticmethod
    def _applies(target: GraphQLNamedType, value: Mapping[str, Any] | None) -> bool:
        # Over a result, a fragment on another concrete type selected nothing; the document counts them all.
        if value is None or not isinstance(target, GraphQLObjectType):
            return True
        typename = value.get("__typename")
        return typename is None or typename == target.name

    @staticmethod
    def _definition(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        fields = getattr(parent, "fields", None)
        return fields.get(name) if fields else None


# --- throttling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleStatus:
    maximum_available: int
    currently_available: int
    restore_rate: int

    def as_json(self) -> dict[str, int]:
        return {
            "maximumAvailable": self.maximum_available,
            "currentlyAvailable": self.currently_available,
            "restoreRate": self.restore_rate,
        }


class CostBuckets:
    """A leaky bucket of cost points per token, kept in this process.

    A request takes its requested cost up front (so that concurrent requests cannot overdraw together) and
    gets back what it did not use once it has run. Each API process keeps its own buckets.
    """

    def __init__(self, size: int, restore_rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.restore_rate = restore_rate
        self.clock = clock
        self._levels: dict[Any, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _available(self, key: Any, now: float) -> float:
        level, at = self._levels.get(key, (float(self.size), now))
        return min(float(self.size), level + (now - at) * self.restore_rate)

    def take(self, key: Any, cost: int) -> float | None:
        """Take ``cost`` points; None when taken, else the seconds to wait until there are enough."""
        with self._lock:
            now = self.clock()
            available = self._available(key, now)
            if cost > available:
                self._levels[key] = (available, now)
                return (cost - available) / self.restore_rate if self.restore_rate > 0 else float("inf")
            self._levels[key] = (available - cost, now)
            if len(self._levels) > 100_000:
                self._forget_full(now)
            return None

    def give_back(self, key: Any, points: int) -> None:
        if points <= 0:
            return
        with self._lock:
            now = self.clock()
            self._levels[key] = (min(float(self.size), self._available(key, now) + points), now)

    def status(self, key: Any) -> ThrottleStatus:
        with self._lock:
            available = self._available(key, self.clock())
        return ThrottleStatus(self.size, int(available), self.restore_rate)

    def _forget_full(self, now: float) -> None:
        # A full bucket holds nothing worth keeping.
        for key in [key for key in self._levels if self._available(key, now) >= self.size]:
            del self._levels[key]
