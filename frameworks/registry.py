"""One registry type for the three axes of the matrix: models, frameworks and scenarios.

In the style of timm's ``register_model`` / ``list_models``: each axis is a name -> entry mapping
that code and tests iterate instead of hard-coded name lists, an unknown name is a ``KeyError``
that lists the valid ones, and ``temporary()`` lets a test register a toy entry and have it gone
afterwards. Standard library only: the host lists what exists without importing NumPy or a
deep-learning framework.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Entries by name, in registration order."""

    def __init__(self, kind: str, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name``; a second entry of one name is a bug unless ``replace``."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get_entry(self, name: str) -> T:
        """The entry; an unknown name raises ``KeyError`` with a one-line message listing the valid ones."""
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(self._entries)}") from None

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self._entries)})"

    @contextlib.contextmanager
    def temporary(self) -> Iterator[Registry[T]]:
        """Whatever is registered inside the block is gone after it (for tests of extension)."""
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(saved)


def discover(package: str, path: Iterable[str], first: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> None:
    """Import every module of a plugin package (each registers itself): ``first`` in that order, then the
    rest by name; ``skip`` names modules that are not plugins. Scenarios and transforms are found so."""
    names = sorted(m.name for m in pkgutil.iter_modules(list(path)) if m.name not in skip)
    names.sort(key=lambda n: first.index(n) if n in first else len(first))
    for name in names:
        importlib.import_module(f"{package}.{name}")
