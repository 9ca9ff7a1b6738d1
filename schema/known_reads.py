"""Known reads: a query document a compiled plan answered before, answered again without the HTTP view and
the extension runner around it.

A document whose last answer came wholly from a compiled plan, without errors, has passed every check that
depends only on its text (size, tokens, depth, aliases, validation), and it is kept parsed with its operation
(``Guard.known_reads``, filled by the guard). The next request with that text runs straight on the planned
executor, after the checks that depend on the request, done by the same ``Guard`` as usual: the variables'
size and stored text, the requested cost against the maximum, the token's budget. The answer carries the
same ``cost`` extension. Anything else (a refusal, a plan that falls back, any error) is left to the standard
way, which answers, refuses and reports errors as it always does; what this attempt took from the budget is
given back first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import execute
from strawberry.execution import optimized_is_awaitable

from schema.context import Context
from schema.extensions import Charge, Guard, outcome_of
from schema.plan import stats


async def answer_known_read(
    schema: Any,
    guard: Guard,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context_of_request: Callable[[], Context],
) -> dict[str, Any] | None:
    """The answer to a known read, or None when the standard way is to answer (the request's context is made
    only for a known read)."""
    known = guard.known_reads.get((query, operation_name))
    executor_class = schema.execution_context_class
    if known is None or executor_class is None:
        return None
    context = context_of_request()
    document, operation = known
    graphql_schema = schema._schema
    outcome = outcome_of(context)
    charge = Charge()
    refused = guard.refusal(
        graphql_schema, document, operation, query, operation_name, variables, context.actor, outcome, charge
    )
    if refused is not None:
        return None
    result: Any = execute(
        graphql_schema,
        document,
        context_value=context,
        variable_values=variables,
        operation_name=operation_name,
        is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
        executor_class=executor_class,
        operation_extensions=None,
    )
    if optimized_is_awaitable(result):
        result = await result
    if result.errors or not context.answered_by_plan:
        guard.settle(charge, 0)
        context.answered_by_plan = False
        await context.read_again()
        return None
    actual = guard.walker(graphql_schema, query, document).actual(operation, result.data)
    guard.settle(charge, actual)
    stats.known_reads += 1
    if outcome is not None:
        # Named as the standard way names it: a lone operation by its own name when the request gives none.
        outcome.operation_name = operation_name or (operation.name.value if operation.name else None)
        outcome.operation_type = operation.operation.value
        outcome.executed = True
    return {"data": result.data, "extensions": {"cost": guard.report(charge, actual, context.actor)}}
