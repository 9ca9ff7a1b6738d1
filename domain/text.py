"""Text that no database stores: NUL characters (PostgreSQL refuses them) and lone UTF-16 surrogates (no
encoding can write them). Every edge checks its inputs with ``find_unstorable`` before anything runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class UnstorableText:
    """Where the bad text is (keys and list indexes from the top) and what is wrong with it."""

    path: Path
    reason: str

    @property
    def dotted(self) -> str:
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text or "value"

    @property
    def message(self) -> str:
        return f"{self.dotted} {self.reason}"


def unstorable_reason(text: str) -> str | None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "must not contain NUL characters"
    return "must not contain lone UTF-16 surrogates"


def find_unstorable(value: Any, path: Path = (), *, max_depth: int = 200) -> UnstorableText | None:
    """The first string (or mapping key) in a JSON-like value that cannot be stored, or None.

    Iterative, so that a deeply nested value cannot exhaust the stack; deeper than ``max_depth`` is reported
    as an error too, since no input of ours nests that deep.
    """
    stack: list[tuple[Any, Path]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            reason = unstorable_reason(item)
            if reason is not None:
                return UnstorableText(where, reason)
        elif isinstance(item, Mapping | list | tuple):
            if len(where) - len(path) >= max_depth:
                return UnstorableText(where, f"is nested deeper than {max_depth} levels")
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if isinstance(key, str) and (reason := unstorable_reason(key)) is not None:
                        return UnstorableText((*where, key), f"(a key) {reason}")
                    stack.append((child, (*where, str(key))))
            else:
                stack.extend((child, (*where, index)) for index, child in enumerate(item))
    return None


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether a parsed JSON value nests deeper than ``max_depth`` objects or arrays."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                return True
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            if depth >= max_depth:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False
