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


@dataclass(frozen=True)
class _Selected:
    """A composite field of a selection, as the walk over a result needs it."""

    key: str
    name: str
    named: GraphQLNamedType
    selection_set: SelectionSetNode
    condition: str | None
    connection_items: bool


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
        self._expanded: dict[tuple[int, str], list[tuple[FieldNode, GraphQLField, str | None]]] = {}
        self._plans: dict[tuple[int, str], list[_Selected]] = {}
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
        roots = sum(
            per_field
            for field, _ in self._fields(operation.selection_set, root)
            if (field.alias.value if field.alias else field.name.value) in data
        )
        return roots + self._walk(self._plan(operation.selection_set, root), data)

    def _walk(self, plan: list[_Selected], value: Mapping[str, Any]) -> int:
        """Objects in a result, by a plan of its composite fields: one pass, no scalar looked at."""
        total = 0
        typename = value.get("__typename")
        for selected in plan:
            if selected.condition is not None and typename is not None and selected.condition != typename:
                continue
            child = value.get(selected.key)
            if child is None:
                continue
            if isinstance(child, list):
                # Inside a connection every item counts; elsewhere a list counts once, as it was requested.
                items = child if selected.connection_items else child[:1]
            else:
                items = [child]
            own = 0 if selected.connection_items and selected.name == "edges" else OBJECT_COST
            children = self._plan(selected.selection_set, selected.named)
            for item in items:
                if isinstance(item, Mapping):
                    total += own + (self._walk(children, item) if children else 0)
        return total

    def _plan(self, selection_set: SelectionSetNode, parent: GraphQLNamedType) -> list[_Selected]:
        cache_key = (id(selection_set), parent.name)
        plan = self._plans.get(cache_key)
        if plan is None:
            connection = _is_connection(parent)
            plan = self._plans[cache_key] = [
                _Selected(
                    key=field.alias.value if field.alias else field.name.value,
                    name=field.name.value,
                    named=named,
                    selection_set=field.selection_set,
                    condition=condition,
                    connection_items=connection and field.name.value in CONNECTION_ITEMS,
                )
                for field, definition, condition in self._expanded_fields(selection_set, parent)
                if field.selection_set is not None
                and is_composite_type(named := get_named_type(definition.type))
            ]
        return plan

    # --- selections ------------------------------------------------------------------------------

    def _root_type(self, operation: OperationDefinitionNode) -> GraphQLObjectType | None:
        return self.schema.get_root_type(operation.operation)

    def _fields(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType
    ) -> Iterable[tuple[FieldNode, GraphQLField]]:
        """The fields selected on ``parent``, fragments expanded (all of them: the document's upper bound)."""
        return [(field, definition) for field, definition, _ in self._expanded_fields(selection_set, parent)]

    def _expanded_fields(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType
    ) -> list[tuple[FieldNode, GraphQLField, str | None]]:
        cache_key = (id(selection_set), parent.name)
        expanded = self._expanded.get(cache_key)
        if expanded is None:
            expanded = self._expanded[cache_key] = list(
                self._expand(selection_set, parent, None, frozenset())
            )
        return expanded

    def _expand(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        condition: str | None,
        seen: frozenset[str],
    ) -> Iterable[tuple[FieldNode, GraphQLField, str | None]]:
        """(field, its definition, the concrete type a fragment limits it to, or None); unknown fields, never
        valid, are skipped."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = self._definition(parent, selection.name.value)
                if definition is not None:
                    yield selection, definition, condition
                continue
            if isinstance(selection, InlineFragmentNode):
                name = selection.type_condition.name.value if selection.type_condition else None
                fragment_selections = selection.selection_set
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None or selection.name.value in seen:
                    continue
                seen = seen | {selection.name.value}
                name = fragment.type_condition.name.value
                fragment_selections = fragment.selection_set
            else:
                continue
            target = self.schema.get_type(name) if name else parent
            if target is None:
                continue
            concrete = target.name if isinstance(target, GraphQLObjectType) and name else condition
            yield from self._expand(fragment_selections, target, concrete, seen)

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
