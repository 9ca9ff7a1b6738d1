"""The shop's refund and return policies: versioned updates and drafts that match its suppliers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from domain import policies as policy_cases
from domain.actors import Scope
from domain.errors import DomainError
from schema.context import context_of, forbidden, require_scope
from schema.errors import UserError, run_use_case
from schema.orders import MailingAddressInput
from schema.types import PolicyKind, ReturnShippingPayer, ShopPolicy


@strawberry.type(description="A proposed policy text; review it, then save it with shopPoliciesUpdate.")
class PolicyDraft:
    kind: PolicyKind  # type: ignore[valid-type]
    body: str


@strawberry.type
class PoliciesQuery:
    @strawberry.field(
        description="A policy text consistent with the shop's return settings and its suppliers' own rules."
    )
    async def policy_draft(
        self,
        info: Info,
        kind: Annotated[
            PolicyKind,  # type: ignore[valid-type]
            strawberry.argument(description="Which policy to draft."),
        ],
    ) -> PolicyDraft:
        require_scope(info, Scope.WRITE_POLICIES)
        context = context_of(info)
        try:
            async with context.reading() as session:
                body = await policy_cases.policy_draft(session, context.actor, kind)
        except DomainError as error:
            raise forbidden("policyDraft is for merchant tokens") from error
        return PolicyDraft(kind=kind, body=body)


@strawberry.input
class ReturnPolicyInput:
    body: str
    return_window_days: int = policy_cases.DEFAULT_RETURN_WINDOW_DAYS
    restocking_fee_percent: Decimal = Decimal(0)
    return_shipping_paid_by: ReturnShippingPayer = policy_cases.ReturnShippingPayer.CUSTOMER  # type: ignore[valid-type]
    return_address: MailingAddressInput | None = strawberry.field(
        default=None, description="Where returns go; omitted, the shop's current return address is kept."
    )


@strawberry.input
class RefundPolicyInput:
    body: str


@strawberry.input
class ShopPoliciesUpdateInput:
    return_policy: ReturnPolicyInput | None = None
    refund_policy: RefundPolicyInput | None = None


@strawberry.type
class ShopPoliciesUpdatePayload:
    policies: list[ShopPolicy] | None = strawberry.field(description="The policies now in force.")
    user_errors: list[UserError]


@strawberry.type
class PoliciesMutation:
    @strawberry.mutation(description="Put new versions of the refund and/or return policy in force.")
    async def shop_policies_update(
        self,
        info: Info,
        input: Annotated[
            ShopPoliciesUpdateInput,
            strawberry.argument(description="The policies to change; one left out stays as it is."),
        ],
    ) -> ShopPoliciesUpdatePayload:
        require_scope(info, Scope.WRITE_POLICIES)
        given = input.return_policy
        return_policy = (
            policy_cases.ReturnPolicyInput(
                body=given.body,
                return_window_days=given.return_window_days,
                restocking_fee_percent=given.restocking_fee_percent,
                return_shipping_paid_by=given.return_shipping_paid_by,
                return_address=given.return_address.to_dict() if given.return_address else None,
            )
            if given
            else None
        )
        refund_policy = (
            policy_cases.RefundPolicyInput(body=input.refund_policy.body) if input.refund_policy else None
        )
        rows, errors = await run_use_case(
            info,
            lambda session, actor: policy_cases.update_policies(session, actor, return_policy, refund_policy),
        )
        return ShopPoliciesUpdatePayload(
            policies=[ShopPolicy.of(row) for row in rows] if rows is not None else None, user_errors=errors
        )
