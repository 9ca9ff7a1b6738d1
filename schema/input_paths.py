"""Literal values a scalar cannot parse are reported with their path inside the argument.

graphql-core's own rule knows the path (``input.orders[0].lines[1].unitPrice``) but drops it, so a bad
Decimal deep in an import reads "Value cannot represent a Decimal" with nothing saying where. This rule
replaces it and keeps the path, in the message and as ``extensions.field`` (the shape of ``userErrors``).
Values passed as variables already carry their path in graphql-core's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import ArgumentNode, GraphQLError, GraphQLInputType, ValueNode
from graphql.language import SKIP, VisitorAction
from graphql.utilities.validate_input_value import validate_input_literal
from graphql.validation import ValuesOfCorrectTypeRule
from strawberry.extensions import SchemaExtension


def _dotted(field: list[str | int]) -> str:
    text = ""
    for part in field:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class ValuesOfCorrectTypeWithPath(ValuesOfCorrectTypeRule):
    _argument: str | None = None

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self._argument = node.name.value

    def leave_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self._argument = None

    def is_valid_value_node(self, node: ValueNode, input_type: GraphQLInputType | None) -> VisitorAction:
        if input_type:
            argument = self._argument

            def on_error(error: GraphQLError, path: list[str | int]) -> None:
                field: list[str | int] = [argument, *path] if argument else list(path)
                if not field:
                    self.report_error(error)
                    return
                self.report_error(
                    GraphQLError(
                        f"{error.message.rstrip('.')} (at {_dotted(field)})",
                        error.nodes or node,
                        extensions={"code": "BAD_USER_INPUT", "field": [str(part) for part in field]},
                    )
                )

            validate_input_literal(node, input_type, on_error, None, None, self.context.hide_suggestions)
        return SKIP


class InputPathsInErrors(SchemaExtension):
    """Swaps graphql-core's value rule for the one above, for every operation."""

    def on_operation(self) -> Iterator[None]:
        rules = self.execution_context.validation_rules
        self.execution_context.validation_rules = tuple(
            ValuesOfCorrectTypeWithPath if rule is ValuesOfCorrectTypeRule else rule for rule in rules
        )
        yield
