"""Outbound webhook subscriptions and deliveries, and the rendering of a delivery's body from this schema.

A body's ``data`` is the changed object exactly as the API shows it: a ``node(id:)`` query whose selection
is generated from the object's GraphQL type (its scalar, enum and Money fields, flat objects such as the
customer, and the ids of the objects it points to), run as the shop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

import strawberry
from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
    is_required_argument,
)
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from config.settings import Settings
from db import models
from db.engine import Database
from db.models import ActorKind
from domain import webhooks as webhook_cases
from domain.access import visible
from domain.actors import Actor, Scope
from domain.errors import ErrorCode
from schema.context import Context, context_of, require_scope
from schema.errors import UserError, run_on_id, run_use_case, user_error
from schema.ids import id_argument, to_global_id
from schema.pagination import After, Connection, First, PageRequest, int_sort, keyset_page
from schema.types import Node

log = logging.getLogger("dropdesk.webhooks")

WebhookDeliveryStatus = strawberry.enum(models.DeliveryStatus, name="WebhookDeliveryStatus")


@strawberry.type(
    description="A URL of the shop's that receives signed POSTs when objects of its topics change."
)
class WebhookSubscription(Node):
    model: strawberry.Private[models.WebhookSubscription]
    url: str
    topics: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = strawberry.field(
        description="Why deliveries stopped: a 410 answer, five days of failures, or the merchant."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, model: models.WebhookSubscription) -> WebhookSubscription:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("WebhookSubscription", model.id)),
            url=model.url,
            topics=list(model.topics),
            description=model.description,
            enabled=model.enabled,
            disabled_reason=model.disabled_reason,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )


@strawberry.type(description="One try at sending a delivery.")
class WebhookDeliveryAttempt:
    number: int
    status_code: int | None
    duration_ms: int
    response_body: str | None = strawberry.field(description="The first 1 KiB of the answer.")
    error: str | None
    succeeded: bool
    created_at: datetime

    @classmethod
    def of(cls, model: models.WebhookAttempt) -> WebhookDeliveryAttempt:
        return cls(
            number=model.number,
            status_code=model.status_code,
            duration_ms=model.duration_ms,
            response_body=model.response_body,
            error=model.error,
            succeeded=model.succeeded,
            created_at=model.created_at,
        )


@strawberry.type(description="An event for one subscription, with every attempt to send it.")
class WebhookDelivery(Node):
    model: strawberry.Private[models.WebhookDelivery]
    webhook_id: str = strawberry.field(description="The webhook-id header: the same on every attempt.")
    topic: str
    status: WebhookDeliveryStatus  # type: ignore[valid-type]
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    subscription: WebhookSubscription | None
    attempts: list[WebhookDeliveryAttempt]
    payload: JSON | None = strawberry.field(description="The body sent; null until the first attempt.")

    @classmethod
    def of(
        cls,
        model: models.WebhookDelivery,
        subscription: models.WebhookSubscription | None,
        attempts: Sequence[models.WebhookAttempt],
        body: str | None,
    ) -> WebhookDelivery:
        return cls(
            model=model,
            id=strawberry.ID(to_global_id("WebhookDelivery", model.id)),
            webhook_id=model.message_id,
            topic=model.topic,
            status=model.status,
            attempt_count=model.attempts,
            next_attempt_at=model.next_attempt_at,
            last_status_code=model.last_status_code,
            last_error=model.last_error,
            delivered_at=model.delivered_at,
            created_at=model.created_at,
            subscription=WebhookSubscription.of(subscription) if subscription else None,
            attempts=[WebhookDeliveryAttempt.of(attempt) for attempt in attempts],
            payload=json.loads(body) if body else None,
        )


async def _deliveries(context: Context, rows: Sequence[models.WebhookDelivery]) -> dict[int, WebhookDelivery]:
    """Deliveries with their subscriptions, attempts and bodies, in three statements whatever the page size."""
    if not rows:
        return {}
    ids = [row.id for row in rows]
    async with context.reading() as session:
        subscriptions = {
            row.id: row
            for row in await session.scalars(
                select(models.WebhookSubscription).where(
                    models.WebhookSubscription.id.in_({row.subscription_id for row in rows})
                )
            )
        }
        attempts: dict[int, list[models.WebhookAttempt]] = {}
        for attempt in await session.scalars(
            select(models.WebhookAttempt)
            .where(models.WebhookAttempt.delivery_id.in_(ids))
            .order_by(models.WebhookAttempt.delivery_id, models.WebhookAttempt.id)
        ):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
        result = await session.execute(
            select(models.WebhookEvent.id, models.WebhookEvent.body).where(
                models.WebhookEvent.id.in_({row.event_id for row in rows})
            )
        )
        bodies: dict[int, str | None] = {event_id: body for event_id, body in result.all()}
    return {
        row.id: WebhookDelivery.of(
            row, subscriptions.get(row.subscription_id), attempts.get(row.id, []), bodies.get(row.event_id)
        )
        for row in rows
    }


@strawberry.type
class WebhooksQuery:
    @strawberry.field(description="The shop's webhook subscriptions, oldest first.")
    async def webhook_subscriptions(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[WebhookSubscription]:
        actor = require_scope(info, Scope.WRITE_WEBHOOKS)
        statement = select(models.WebhookSubscription).where(visible(models.WebhookSubscription, actor))
        return await keyset_page(
            context_of(info),
            statement,
            int_sort(models.WebhookSubscription.id),
            models.WebhookSubscription.id,
            PageRequest(first, after, None, None),
            to_node=WebhookSubscription.of,
        )

    @strawberry.field(description="Deliveries, newest first, with every attempt.")
    async def webhook_deliveries(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        status: Annotated[
            WebhookDeliveryStatus | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only deliveries in this status."),
        ] = None,
        subscription_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only deliveries of this subscription (gid://dropdesk/WebhookSubscription/…)."
            ),
        ] = None,
    ) -> Connection[WebhookDelivery]:
        actor = require_scope(info, Scope.WRITE_WEBHOOKS)
        context = context_of(info)
        statement = select(models.WebhookDelivery).where(visible(models.WebhookDelivery, actor))
        if status is not None:
            statement = statement.where(models.WebhookDelivery.status == status)
        if subscription_id is not None:
            statement = statement.where(
                models.WebhookDelivery.subscription_id
                == id_argument(subscription_id, "WebhookSubscription", "subscriptionId")[1]
            )
        page = await keyset_page(
            context,
            statement,
            int_sort(models.WebhookDelivery.id),
            models.WebhookDelivery.id,
            PageRequest(first, after, None, None, reverse=True),
            to_node=lambda row: row,
        )
        nodes = await _deliveries(context, [edge.node for edge in page.edges])
        for edge in page.edges:
            edge.node = nodes[edge.node.id]
        return page  # type: ignore[return-value]


@strawberry.input
class WebhookSubscriptionCreateInput:
    url: str
    topics: list[str] = strawberry.field(description="Topics such as orders/updated; see the README.")
    description: str | None = None


@strawberry.input
class WebhookSubscriptionUpdateInput:
    id: strawberry.ID
    url: str | None = None
    topics: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


@strawberry.input
class WebhookSubscriptionDeleteInput:
    id: strawberry.ID


@strawberry.input
class WebhookDeliveryRetryInput:
    id: strawberry.ID


@strawberry.type
class WebhookSubscriptionCreatePayload:
    webhook_subscription: WebhookSubscription | None
    secret: str | None = strawberry.field(
        description="The whsec_ signing secret: shown once, here; keep it to verify signatures."
    )
    user_errors: list[UserError]


@strawberry.type
class WebhookSubscriptionUpdatePayload:
    webhook_subscription: WebhookSubscription | None
    user_errors: list[UserError]


@strawberry.type
class WebhookSubscriptionDeletePayload:
    deleted_webhook_subscription_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class WebhookDeliveryRetryPayload:
    webhook_delivery: WebhookDelivery | None
    user_errors: list[UserError]


def _not_found() -> list[UserError]:
    return user_error(ErrorCode.NOT_FOUND, "not found", "id")


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(description="Subscribe a URL to topics; the answer shows the signing secret once.")
    async def webhook_subscription_create(
        self,
        info: Info,
        input: Annotated[
            WebhookSubscriptionCreateInput, strawberry.argument(description="The fields of the change.")
        ],
    ) -> WebhookSubscriptionCreatePayload:
        require_scope(info, Scope.WRITE_WEBHOOKS)
        allow_private = context_of(info).settings.webhook_allow_private_urls
        row, errors = await run_use_case(
            info,
            lambda session, actor: webhook_cases.create_subscription(
                session, actor, input.url, input.topics, input.description, allow_private=allow_private
            ),
        )
        return WebhookSubscriptionCreatePayload(
            webhook_subscription=WebhookSubscription.of(row) if row else None,
            secret=row.secret if row else None,
            user_errors=errors,
        )

    @strawberry.mutation(
        description="Change a subscription's URL, topics or description, or enable it again."
    )
    async def webhook_subscription_update(
        self,
        info: Info,
        input: Annotated[
            WebhookSubscriptionUpdateInput, strawberry.argument(description="The fields of the change.")
        ],
    ) -> WebhookSubscriptionUpdatePayload:
        require_scope(info, Scope.WRITE_WEBHOOKS)
        allow_private = context_of(info).settings.webhook_allow_private_urls
        change = webhook_cases.SubscriptionChange(
            url=input.url, topics=input.topics, description=input.description, enabled=input.enabled
        )
        row, errors = await run_on_id(
            info,
            input.id,
            "WebhookSubscription",
            "id",
            lambda session, actor, pk: webhook_cases.update_subscription(
                session, actor, pk, change, allow_private=allow_private
            ),
        )
        return WebhookSubscriptionUpdatePayload(
            webhook_subscription=WebhookSubscription.of(row) if row else None, user_errors=errors
        )

    @strawberry.mutation(description="Delete a subscription and its deliveries.")
    async def webhook_subscription_delete(
        self,
        info: Info,
        input: Annotated[
            WebhookSubscriptionDeleteInput, strawberry.argument(description="The fields of the change.")
        ],
    ) -> WebhookSubscriptionDeletePayload:
        require_scope(info, Scope.WRITE_WEBHOOKS)
        deleted, errors = await run_on_id(
            info,
            input.id,
            "WebhookSubscription",
            "id",
            lambda session, actor, pk: webhook_cases.delete_subscription(session, actor, pk),
        )
        return WebhookSubscriptionDeletePayload(
            deleted_webhook_subscription_id=input.id if deleted else None, user_errors=errors
        )

    @strawberry.mutation(description="Send a delivery again now, with the same webhook-id and body.")
    async def webhook_delivery_retry(
        self,
        info: Info,
        input: Annotated[
            WebhookDeliveryRetryInput, strawberry.argument(description="The fields of the change.")
        ],
    ) -> WebhookDeliveryRetryPayload:
        require_scope(info, Scope.WRITE_WEBHOOKS)
        row, errors = await run_on_id(
            info,
            input.id,
            "WebhookDelivery",
            "id",
            lambda session, actor, pk: webhook_cases.retry_delivery(session, actor, pk),
        )
        if row is None:
            return WebhookDeliveryRetryPayload(webhook_delivery=None, user_errors=errors)
        nodes = await _deliveries(context_of(info), [row])
        return WebhookDeliveryRetryPayload(webhook_delivery=nodes[row.id], user_errors=errors)


# --- rendering a delivery's body ------------------------------------------------------------------------


def _unwrap(field_type: Any) -> tuple[Any, bool]:
    """The named type, and whether a list is in the way."""
    listed = False
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        listed = listed or isinstance(field_type, GraphQLList)
        field_type = field_type.of_type
    return field_type, listed


def _flat_fields(object_type: GraphQLObjectType) -> list[str] | None:
    """The fields of an object made only of scalars and enums (a customer, an address), else None."""
    names = []
    for name, field in object_type.fields.items():
        if field.args or not is_leaf_type(get_named_type(field.type)):
            return None
        names.append(name)
    return names


def _is_node(object_type: GraphQLObjectType) -> bool:
    return any(interface.name == "Node" for interface in object_type.interfaces)


# Lists a body carries in full, as short as they are useful: a supplier order's notes travel with it.
CARRIED_LISTS = frozenset({("SupplierOrder", "notes")})


def payload_selection(graphql_schema: GraphQLSchema, type_name: str) -> str:
    """The selection a webhook body shows for ``type_name``: what the type says of itself, one level deep."""
    object_type = graphql_schema.get_type(type_name)
    if not isinstance(object_type, GraphQLObjectType):
        raise ValueError(f"{type_name} is not an object type of the schema")
    parts = []
    for name, field in object_type.fields.items():
        if any(is_required_argument(argument) for argument in field.args.values()):
            continue
        named, listed = _unwrap(field.type)
        if is_leaf_type(named):
            parts.append(name)
        elif not isinstance(named, GraphQLObjectType):
            continue
        elif listed and (type_name, name) in CARRIED_LISTS and (flat := _flat_fields(named)) is not None:
            parts.append(f"{name} {{ {' '.join(flat)} }}")
        elif listed:
            continue  # other lists of objects can be long: the receiver asks the API for them
        elif named.name == "Money":
            parts.append(f"{name} {{ amount currencyCode }}")
        elif _is_node(named):
            parts.append(f"{name} {{ id }}")
        elif (flat := _flat_fields(named)) is not None:
            parts.append(f"{name} {{ {' '.join(flat)} }}")
    return " ".join(parts)


@lru_cache(maxsize=64)
def _payload_query(schema: strawberry.Schema, type_name: str) -> str:
    selection = payload_selection(schema._schema, type_name)
    return f"query WebhookPayload($id: ID!) {{ node(id: $id) {{ ... on {type_name} {{ {selection} }} }} }}"


async def render_body(
    schema: strawberry.Schema,
    database: Database,
    settings: Settings,
    *,
    shop_id: int,
    topic: str,
    node_type: str,
    node_id: int,
    occurred_at: datetime,
) -> str:
    """``{type, timestamp, data}`` as compact JSON, ``data`` read through the API as the shop sees it."""
    actor = Actor(
        kind=ActorKind.MERCHANT, name="webhooks", shop_id=shop_id, scopes=frozenset({Scope.READ_ORDERS})
    )
    gid = to_global_id(node_type, node_id)
    context = Context(actor=actor, database=database, settings=settings, request_id=f"webhook:{gid}")
    try:
        result = await schema.execute(
            _payload_query(schema, node_type), variable_values={"id": gid}, context_value=context
        )
    finally:
        await context.close()
    if result.errors:
        log.warning("rendering %s for %s: %s", gid, topic, [error.message for error in result.errors])
    data = (result.data or {}).get("node") or {"id": gid}
    payload = {"type": topic, "timestamp": occurred_at.isoformat(), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
