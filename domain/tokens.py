"""Access tokens: random, shown once, stored only as a SHA-256 hash, scoped, named and revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AccessToken, ActorKind, Supplier, TokenKind
from db.types import utcnow
from domain.actors import Actor, Scope
from domain.errors import DomainError, ErrorCode

TOKEN_PREFIXES = {TokenKind.MERCHANT: "ddm_", TokenKind.SUPPLIER: "dds_", TokenKind.ADMIN: "dda_"}


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def derive_token(secret_key: str, kind: TokenKind, label: str) -> str:
    """A token computed from the secret key: the demo data uses it so that `serve` can print it again."""
    digest = hmac.new(secret_key.encode(), f"{kind}:{label}".encode(), hashlib.sha256).hexdigest()
    return TOKEN_PREFIXES[kind] + digest[:40]


class TokenExpired(Exception):
    """A known token past its expiry: the caller is told so, rather than "invalid"."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(
            f"token expired at {expired_at.strftime('%Y-%m-%d %H:%M:%S')} UTC: ask for a new one"
        )
        self.expired_at = expired_at


_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_LIFETIME = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """A lifetime such as ``90m``, ``12h``, ``30d`` or ``8w``; ValueError says what is accepted."""
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if unit not in _DURATION_UNITS or not number.isdigit() or int(number) <= 0:
        raise ValueError(
            f"{text!r} is not a duration: write a positive whole number and a unit, m, h, d or w (e.g. 30d)"
        )
    duration = timedelta(seconds=int(number) * _DURATION_UNITS[unit])
    if duration > MAX_LIFETIME:
        raise ValueError(f"{text!r} is longer than {MAX_LIFETIME.days} days")
    return duration


@dataclass(frozen=True)
class IssuedToken:
    token: AccessToken
    raw: str


def issue_token(
    session: AsyncSession,
    *,
    kind: TokenKind,
    name: str,
    shop_id: int | None = None,
    supplier: Supplier | None = None,
    scopes: Iterable[str] = (),
    raw: str | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """Create a token; the raw value is returned once and never stored."""
    scope_list = sorted(set(scopes))
    unknown = [scope for scope in scope_list if scope not in Scope.ALL]
    if unknown:
        raise DomainError.single(ErrorCode.INVALID, f"unknown scopes: {', '.join(unknown)}", "scopes")
    if kind is TokenKind.MERCHANT and shop_id is None:
        raise DomainError.single(ErrorCode.REQUIRED, "a merchant token needs a shop", "shop")
    if kind is TokenKind.SUPPLIER:
        if supplier is None:
            raise DomainError.single(ErrorCode.REQUIRED, "a supplier token needs a supplier", "supplier")
        shop_id = supplier.shop_id
    raw = raw or TOKEN_PREFIXES[kind] + secrets.token_hex(20)
    token = AccessToken(
        kind=kind,
        name=name,
        shop_id=shop_id,
        supplier_id=supplier.id if supplier else None,
        token_hash=hash_token(raw),
        prefix=raw[:8],
        scopes=scope_list if kind is TokenKind.MERCHANT else [],
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(token)
    return IssuedToken(token=token, raw=raw)


# Built once: a request authenticates before anything else, so the statement's construction counts on every one.
_TOKEN_BY_HASH = select(
    AccessToken.id,
    AccessToken.kind,
    AccessToken.name,
    AccessToken.shop_id,
    AccessToken.supplier_id,
    AccessToken.scopes,
    AccessToken.revoked_at,
    AccessToken.expires_at,
).where(AccessToken.token_hash == bindparam("token_hash"))


async def authenticate(session: AsyncSession, raw: str, *, now: datetime | None = None) -> Actor | None:
    """The actor behind a raw bearer token, or None when it is unknown or revoked.

    Raises TokenExpired for a token past its expiry, so that its holder learns why it stopped working.
    """
    # On the session's connection: a Core statement needs none of the ORM session's execution machinery.
    connection = await session.connection()
    token = (await connection.execute(_TOKEN_BY_HASH, {"token_hash": hash_token(raw)})).one_or_none()
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        raise TokenExpired(token.expires_at)
    return Actor(
        kind=ActorKind(token.kind.value),
        name=token.name,
        shop_id=token.shop_id,
        supplier_id=token.supplier_id,
        token_id=token.id,
        scopes=frozenset(token.scopes or ()),
    )


async def revoke_token(session: AsyncSession, token_id: int) -> bool:
    """Revoke an active token; False when there is none, or it was revoked already.

    One conditional UPDATE decides, so of two concurrent revocations exactly one reports it, and the first
    revocation time is the one kept.
    """
    result = await session.execute(
        update(AccessToken)
        .where(AccessToken.id == token_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    return bool(getattr(result, "rowcount", 0) == 1)
