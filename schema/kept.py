"""A bounded map for what is worth keeping between requests: clients send the same few documents again and
again. Emptied when full, which is cheaper than tracking use and as good for a handful of hot keys."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._values: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._values.get(key)

    def put(self, key: K, value: V) -> V:
        if len(self._values) >= self.size:
            self._values.clear()
        self._values[key] = value
        return value
