"""Schema extensions: unexpected errors are masked and carry the request id that the log line carries."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from config.logs import current_request_id

log = logging.getLogger("dropdesk.graphql")


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
        result.errors = masked
