"""Strategies for Dropdesk's custom scalars, so that Schemathesis fuzzes the operations that take them.

Values are mostly well-formed with some garbage mixed in: the server must answer either with a clean error.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

_garbage = st.text(max_size=20)

_decimals = st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=3)
schemathesis.graphql.scalar("Decimal", st.one_of(_decimals.map(str), _garbage).map(nodes.String))

_times = st.datetimes().map(lambda moment: moment.isoformat() + "Z")
schemathesis.graphql.scalar("DateTime", st.one_of(_times, _garbage).map(nodes.String))

schemathesis.graphql.scalar("JSON", st.one_of(_garbage.map(nodes.String), st.integers().map(nodes.Int)))

# Scalars that other capabilities use or may add: any string exercises their parsing.
for name in ("Date", "URL", "Email", "Upload", "Base64"):
    schemathesis.graphql.scalar(name, _garbage.map(nodes.String))
