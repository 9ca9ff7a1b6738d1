"""Every id a root field takes, found in the schema itself, refuses a value that is not an id of its type:
a mutation answers a userError (INVALID) naming the field, a query a BAD_USER_INPUT error naming the argument.

The cases are read from the schema, so a field added later is covered without being listed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    get_named_type,
)
from graphql.pyutils import Undefined

from config.settings import load_settings
from db.engine import Database
from db.models import TokenKind
from domain.tokens import issue_token
from schema.root import build_schema
from tests.factories import Api, Tenant

SCHEMA = build_schema(load_settings())._schema
# Leaves of scalar types other than ID get a value of the right shape; which one does not matter, since ids
# are checked before anything else.
SAMPLES: dict[str, Any] = {
    "String": "x",
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "Decimal": "1",
    "DateTime": "2026-01-01T00:00:00Z",
    "JSON": {},
}
Path = tuple[str, ...]


def _id_paths(type_: GraphQLInputType, path: Path, seen: frozenset[str]) -> Iterator[Path]:
    """Paths (field names, "0" for a list item) from an argument to each ID inside it."""
    if isinstance(type_, GraphQLNonNull):
        yield from _id_paths(type_.of_type, path, seen)
    elif isinstance(type_, GraphQLList):
        yield from _id_paths(type_.of_type, (*path, "0"), seen)
    elif isinstance(type_, GraphQLInputObjectType) and type_.name not in seen:
        for name, field in type_.fields.items():
            yield from _id_paths(field.type, (*path, name), seen | {type_.name})
    elif getattr(type_, "name", None) == "ID":
        yield path


def _value(type_: GraphQLInputType, path: Path, bad_id: str) -> Any:
    """A value with every required field filled, ``bad_id`` in every required id and at the end of ``path``."""
    if isinstance(type_, GraphQLNonNull):
        return _value(type_.of_type, path, bad_id)
    if isinstance(type_, GraphQLList):
        return [_value(type_.of_type, path[1:], bad_id)]
    if isinstance(type_, GraphQLInputObjectType):
        value = {}
        for name, field in type_.fields.items():
            on_path = path[:1] == (name,)
            required = isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
            if on_path or required:
                value[name] = _value(field.type, path[1:] if on_path else (), bad_id)
        return value
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    named: GraphQLNamedType = type_  # type: ignore[assignment]
    return bad_id if named.name == "ID" else SAMPLES[named.name]


def _cases() -> Iterator[Any]:
    for operation, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)):
        assert root is not None
        for field_name, field in root.fields.items():
            for argument_name, argument in field.args.items():
                for path in _id_paths(argument.type, (argument_name,), frozenset()):
                    yield pytest.param(
                        operation, field_name, argument_name, path, id=f"{field_name}.{'.'.join(path)}"
                    )


CASES = list(_cases())


def _selection(field: GraphQLField) -> str:
    named = get_named_type(field.type)
    if not isinstance(named, GraphQLObjectType) and not hasattr(named, "fields"):
        return ""
    if isinstance(named, GraphQLObjectType) and "userErrors" in named.fields:
        return "{ userErrors { field code message } }"
    return "{ __typename }"


def test_the_cases_cover_the_fields_that_take_ids() -> None:
    """Guards the test below against running over nothing: these fields are known to take ids."""
    names = {case.values[1] for case in CASES}
    assert {"order", "node", "nodes", "export", "refundCreate", "returnRequest", "disputeOpen"} <= names
    assert {"cancellationRequestDecide", "supplierOrderUpdate", "ordersExport", "returnReceive"} <= names
    paths = {case.values[3] for case in CASES}
    assert ("input", "lines", "0", "returnLineId") in paths and ("input", "disputeId") in paths


BAD_IDS = [
    "120",
    "gid://dropdesk/Order/abc",
    "gid://shopify/Order/1",
    "gid://dropdesk/Nope/1",
]
# A NUL inside an id is refused at the edge like any unstorable text (tests/api/test_edge.py).


@pytest.mark.parametrize(("operation", "field_name", "argument_name", "path"), CASES)
async def test_an_id_that_is_not_one_is_refused_naming_where_it_is(
    api: Api, tenant: Tenant, db: Database, operation: str, field_name: str, argument_name: str, path: Path
) -> None:
    root = SCHEMA.query_type if operation == "query" else SCHEMA.mutation_type
    assert root is not None
    field = root.fields[field_name]
    argument = field.args[argument_name]
    document = f"{operation}($value: {argument.type}) {{ {field_name}({argument_name}: $value) {_selection(field)} }}"
    async with db.write() as session:
        admin = issue_token(session, kind=TokenKind.ADMIN, name="platform").raw
    tokens = (tenant.merchant_token, tenant.supplier_tokens[0], admin)
    # An id of another type: no field but node(s) takes a Shop id.
    of_another_type = [] if field_name in ("node", "nodes") else ["gid://dropdesk/Shop/1"]
    for bad_id in BAD_IDS + of_another_type:
        variables = {"value": _value(argument.type, path[1:], bad_id)}
        # The first token the field admits: some fields are for suppliers or the platform only.
        for token in tokens:
            body = await api.gql(token, document, variables)
            codes = [error.get("extensions", {}).get("code") for error in body.get("errors", [])]
            if "FORBIDDEN" not in codes:
                break
        where = (field_name, path, bad_id, body)
        if operation == "query":
            [error] = body["errors"]
            argument_path = ".".join(path).replace(".0", "[0]")
            assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument_path}, where
            assert error["message"].startswith(f"argument {argument_path}: "), where
            assert "expected gid://dropdesk/" in error["message"], where
        else:
            assert "errors" not in body, where
            errors = body["data"][field_name]["userErrors"]
            expected_field = list(path[1:]) if argument_name == "input" else [argument_name]
            assert expected_field in [error["field"] for error in errors], where
            assert {error["code"] for error in errors} == {"INVALID"}, where
            assert all("expected gid://dropdesk/" in error["message"] for error in errors), where
