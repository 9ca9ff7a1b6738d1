"""Queries and mutations on disputes: merchants open, accept, escalate and cancel; suppliers respond;
the platform rules. Evidence comes as uploads (GraphQL multipart request spec) or URLs."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.file_uploads import Upload
from strawberry.types import Info

from db import models
from domain import disputes as dispute_cases
from domain.access import visible
from domain.actors import Actor, Scope
from domain.errors import ErrorCode
from domain.evidence import EvidenceFile
from schema.context import context_of, forbidden, require_reader, require_scope, require_supplier
from schema.errors import UserError, input_id, run_on_id, run_use_case, user_error
from schema.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    PageRequest,
    Reverse,
    int_sort,
    keyset_page,
)
from schema.types import (
    Dispute,
    DisputeKind,
    DisputeReason,
    DisputeResponseAction,
    DisputeStatus,
)


@strawberry.enum(name="DisputeRulingOutcome", description="Who a platform ruling favours.")
class RulingOutcome(enum.StrEnum):
    MERCHANT = "MERCHANT"
    SUPPLIER = "SUPPLIER"


MAX_UPLOADS = dispute_cases.MAX_ATTACHMENTS
_INPUT = "The dispute and what to do with it."


@strawberry.type
class DisputesQuery:
    @strawberry.field(
        description="Disputes, oldest first unless reversed; a supplier sees those on its orders."
    )
    async def disputes(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        status: Annotated[
            DisputeStatus | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only disputes in this status."),
        ] = None,
        reverse: Reverse = False,
    ) -> Connection[Dispute]:
        context = context_of(info)
        actor = context.actor if context.actor.is_admin else require_reader(info)
        statement = select(models.Dispute).where(visible(models.Dispute, actor))
        if status is not None:
            statement = statement.where(models.Dispute.status == status)
        return await keyset_page(
            context,
            statement,
            int_sort(models.Dispute.id),
            models.Dispute.id,
            PageRequest(first, after, last, before, reverse),
            to_node=Dispute.of,
        )


@strawberry.input
class DisputeOpenInput:
    supplier_order_id: strawberry.ID
    reason: DisputeReason  # type: ignore[valid-type]
    kind: DisputeKind  # type: ignore[valid-type]
    requested_amount: Decimal = strawberry.field(
        description="In the supplier order's currency; at most what was paid less supplier refunds received."
    )
    message: str = strawberry.field(description="What is wrong, for the supplier.")
    evidence: list[Upload] | None = strawberry.field(
        default=None, description="Images or videos, sent per the GraphQL multipart request spec."
    )
    evidence_urls: list[str] | None = strawberry.field(
        default=None, description="Links to images or videos hosted elsewhere."
    )


@strawberry.input
class DisputeMessageAddInput:
    id: strawberry.ID
    body: str | None = strawberry.field(default=None, description="Required unless evidence is given.")
    evidence: list[Upload] | None = None
    evidence_urls: list[str] | None = None


@strawberry.input
class DisputeRespondInput:
    id: strawberry.ID
    action: DisputeResponseAction  # type: ignore[valid-type]
    amount: Decimal | None = strawberry.field(default=None, description="Required with PROPOSE_REFUND.")
    message: str | None = strawberry.field(default=None, description="Required with REFUSE.")


@strawberry.input
class DisputeAcceptProposalInput:
    id: strawberry.ID


@strawberry.input
class DisputeEscalateInput:
    id: strawberry.ID
    message: str = strawberry.field(description="Why the supplier's answer is not acceptable.")


@strawberry.input
class DisputeCancelInput:
    id: strawberry.ID


@strawberry.input
class DisputeRuleInput:
    id: strawberry.ID
    outcome: RulingOutcome
    amount: Decimal | None = strawberry.field(
        default=None, description="For MERCHANT: the refund; the requested amount when omitted."
    )
    message: str | None = None


@strawberry.input
class DisputeReturnShippedInput:
    id: strawberry.ID
    tracking_number: str
    carrier: str | None = None


@strawberry.type
class DisputeOpenPayload:
    dispute: Dispute | None
    user_errors: list[UserError]


@strawberry.type
class DisputeMessageAddPayload:
    dispute: Dispute | None
    user_errors: list[UserError]


@strawberry.type
class DisputeRespondPayload:
    dispute: Dispute | None
    user_errors: list[UserError]


@strawberry.type
class DisputeAcceptProposalPayload:
    dispute: Dispute | None
    user_errors: list[UserError]


@strawberry.type
class DisputeEscalatePayload:
    dispute: Dispute | None
    user_errors: list[UserError]


@strawberry.type
class DisputeCancelPayload:
    dispute: Dispute | None
    user_errors: list[UserError]


@strawberry.type
class DisputeRulePayload:
    dispute: Dispute | None
    user_errors: list[UserError]


@strawberry.type
class DisputeReturnShippedPayload:
    dispute: Dispute | None
    user_errors: list[UserError]


UseCase = Callable[[AsyncSession, Actor], Awaitable[models.Dispute]]


async def _run(info: Info, use_case: UseCase) -> tuple[Dispute | None, list[UserError]]:
    row, errors = await run_use_case(info, use_case)
    return (Dispute.of(row) if row else None), errors


async def _run_on_dispute(
    info: Info, dispute_id: str, use_case: Callable[[AsyncSession, Actor, int], Awaitable[models.Dispute]]
) -> tuple[Dispute | None, list[UserError]]:
    row, errors = await run_on_id(info, dispute_id, "Dispute", "id", use_case)
    return (Dispute.of(row) if row else None), errors


async def _read_uploads(info: Info, uploads: list[Any] | None) -> list[EvidenceFile]:
    """The uploaded files, each read up to one byte past the cap so that the domain can refuse it."""
    if not uploads:
        return []
    cap = context_of(info).settings.evidence_max_bytes
    files = []
    for upload in uploads:
        read = getattr(upload, "read", None)
        if read is None:
            raise GraphQLError("evidence must be uploaded files", extensions={"code": "BAD_USER_INPUT"})
        data = read(cap + 1)
        if inspect.isawaitable(data):
            data = await data
        files.append(EvidenceFile(getattr(upload, "filename", None), bytes(data)))
    return files


def _too_many(uploads: list[Any] | None, urls: list[str] | None) -> list[UserError]:
    """Refused before any file is read, so that a flood of uploads costs no memory."""
    if len(uploads or []) + len(urls or []) <= MAX_UPLOADS:
        return []
    return user_error(ErrorCode.TOO_MANY, f"at most {MAX_UPLOADS} attachments per message", "evidence")


def _evidence(files: list[EvidenceFile], urls: list[str] | None) -> dispute_cases.Evidence:
    return dispute_cases.Evidence(files=files, urls=list(urls or []))


def _require_admin(info: Info) -> None:
    if not context_of(info).actor.is_admin:
        raise forbidden("only the platform (an admin token) rules on disputes")


@strawberry.type
class DisputesMutation:
    @strawberry.mutation(
        description="Open a dispute on a supplier order that shipped (or finished within the protection "
        "window); the supplier order shows IN_ISSUE until it ends."
    )
    async def dispute_open(
        self,
        info: Info,
        input: Annotated[
            DisputeOpenInput,
            strawberry.argument(description="The supplier order, what is wrong and what is asked."),
        ],
    ) -> DisputeOpenPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        pk, id_errors = input_id(input.supplier_order_id, "SupplierOrder", "supplierOrderId")
        if pk is None:
            return DisputeOpenPayload(dispute=None, user_errors=id_errors)
        if too_many := _too_many(input.evidence, input.evidence_urls):
            return DisputeOpenPayload(dispute=None, user_errors=too_many)
        rules = dispute_cases.DisputeRules.of(context_of(info).settings)
        evidence = _evidence(await _read_uploads(info, input.evidence), input.evidence_urls)
        dispute, errors = await _run(
            info,
            lambda session, actor: dispute_cases.open_dispute(
                session,
                actor,
                pk,
                input.reason,
                input.kind,
                input.requested_amount,
                input.message,
                evidence,
                rules=rules,
            ),
        )
        return DisputeOpenPayload(dispute=dispute, user_errors=errors)

    @strawberry.mutation(description="Add a message, with evidence or without, to an open dispute.")
    async def dispute_message_add(
        self, info: Info, input: Annotated[DisputeMessageAddInput, strawberry.argument(description=_INPUT)]
    ) -> DisputeMessageAddPayload:
        actor = context_of(info).actor
        if not actor.is_supplier:
            require_scope(info, Scope.WRITE_ORDERS)
        pk, id_errors = input_id(input.id, "Dispute", "id")
        if pk is None:
            return DisputeMessageAddPayload(dispute=None, user_errors=id_errors)
        if too_many := _too_many(input.evidence, input.evidence_urls):
            return DisputeMessageAddPayload(dispute=None, user_errors=too_many)
        rules = dispute_cases.DisputeRules.of(context_of(info).settings)
        evidence = _evidence(await _read_uploads(info, input.evidence), input.evidence_urls)
        dispute, errors = await _run(
            info,
            lambda session, actor: dispute_cases.add_message(
                session, actor, pk, input.body, evidence, rules=rules
            ),
        )
        return DisputeMessageAddPayload(dispute=dispute, user_errors=errors)

    @strawberry.mutation(description="The supplier proposes a refund or a replacement, or refuses.")
    async def dispute_respond(
        self, info: Info, input: Annotated[DisputeRespondInput, strawberry.argument(description=_INPUT)]
    ) -> DisputeRespondPayload:
        require_supplier(info)
        dispute, errors = await _run_on_dispute(
            info,
            input.id,
            lambda session, actor, pk: dispute_cases.respond(
                session, actor, pk, input.action, input.amount, input.message
            ),
        )
        return DisputeRespondPayload(dispute=dispute, user_errors=errors)

    @strawberry.mutation(
        description="Accept the supplier's answer: a refund is recorded (after the return ships, for "
        "RETURN_AND_REFUND), a replacement is expected, or the refusal ends the dispute."
    )
    async def dispute_accept_proposal(
        self,
        info: Info,
        input: Annotated[DisputeAcceptProposalInput, strawberry.argument(description=_INPUT)],
    ) -> DisputeAcceptProposalPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        dispute, errors = await _run_on_dispute(
            info, input.id, lambda session, actor, pk: dispute_cases.accept_proposal(session, actor, pk)
        )
        return DisputeAcceptProposalPayload(dispute=dispute, user_errors=errors)

    @strawberry.mutation(description="Ask the platform to rule on the supplier's answer.")
    async def dispute_escalate(
        self, info: Info, input: Annotated[DisputeEscalateInput, strawberry.argument(description=_INPUT)]
    ) -> DisputeEscalatePayload:
        require_scope(info, Scope.WRITE_ORDERS)
        dispute, errors = await _run_on_dispute(
            info,
            input.id,
            lambda session, actor, pk: dispute_cases.escalate(session, actor, pk, input.message),
        )
        return DisputeEscalatePayload(dispute=dispute, user_errors=errors)

    @strawberry.mutation(description="Drop an open dispute; the supplier order returns to its status before.")
    async def dispute_cancel(
        self, info: Info, input: Annotated[DisputeCancelInput, strawberry.argument(description=_INPUT)]
    ) -> DisputeCancelPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        dispute, errors = await _run_on_dispute(
            info, input.id, lambda session, actor, pk: dispute_cases.cancel(session, actor, pk)
        )
        return DisputeCancelPayload(dispute=dispute, user_errors=errors)

    @strawberry.mutation(description="The platform rules on an escalated dispute (admin tokens only).")
    async def dispute_rule(
        self, info: Info, input: Annotated[DisputeRuleInput, strawberry.argument(description=_INPUT)]
    ) -> DisputeRulePayload:
        _require_admin(info)
        outcome = models.DisputeOutcome(input.outcome.value)
        dispute, errors = await _run_on_dispute(
            info,
            input.id,
            lambda session, actor, pk: dispute_cases.rule(
                session, actor, pk, outcome, input.amount, input.message
            ),
        )
        return DisputeRulePayload(dispute=dispute, user_errors=errors)

    @strawberry.mutation(
        description="Give the tracking number of the goods sent back on a RETURN_AND_REFUND dispute whose "
        "refund was agreed (AWAITING_RETURN); the supplier refund is recorded and the dispute resolves."
    )
    async def dispute_return_shipped(
        self, info: Info, input: Annotated[DisputeReturnShippedInput, strawberry.argument(description=_INPUT)]
    ) -> DisputeReturnShippedPayload:
        require_scope(info, Scope.WRITE_ORDERS)
        dispute, errors = await _run_on_dispute(
            info,
            input.id,
            lambda session, actor, pk: dispute_cases.mark_return_shipped(
                session, actor, pk, input.tracking_number, input.carrier
            ),
        )
        return DisputeReturnShippedPayload(dispute=dispute, user_errors=errors)
