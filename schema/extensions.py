"""Schema extensions: the guards every operation passes before it runs, whatever the transport (HTTP, multipart,
WebSocket), and unexpected errors masked with the request id that the log line carries.

Each hook here runs once per operation; none is a per-field ``resolve`` hook, which would slow every field.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Source,
    StringValueNode,
    TokenKind,
    ValueNode,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.language.lexer import Lexer
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from config.logs import current_request_id
from config.settings import Settings
from domain.text import find_unstorable, unstorable_reason
from schema.cost import CostBuckets, CostCalculator
from schema.kept import Kept
from schema.pagination import DEFAULT_PAGE_SIZE

log = logging.getLogger("dropdesk.graphql")

BAD_USER_INPUT = "BAD_USER_INPUT"
THROTTLED = "THROTTLED"
MAX_COST_EXCEEDED = "MAX_COST_EXCEEDED"
QUERY_TOO_LARGE = "QUERY_TOO_LARGE"


@dataclass
class Outcome:
    """What the edge needs to know about one GraphQL request once it has run (logs, metrics, HTTP status)."""

    operation_name: str | None = None
    operation_type: str | None = None
    # False when the operation was refused before execution (parse, validation, input, cost, throttling).
    executed: bool = False
    retry_after: float | None = None
    error_codes: list[str] = field(default_factory=list)


def outcome_of(context: Any) -> Outcome | None:
    """The Outcome kept on the request's ASGI scope (None for a context without a request, as in tests)."""
    request = getattr(context, "request", None)
    scope = getattr(request, "scope", None)
    if scope is None:
        return None
    state = scope.setdefault("state", {})
    outcome = state.get("graphql_outcome")
    if outcome is None:
        outcome = state["graphql_outcome"] = Outcome()
    return outcome  # type: ignore[no-any-return]


def is_expected(error: GraphQLError) -> bool:
    """Errors we raise on purpose (and syntax or validation errors) keep their message and code."""
    original = error.original_error
    return original is None or isinstance(original, GraphQLError)


class MaskUnexpectedErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = current_request_id()
        masked = []
        for error in result.errors:
            if is_expected(error):
                masked.append(error)
                continue
            log.error(
                "unexpected error in %s",
                ".".join(str(part) for part in error.path or ()) or "operation",
                exc_info=error.original_error,
            )
            masked.append(
                GraphQLError(
                    f"Internal server error (request id {request_id})",
                    nodes=error.nodes,
                    path=error.path,
                    extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                )
            )
        outcome = outcome_of(self.execution_context.context)
        executed = outcome is not None and outcome.executed
        for error in masked:
            if not (error.extensions or {}).get("code"):
                error.extensions = {**(error.extensions or {}), "code": _code_of(error, executed)}
        result.errors = masked
        if outcome is not None:
            outcome.error_codes = [str((error.extensions or {})["code"]) for error in masked]


def _code_of(error: GraphQLError, executed: bool) -> str:
    """A code for errors graphql-core raises without one, as other GraphQL servers name them."""
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$") and (
        "invalid value" in error.message or "was not provided" in error.message
    ):
        return "BAD_USER_INPUT"  # a value that does not coerce, not a document that does not validate
    if not executed:
        return "GRAPHQL_VALIDATION_FAILED" if error.path is None else "BAD_USER_INPUT"
    return "BAD_USER_INPUT" if error.path is None else "GRAPHQL_ERROR"


# Query documents kept as known reads (answered by a plan), and so on: clients send a few dozen fixed queries.
PLANNED_DOCUMENTS_KEPT = 256


# --- document limits, before parsing ---------------------------------------------------------------------


# Clients send the same few documents again and again; lexing one costs as much as resolving a small page.
@lru_cache(maxsize=256)
def count_tokens(document: str, limit: int) -> int:
    """Tokens in a document, comments included; stops counting once past ``limit``."""
    lexer = Lexer(Source(document))
    count = 0
    token = lexer.token
    while token.kind is not TokenKind.EOF:
        following = lexer.advance()
        between = token.next
        while between is not None and between is not following:
            count += 1  # comments, which the parser skips but which still cost lexing
            between = between.next
        if following.kind is not TokenKind.EOF:
            count += 1
        if count > limit:
            return count
        token = following
    return count


# --- text that cannot be stored, named by its path ---------------------------------------------------------


def _literal_problem(value: ValueNode, path: list[str | int]) -> tuple[list[str | int], str] | None:
    if isinstance(value, StringValueNode):
        reason = unstorable_reason(value.value)
        return (path, reason) if reason else None
    if isinstance(value, ListValueNode):
        for index, item in enumerate(value.values):
            if found := _literal_problem(item, [*path, index]):
                return found
    if isinstance(value, ObjectValueNode):
        for object_field in value.fields:
            if found := _literal_problem(object_field.value, [*path, object_field.name.value]):
                return found
    return None


def _selection_problem(
    selection_set: SelectionSetNode | None, path: list[str | int], document: DocumentNode
) -> tuple[list[str | int], str] | None:
    if selection_set is None:
        return None
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            arguments: tuple[ArgumentNode, ...] = tuple(selection.arguments or ())
            for argument in arguments:
                if found := _literal_problem(argument.value, [*path, key, argument.name.value]):
                    return found
            if found := _selection_problem(selection.selection_set, [*path, key], document):
                return found
        elif isinstance(selection, InlineFragmentNode) and (
            found := _selection_problem(selection.selection_set, path, document)
        ):
            return found
    return None


def unstorable_text_error(
    document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any] | None
) -> GraphQLError | None:
    """A BAD_USER_INPUT error naming the first variable or literal with NUL or lone surrogates, or None."""
    if variables:
        problem = find_unstorable(variables)
        if problem is not None:
            return GraphQLError(
                f"${problem.message}" if problem.path else problem.message,
                extensions={"code": BAD_USER_INPUT, "field": [str(part) for part in problem.path]},
            )
    found = _selection_problem(operation.selection_set, [], document)
    if found is None:
        for definition in document.definitions:
            # Fragments carry arguments too; their fields are named from the fragment.
            selection_set = getattr(definition, "selection_set", None)
            if definition is not operation and selection_set is not None:
                found = _selection_problem(selection_set, [], document)
                if found:
                    break
    if found is None:
        return None
    path, reason = found
    dotted = ""
    for part in path:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    return GraphQLError(
        f"{dotted} {reason}", extensions={"code": BAD_USER_INPUT, "field": [str(part) for part in path]}
    )


def selected_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


# --- the guard ---------------------------------------------------------------------------------------------


# The requested cost of documents that passed the stored-text check, by (document text, operation name,
# variables as JSON): both depend on nothing else.
RequestedCosts = Kept[tuple[str, str | None, str], int]

# Per document text, the calculator that counts the actual cost of its answers, with its document.
ResultWalkers = Kept[str, tuple[DocumentNode, CostCalculator]]

# Query documents whose last answer came wholly from a compiled plan, without errors, by (text, operation
# name): their parsed document and operation (see schema/known_reads.py).
KnownReads = Kept[tuple[str, str | None], tuple[DocumentNode, OperationDefinitionNode]]


@dataclass
class Charge:
    """What one operation is charged: its requested cost, taken from the budget of ``bucket_key``."""

    requested: int = 0
    bucket_key: Any = None
    taken: int = 0


class Guard:
    """The checks each operation passes before it runs and the cost it is charged, shared by every operation
    of one schema (the budgets, and what is kept per document)."""

    def __init__(self, settings: Settings, buckets: CostBuckets) -> None:
        self.settings = settings
        self.buckets = buckets
        self.costs = RequestedCosts()
        self.walkers = ResultWalkers()
        self.known_reads = KnownReads(PLANNED_DOCUMENTS_KEPT)

    def refusal(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        query: str | None,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        actor: Any,
        outcome: Outcome | None,
        charge: Charge,
    ) -> GraphQLError | None:
        """Why the operation may not run (variables too large or not storable, too costly, out of budget), or
        None, with its cost then taken from the token's budget into ``charge``."""
        variables_json: str | None = ""
        if variables:
            try:
                variables_json = json.dumps(variables)
            except (TypeError, ValueError):  # uploads, or objects given in-process: checked, not kept
                variables_json = None
            size = len(variables_json if variables_json is not None else json.dumps(variables, default=str))
            if size > self.settings.max_variables_bytes:
                return GraphQLError(
                    f"the variables are larger than {self.settings.max_variables_bytes} bytes",
                    extensions={"code": QUERY_TOO_LARGE},
                )
        key = (
            (query, operation_name, variables_json)
            if query is not None and variables_json is not None
            else None
        )
        requested = self.costs.get(key) if key is not None else None
        if requested is None:
            bad_text = unstorable_text_error(document, operation, variables)
            if bad_text is not None:
                return bad_text
            calculator = CostCalculator(schema, document, variables, DEFAULT_PAGE_SIZE)
            requested = calculator.requested(operation)
            if key is not None:
                self.costs.put(key, requested)
        charge.requested = requested
        if requested > self.settings.max_query_cost:
            return GraphQLError(
                f"the query costs {requested}, more than the maximum of {self.settings.max_query_cost}; "
                "ask for smaller pages (first/last) or fewer fields",
                extensions={
                    "code": MAX_COST_EXCEEDED,
                    "cost": requested,
                    "maxCost": self.settings.max_query_cost,
                },
            )
        bucket_key = _bucket_key(actor)
        if bucket_key is None:
            return None
        wait = self.buckets.take(bucket_key, requested)
        if wait is not None:
            seconds = math.ceil(wait * 10) / 10
            if outcome is not None:
                outcome.retry_after = seconds
            return GraphQLError(
                f"throttled: this query costs {requested} and the token has less available; "
                f"retry in {seconds} seconds",
                extensions={"code": THROTTLED, "retryAfterSeconds": seconds},
            )
        charge.bucket_key, charge.taken = bucket_key, requested
        return None

    def walker(self, schema: GraphQLSchema, query: str | None, document: DocumentNode) -> CostCalculator:
        """The calculator that walks this document's answers, kept with the document (the parser's cache hands
        out the same one for the same text): it plans the walk once."""
        kept = self.walkers.get(query) if query is not None else None
        if kept is not None and kept[0] is document:
            return kept[1]
        # The actual cost counts what the answer holds: variables play no part.
        calculator = CostCalculator(schema, document, None, DEFAULT_PAGE_SIZE)
        if query is not None:
            self.walkers.put(query, (document, calculator))
        return calculator

    def settle(self, charge: Charge, actual: int) -> None:
        """Give back to the budget what was taken beyond the answer's actual cost."""
        if charge.bucket_key is not None:
            self.buckets.give_back(charge.bucket_key, charge.taken - actual)

    def report(self, charge: Charge, actual: int, actor: Any) -> dict[str, Any]:
        """The ``cost`` extension of an answer."""
        key = charge.bucket_key or _bucket_key(actor)
        status = self.buckets.status(key if key is not None else object())  # nobody to charge: a full bucket
        return {
            "requestedQueryCost": charge.requested,
            "actualQueryCost": actual,
            "throttleStatus": status.as_json(),
        }


def _bucket_key(actor: Any) -> Any:
    return getattr(actor, "token_id", None) or getattr(actor, "name", None)


class ValidationByText(SchemaExtension):
    """Validation errors kept by document text: one schema's rules give the same answer for the same text.
    strawberry's ValidationCache keys on the parsed document, whose hash walks the whole tree every time."""

    def __init__(self, kept: Kept[str, list[GraphQLError]]) -> None:
        self.kept = kept

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        errors = self.kept.get(text) if text is not None else None
        if errors is None:
            assert context.graphql_document is not None
            errors = validate_document(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
            if text is not None:
                self.kept.put(text, errors)
        context.pre_execution_errors = errors
        yield


class RequestGuard(SchemaExtension):
    """Document size and tokens before parsing; stored text, cost and the token's budget before execution;
    ``extensions.cost`` on every answer."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.charge = Charge()
        self.actual = 0

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query or ""
        settings = self.guard.settings
        limit = settings.max_query_bytes
        if len(query) > limit or len(query.encode("utf-8", "surrogatepass")) > limit:
            raise GraphQLError(
                f"the query document is larger than {limit} bytes", extensions={"code": QUERY_TOO_LARGE}
            )
        max_tokens = settings.max_query_tokens
        if count_tokens(query, max_tokens) > max_tokens:
            raise GraphQLError(
                f"the query document has more than {max_tokens} tokens (comments count)",
                extensions={"code": QUERY_TOO_LARGE},
            )
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        outcome = outcome_of(context.context)
        document = context.graphql_document
        operation = selected_operation(document, context.operation_name) if document else None
        if outcome is not None and operation is not None:
            outcome.operation_name = context.operation_name
            outcome.operation_type = operation.operation.value
        if document is None or operation is None:
            yield
            return
        schema = context.schema._schema
        actor = getattr(context.context, "actor", None)
        error = self.guard.refusal(
            schema,
            document,
            operation,
            context.query,
            context.operation_name,
            context.variables,
            actor,
            outcome,
            self.charge,
        )
        if error is not None and operation.operation is OperationType.SUBSCRIPTION:
            # A subscription starts whatever result is set here; an error raised from this hook stops it.
            raise error
        if error is not None:
            context.result = GraphQLExecutionResult(data=None, errors=[error])
            yield
            return
        if operation.operation is OperationType.SUBSCRIPTION:
            # Its events come after this hook; the requested cost is charged once, when it starts.
            self.actual = self.charge.requested
            if outcome is not None:
                outcome.executed = True
            yield
            return
        yield
        result = context.result
        data = getattr(result, "data", None)
        errors = getattr(result, "errors", None) or []
        if outcome is not None:
            # Variables that do not coerce fail inside execution, with no data and errors without a path:
            # that is a request error too.
            outcome.executed = data is not None or any(error.path for error in errors) or not errors
        self.actual = self.guard.walker(schema, context.query, document).actual(operation, data)
        self.guard.settle(self.charge, self.actual)
        if not errors and context.query is not None and getattr(context.context, "answered_by_plan", False):
            # Kept by the operation name as the request gives it (strawberry names a lone operation itself).
            requested_name = context._provided_operation_name
            self.guard.known_reads.put((context.query, requested_name), (document, operation))

    def get_results(self) -> dict[str, Any]:
        actor = getattr(self.execution_context.context, "actor", None)
        return {"cost": self.guard.report(self.charge, self.actual, actor)}
