"""Field checks shared by use cases; each failure names the field it is about."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from urllib.parse import urlsplit

from domain.errors import DomainError, ErrorCode, FieldError
from domain.money import has_valid_precision, is_currency
from domain.text import unstorable_reason

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Checker:
    """Collects every problem of one input so that the client sees them all at once."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: Sequence[str | int], message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        self.errors.append(FieldError(field=tuple(str(part) for part in path), message=message, code=code))

    def raise_if_any(self) -> None:
        if self.errors:
            raise DomainError(self.errors)

    def text(
        self, path: Sequence[str | int], value: str | None, *, max_length: int, required: bool = False
    ) -> None:
        if value is None or not value.strip():
            if required:
                self.fail(path, f"{path[-1]} is required", ErrorCode.REQUIRED)
            return
        if len(value) > max_length:
            self.fail(path, f"{path[-1]} is longer than {max_length} characters", ErrorCode.TOO_LONG)

    def email(self, path: Sequence[str | int], value: str | None) -> None:
        if value is None:
            return
        if len(value) > 320 or not EMAIL.match(value):
            self.fail(path, f"{value!r} is not a valid email address")

    def url(self, path: Sequence[str | int], value: str | None) -> None:
        if value is None:
            return
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc or len(value) > 1000:
            self.fail(path, f"{value!r} is not a valid http(s) URL")

    def currency(self, path: Sequence[str | int], value: str) -> bool:
        if not is_currency(value):
            self.fail(path, f"{value!r} is not a supported ISO 4217 currency code")
            return False
        return True

    def amount(
        self, path: Sequence[str | int], value: Decimal, currency: str | None, *, allow_zero: bool = True
    ) -> None:
        if not value.is_finite():
            self.fail(path, "amount must be a finite number")
        elif value < 0 or (value == 0 and not allow_zero):
            self.fail(path, "amount must be positive" if not allow_zero else "amount must not be negative")
        elif value >= Decimal("1e12"):
            self.fail(path, "amount is too large")
        elif currency is not None and is_currency(currency) and not has_valid_precision(value, currency):
            self.fail(path, f"amount has more decimals than {currency} allows")


def unsafe_text(value: str | None) -> str | None:
    """Why ``value`` cannot be stored as text (a NUL, a lone surrogate), or None when it can."""
    return None if value is None else unstorable_reason(value)


def check_text(
    check: Checker, path: Sequence[str | int], value: str | None, *, max_length: int, required: bool = False
) -> None:
    """``Checker.text`` plus the characters neither database can store."""
    problem = unsafe_text(value)
    if problem is not None:
        check.fail(path, f"{path[-1]} {problem}")
        return
    check.text(path, value, max_length=max_length, required=required)


def unstorable(value: str) -> bool:
    """NUL and lone surrogates: neither database driver stores them, so they are refused at the edge."""
    return unstorable_reason(value) is not None
