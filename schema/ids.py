"""Global ids: ``gid://dropdesk/<Type>/<number>``. Clients treat them as opaque strings."""

from __future__ import annotations

from collections.abc import Collection

from graphql import GraphQLError

PREFIX = "gid://dropdesk/"


class InvalidId(ValueError):
    """A value that is not a Dropdesk global id of the expected type; the message says what was expected."""


def to_global_id(type_name: str, pk: int) -> str:
    return f"{PREFIX}{type_name}/{pk}"


def from_global_id(value: str) -> tuple[str, int] | None:
    """The type name and primary key inside a global id, or None when it is not one of ours."""
    if not value.startswith(PREFIX):
        return None
    type_name, _, raw_pk = value[len(PREFIX) :].partition("/")
    if not type_name or not raw_pk.isdigit() or len(raw_pk) > 18:
        return None
    return type_name, int(raw_pk)


def parse_id(value: str, expected_type: str) -> int | None:
    """The primary key when ``value`` is a global id of ``expected_type``."""
    parsed = from_global_id(value)
    if parsed is None or parsed[0] != expected_type:
        return None
    return parsed[1]


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "…")


def decode_id(value: str, expected_types: str | Collection[str]) -> tuple[str, int]:
    """The type and primary key of a well-formed id of one of ``expected_types``, else InvalidId.

    A well-formed id of the right type is returned even when nothing has it: existence is the caller's
    question, answered as "not found" so that other tenants' ids leak nothing.
    """
    expected = [expected_types] if isinstance(expected_types, str) else sorted(expected_types)
    shape = (
        f"{PREFIX}{expected[0]}/<number>"
        if len(expected) == 1
        else f"{PREFIX}<Type>/<number> with Type one of {', '.join(expected)}"
    )
    parsed = from_global_id(value)
    if parsed is None:
        raise InvalidId(f"{_shown(value)} is not a Dropdesk id: expected {shape}")
    if parsed[0] not in expected:
        raise InvalidId(f"{_shown(value)} is a {parsed[0]} id: expected {shape}")
    return parsed


def id_argument(value: str, expected_types: str | Collection[str], argument: str) -> tuple[str, int]:
    """``decode_id`` for a query argument: a malformed id is a GraphQL error naming the argument."""
    try:
        return decode_id(value, expected_types)
    except InvalidId as error:
        raise GraphQLError(
            f"argument {argument}: {error}", extensions={"code": "BAD_USER_INPUT", "argument": argument}
        ) from None
