"""The committed schema.graphql is the schema the code serves."""

from __future__ import annotations

from pathlib import Path

from config.settings import load_settings
from schema.root import build_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_committed_schema_matches_code() -> None:
    current = build_schema(load_settings()).as_str() + "\n"
    assert SCHEMA_FILE.read_text() == current, (
        "schema.graphql is out of date; regenerate it with: "
        "python -c 'from schema.root import build_schema; from config.settings import load_settings; "
        "print(build_schema(load_settings()).as_str())' > schema.graphql"
    )
