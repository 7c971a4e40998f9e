"""Named registries for what varies: model formats, serving runtimes, drift statistics, renderers.

In papermill's style (``papermill_engines.register("name", Engine)``): each registry maps a name to
an implementation; adding one is a module and a ``register`` line. An entry may be given as a
``"module:attribute"`` string, imported on first use, so that registering costs nothing at import
time and a lower layer never imports the module that implements an entry.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Generic, Iterator, TypeVar

from .exceptions import BadInput

T = TypeVar("T")


def load_reference(ref: str) -> Any:
    """The object named by ``"package.module:attr.sub"``."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Name -> implementation, in registration order. *kind* names the registry in errors.

    With *entry_point_group*, the entry points of that group (``name = "module:attr"``) are added
    the first time a name is missing or all names are asked for: a third party registers from its
    own distribution. Names registered in code win over entry points of the same name."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self._items: dict[str, T | str] = {}
        self._group = entry_point_group
        self._loaded = entry_point_group is None
        self._lock = threading.Lock()

    def register(self, name: str, item: T | str, *, replace: bool = False) -> None:
        """Add *item* under *name* (a ``"module:attr"`` string is imported on first use)."""
        if name in self._items and not replace:
            raise BadInput(f"{self.kind} {name!r} is already registered")
        self._items[name] = item

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            from importlib.metadata import entry_points

            for ep in entry_points(group=self._group):
                self._items.setdefault(ep.name, ep.value)

    def get(self, name: str) -> T:
        """The implementation registered as *name*; BadInput naming the known ones otherwise."""
        if name not in self._items:
            self._load_entry_points()
        try:
            item = self._items[name]
        except KeyError:
            raise BadInput(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}") from None
        if isinstance(item, str):
            item = load_reference(item)
            self._items[name] = item
        return item  # type: ignore[return-value]

    def names(self) -> list[str]:
        self._load_entry_points()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self.get(name)
