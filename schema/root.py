"""The schema: every subdomain's queries and mutations merged, with limits on what one request may ask."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from config.settings import Settings
from schema.bulk_actions import BulkActionsMutation, BulkActionsQuery
from schema.cancellations import CancellationsMutation, CancellationsQuery
from schema.cost import CostBuckets
from schema.disputes import DisputesMutation, DisputesQuery
from schema.exports import ExportsMutation, ExportsQuery
from schema.extensions import (
    Guard,
    MaskUnexpectedErrors,
    RequestGuard,
    ValidationByText,
)
from schema.input_paths import InputPathsInErrors
from schema.jobs import JobsMutation, JobsQuery
from schema.kept import Kept
from schema.notes import NotesMutation
from schema.orders import OrdersMutation, OrdersQuery
from schema.plan import planned_executor
from schema.policies import PoliciesMutation, PoliciesQuery
from schema.refunds import RefundsMutation
from schema.returns import ReturnsMutation, ReturnsQuery
from schema.saved_searches import SavedSearchesMutation, SavedSearchesQuery
from schema.scalars import SCALARS
from schema.shops import ShopsQuery
from schema.subscriptions import LiveSubscription, SubscriptionsOverWebSocket
from schema.types import NODE_TYPES
from schema.viewer import ViewerQuery
from schema.webhooks import WebhooksMutation, WebhooksQuery

Query = merge_types(
    "Query",
    (
        ShopsQuery,
        ViewerQuery,
        OrdersQuery,
        CancellationsQuery,
        DisputesQuery,
        JobsQuery,
        ExportsQuery,
        ReturnsQuery,
        PoliciesQuery,
        WebhooksQuery,
        SavedSearchesQuery,
        BulkActionsQuery,
    ),
)
# Distinct documents whose parse and validation are kept: clients send a few dozen fixed queries.
PARSED_DOCUMENTS_KEPT = 256

Subscription = merge_types("Subscription", (LiveSubscription,))
Mutation = merge_types(
    "Mutation",
    (
        OrdersMutation,
        CancellationsMutation,
        DisputesMutation,
        JobsMutation,
        ExportsMutation,
        ReturnsMutation,
        RefundsMutation,
        PoliciesMutation,
        WebhooksMutation,
        SavedSearchesMutation,
        BulkActionsMutation,
        NotesMutation,
    ),
)


class DropdeskSchema(strawberry.Schema):
    """The schema with the guard its operations share (schema/known_reads.py answers through it too)."""

    guard: Guard


def build_schema(settings: Settings, buckets: CostBuckets | None = None) -> DropdeskSchema:
    # One bucket store per schema, so per app: each API process keeps its own budgets.
    guard = Guard(settings, buckets or CostBuckets(settings.cost_bucket_size, settings.cost_restore_rate))
    validated: Kept[str, list[GraphQLError]] = Kept(PARSED_DOCUMENTS_KEPT)
    # The limiters' rules are built once: the validation cache keys on the rule classes, and a limiter made per
    # request would bring a new class each time (no hit, and an entry per request).
    limits = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    schema = DropdeskSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=list(NODE_TYPES.values()),
        extensions=[
            lambda: AddValidationRules(limits),
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            lambda: RequestGuard(guard),
            # After the guard, whose size and token checks come before any parsing; bounded, since every
            # distinct document text would otherwise stay in memory.
            lambda: ParserCache(maxsize=PARSED_DOCUMENTS_KEPT),
            lambda: ValidationByText(validated),
            MaskUnexpectedErrors,
            InputPathsInErrors,
            SubscriptionsOverWebSocket,
        ],
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS),
        execution_context_class=planned_executor() if settings.compiled_reads else None,
    )
    schema.guard = guard
    return schema
