"""Factories by name: what a config's `backend`, predictor `kind` or output `format` string selects.

Each extension point keeps one `Registry` beside its interface (`backends.BACKENDS`,
`predictors.PREDICTORS`, `publish.store.STORES`); a new implementation is one module plus one
`register` call. Factories import their heavy modules when called, so registering costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

Factory = TypeVar("Factory")


class Registry(Generic[Factory]):
    def __init__(self, what: str) -> None:
        self.what = what  # how errors name an entry: "backend", "predictor kind", ...
        self._factories: dict[str, Factory] = {}

    def register(self, name: str, factory: Factory) -> None:
        if name in self._factories:
            raise ValueError(f"a {self.what} named {name!r} is already registered")
        self._factories[name] = factory

    def get(self, name: str) -> Factory:
        try:
            return self._factories[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    @contextmanager
    def scoped(self) -> Iterator[Registry[Factory]]:
        """Registrations made inside the block are undone at its end (tests, plugins tried out)."""
        saved = dict(self._factories)
        try:
            yield self
        finally:
            self._factories = saved
