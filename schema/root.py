"""The schema: every subdomain's queries and mutations merged, with limits on what one request may ask."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from config.settings import Settings
from schema.bulk_actions import BulkActionsMutation, BulkActionsQuery
from schema.cancellations import CancellationsMutation, CancellationsQuery
from schema.exports import ExportsMutation, ExportsQuery
from schema.extensions import MaskUnexpectedErrors
from schema.jobs import JobsMutation, JobsQuery
from schema.notes import NotesMutation
from schema.orders import OrdersMutation, OrdersQuery
from schema.saved_searches import SavedSearchesMutation, SavedSearchesQuery
from schema.shops import ShopsQuery
from schema.types import NODE_TYPES

Query = merge_types(
    "Query",
    (
        ShopsQuery,
        OrdersQuery,
        CancellationsQuery,
        JobsQuery,
        ExportsQuery,
        SavedSearchesQuery,
        BulkActionsQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        OrdersMutation,
        CancellationsMutation,
        JobsMutation,
        ExportsMutation,
        SavedSearchesMutation,
        BulkActionsMutation,
        NotesMutation,
    ),
)


def build_schema(settings: Settings) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=list(NODE_TYPES.values()),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
            lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            MaskUnexpectedErrors,
        ],
        config=StrawberryConfig(auto_camel_case=True),
    )
