"""The docs GraphiQL shows: every root field and every one of its arguments says what it is for."""

from __future__ import annotations

from graphql import GraphQLObjectType

from config.settings import load_settings
from schema.root import build_schema


def _root_types() -> list[GraphQLObjectType]:
    schema = build_schema(load_settings())._schema
    roots = (schema.query_type, schema.mutation_type, schema.subscription_type)
    return [root for root in roots if root is not None]


def test_every_root_field_argument_has_a_description() -> None:
    undescribed = [
        f"{root.name}.{field_name}({argument_name})"
        for root in _root_types()
        for field_name, field in root.fields.items()
        for argument_name, argument in field.args.items()
        if not (argument.description or "").strip()
    ]
    assert undescribed == [], "describe these arguments with strawberry.argument(description=...)"


def test_every_root_field_has_a_description() -> None:
    undescribed = [
        f"{root.name}.{name}"
        for root in _root_types()
        for name, field in root.fields.items()
        if not (field.description or "").strip()
    ]
    assert undescribed == []


def test_the_check_sees_arguments() -> None:
    """Guards the two tests above against passing vacuously."""
    query = _root_types()[0]
    assert set(query.fields["orders"].args) >= {"first", "after", "query", "sortKey", "reverse"}
