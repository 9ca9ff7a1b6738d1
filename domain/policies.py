"""A shop's refund and return policies: versioned texts and the return rules that go with them.

Every update adds a version that takes effect at once and supersedes the one before; old versions stay as
history, so a return can always show the policy that was in force when it was asked for. ``draft_policy``
writes a text that matches the shop's settings and its suppliers' own return rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import PolicyKind, ReturnShippingPayer, Shop, ShopPolicy, Supplier
from db.types import utcnow
from domain.access import require_scope, visible
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode
from domain.validation import Checker, check_text

# The window a shop without a return policy gives its customers.
DEFAULT_RETURN_WINDOW_DAYS = 30
MAX_BODY_LENGTH = 20_000
MAX_WINDOW_DAYS = 365
ADDRESS_FIELDS = ("name", "address1", "address2", "city", "province", "zip", "country_code", "phone")


@dataclass(frozen=True)
class ReturnPolicyInput:
    body: str
    return_window_days: int = DEFAULT_RETURN_WINDOW_DAYS
    restocking_fee_percent: Decimal = Decimal(0)
    return_shipping_paid_by: ReturnShippingPayer = ReturnShippingPayer.CUSTOMER
    # None keeps the shop's return address.
    return_address: dict[str, Any] | None = None


@dataclass(frozen=True)
class RefundPolicyInput:
    body: str


def _check_return_policy(check: Checker, data: ReturnPolicyInput) -> None:
    path = ("returnPolicy",)
    check_text(check, (*path, "body"), data.body, max_length=MAX_BODY_LENGTH, required=True)
    if not 0 <= data.return_window_days <= MAX_WINDOW_DAYS:
        check.fail((*path, "returnWindowDays"), f"returnWindowDays must be between 0 and {MAX_WINDOW_DAYS}")
    fee = data.restocking_fee_percent
    if not fee.is_finite() or not 0 <= fee <= 100:
        check.fail((*path, "restockingFeePercent"), "restockingFeePercent must be between 0 and 100")
    elif -int(fee.normalize().as_tuple().exponent) > 2:
        check.fail((*path, "restockingFeePercent"), "restockingFeePercent has at most two decimals")
    for key, value in (data.return_address or {}).items():
        check_text(check, (*path, "returnAddress", key), value, max_length=255)
    if data.return_address is not None and not (data.return_address.get("address1") or "").strip():
        check.fail(
            (*path, "returnAddress", "address1"), "a return address needs address1", ErrorCode.REQUIRED
        )


async def update_policies(
    session: AsyncSession,
    actor: Actor,
    return_policy: ReturnPolicyInput | None,
    refund_policy: RefundPolicyInput | None,
    *,
    now: datetime | None = None,
) -> list[ShopPolicy]:
    """Put new versions of the given policies in force; returns the shop's current policies."""
    require_scope(actor, Scope.WRITE_POLICIES)
    now = now or utcnow()
    check = Checker()
    if return_policy is None and refund_policy is None:
        check.fail(("returnPolicy",), "give a returnPolicy, a refundPolicy or both", ErrorCode.REQUIRED)
    if return_policy is not None:
        _check_return_policy(check, return_policy)
    if refund_policy is not None:
        check_text(
            check, ("refundPolicy", "body"), refund_policy.body, max_length=MAX_BODY_LENGTH, required=True
        )
    check.raise_if_any()
    # The shop row is the lock that orders concurrent updates: each one sees the version before it.
    shop = (
        await session.scalars(
            select(Shop)
            .where(visible(Shop, actor))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    current = await current_policies(session, shop.id)
    if return_policy is not None:
        if return_policy.return_address is not None:
            shop.return_address = {
                key: value for key, value in return_policy.return_address.items() if key in ADDRESS_FIELDS
            }
        _add_version(
            session,
            actor,
            shop,
            current.get(PolicyKind.RETURN),
            PolicyKind.RETURN,
            return_policy.body.strip(),
            now,
            return_window_days=return_policy.return_window_days,
            restocking_fee_percent=return_policy.restocking_fee_percent,
            return_shipping_paid_by=return_policy.return_shipping_paid_by,
            return_address=shop.return_address,
        )
    if refund_policy is not None:
        _add_version(
            session,
            actor,
            shop,
            current.get(PolicyKind.REFUND),
            PolicyKind.REFUND,
            refund_policy.body.strip(),
            now,
        )
    await session.flush()
    return list((await current_policies(session, shop.id)).values())


def _add_version(
    session: AsyncSession,
    actor: Actor,
    shop: Shop,
    previous: ShopPolicy | None,
    kind: PolicyKind,
    body: str,
    now: datetime,
    **rules: Any,
) -> ShopPolicy:
    if previous is not None:
        previous.superseded_at = now
    policy = ShopPolicy(
        shop_id=shop.id,
        kind=kind,
        version=previous.version + 1 if previous else 1,
        body=body,
        created_by=actor.name,
        effective_at=now,
        **rules,
    )
    session.add(policy)
    return policy


async def current_policies(session: AsyncSession, shop_id: int) -> dict[PolicyKind, ShopPolicy]:
    rows = await session.scalars(
        select(ShopPolicy)
        .where(ShopPolicy.shop_id == shop_id, ShopPolicy.superseded_at.is_(None))
        .order_by(ShopPolicy.kind)
    )
    return {row.kind: row for row in rows}


async def policy_in_force(
    session: AsyncSession, shop_id: int, kind: PolicyKind, at: datetime
) -> ShopPolicy | None:
    """The version of ``kind`` that was in force at ``at``."""
    return await session.scalar(
        select(ShopPolicy)
        .where(ShopPolicy.shop_id == shop_id, ShopPolicy.kind == kind, ShopPolicy.effective_at <= at)
        .order_by(ShopPolicy.effective_at.desc(), ShopPolicy.version.desc())
        .limit(1)
    )


# --- drafts ---------------------------------------------------------------------------------------------


def format_address(address: dict[str, Any] | None) -> str | None:
    if not address:
        return None
    parts = [
        address.get("name"),
        address.get("address1"),
        address.get("address2"),
        " ".join(part for part in (address.get("zip"), address.get("city")) if part) or None,
        address.get("province"),
        address.get("country_code"),
    ]
    return ", ".join(part for part in parts if part) or None


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f}"


def draft_policy(
    kind: PolicyKind, shop: Shop, suppliers: Sequence[Supplier], return_policy: ShopPolicy | None
) -> str:
    """A policy text consistent with the shop's return rules and its suppliers' own."""
    window = return_policy.return_window_days if return_policy else None
    window = DEFAULT_RETURN_WINDOW_DAYS if window is None else window
    fee = (return_policy.restocking_fee_percent if return_policy else None) or Decimal(0)
    payer = return_policy.return_shipping_paid_by if return_policy else None
    address = format_address((return_policy.return_address if return_policy else None) or shop.return_address)
    taking = sorted((s for s in suppliers if s.accepts_returns), key=lambda s: s.name)
    if kind is PolicyKind.RETURN:
        return _return_text(
            shop, window, fee, payer, address, taking, has_others=len(taking) < len(suppliers)
        )
    return _refund_text(shop, window, fee, taking)


def _return_text(
    shop: Shop,
    window: int,
    fee: Decimal,
    payer: ReturnShippingPayer | None,
    address: str | None,
    taking: Sequence[Supplier],
    *,
    has_others: bool,
) -> str:
    where = f"to our returns address: {address}" if address else "to the returns address we send you"
    paragraphs = [
        f"Returns at {shop.name}",
        f"You may return items within {window} days of delivery. Ask for a return first: once we approve it, "
        f"send the items {where}. Items must be unused and in their original packaging, unless they arrived "
        "damaged, defective or not as described.",
    ]
    if has_others or not taking:
        paragraphs.append(
            f"Most of our products ship from partner warehouses that do not accept returns, so every return "
            f"comes to us, within our {window}-day window."
        )
    for supplier in taking:
        paragraphs.append(
            f"Items fulfilled by {supplier.name} may also be returned to that supplier within "
            f"{supplier.return_window_days} days of delivery; we will tell you where when we approve the return."
        )
    if payer is ReturnShippingPayer.MERCHANT:
        paragraphs.append("We pay for return shipping.")
    else:
        paragraphs.append(
            "Return shipping is paid by you, except when the item arrived damaged, defective, "
            "not as described or was the wrong item: then we pay it."
        )
    if fee > 0:
        paragraphs.append(
            f"Items returned because they did not fit or were no longer wanted carry a restocking fee of "
            f"{_percent(fee)}% of their price."
        )
    paragraphs.append(
        "Final-sale items and requests made after the return window cannot be accepted. Contact us "
        f"at {shop.email} with your order number to start a return."
        if shop.email
        else "Final-sale items and requests made after the return window cannot be accepted."
    )
    return "\n\n".join(paragraphs)


def _refund_text(shop: Shop, window: int, fee: Decimal, taking: Sequence[Supplier]) -> str:
    paragraphs = [
        f"Refunds at {shop.name}",
        "If your order is cancelled before it ships, or if we cannot fulfil it, you receive a full refund to "
        "your original payment method.",
        f"Returned items (sent back within {window} days of delivery) are refunded once they reach our "
        "address and we have checked them, usually within 5 business days.",
        "Items that arrive damaged, defective, not as described or wrong are refunded in full, shipping "
        "included; you may not need to send them back.",
    ]
    if fee > 0:
        paragraphs.append(
            f"Change-of-mind returns are refunded less a restocking fee of {_percent(fee)}% of the item price."
        )
    if taking:
        names = ", ".join(f"{s.name} ({s.return_window_days} days)" for s in taking)
        paragraphs.append(
            f"Items returned directly to a supplier that takes returns ({names}) are refunded once that "
            "supplier confirms receipt."
        )
    paragraphs.append(
        "Refunds are made in the currency you paid in; original shipping is refunded only in full "
        "refunds or for our mistakes."
    )
    return "\n\n".join(paragraphs)


async def policy_draft(session: AsyncSession, actor: Actor, kind: PolicyKind) -> str:
    require_scope(actor, Scope.WRITE_POLICIES)
    shop = await session.scalar(select(Shop).where(visible(Shop, actor)))
    if shop is None:
        raise DomainError.single(ErrorCode.NOT_FOUND, "shop not found")
    suppliers = (await session.scalars(select(Supplier).where(Supplier.shop_id == shop.id))).all()
    current = await current_policies(session, shop.id)
    return draft_policy(kind, shop, suppliers, current.get(PolicyKind.RETURN))
