"""Global ids: ``gid://dropdesk/<Type>/<number>``. Clients treat them as opaque strings."""

from __future__ import annotations

PREFIX = "gid://dropdesk/"


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
