"""Typed business errors. The API turns them into ``userErrors``; they are data, never crashes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class ErrorCode(enum.StrEnum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    TOO_MANY = "TOO_MANY"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    INVALID_STATE = "INVALID_STATE"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    AMOUNT_TOO_LARGE = "AMOUNT_TOO_LARGE"
    NOT_CANCELLABLE = "NOT_CANCELLABLE"
    # returns, refunds and policies
    EXCEEDS_RETURNABLE_QUANTITY = "EXCEEDS_RETURNABLE_QUANTITY"
    EXCEEDS_OUTSTANDING_QUANTITY = "EXCEEDS_OUTSTANDING_QUANTITY"
    EXCEEDS_REFUNDABLE_AMOUNT = "EXCEEDS_REFUNDABLE_AMOUNT"
    EXCEEDS_REFUNDABLE_QUANTITY = "EXCEEDS_REFUNDABLE_QUANTITY"
    INSUFFICIENT_RETURNED_STOCK = "INSUFFICIENT_RETURNED_STOCK"
    NO_RETURN_ADDRESS = "NO_RETURN_ADDRESS"
    # disputes
    NOT_DISPUTABLE = "NOT_DISPUTABLE"
    UNSUPPORTED_FILE_TYPE = "UNSUPPORTED_FILE_TYPE"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    # saved searches, bulk actions and notes
    INVALID_QUERY = "INVALID_QUERY"


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; ``field`` is the path from the mutation's arguments."""

    field: tuple[str, ...]
    message: str
    code: ErrorCode


class DomainError(Exception):
    """Raised by a use case to refuse the whole command; nothing it started is committed."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = list(errors)

    @classmethod
    def single(cls, code: ErrorCode, message: str, *field: str) -> DomainError:
        return cls([FieldError(field=tuple(field), message=message, code=code)])
