"""Named registries for what varies: model formats, serving runtimes, drift statistics, renderers.

In papermill's style (``papermill_engines.register("name", Engine)``): each registry maps a name to
an implementation; adding one is a module and a ``register`` line. An entry may be given as a
``"module:attribute"`` string, imported on first use, so that registering costs nothing at import
time and a lower layer never imports the module that implements an entry.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any, Generic, Iterator, TypeVar

from .exceptions import BadInput

T = TypeVar("T")


ENTRY_POINT_PREFIX = "mlops_jupyter."  # the groups this package reads


def _cache_file() -> str:
    """Where this environment's entry points are kept: named after the interpreter and the mtime of
    every installation folder on ``sys.path`` (installing or removing a package changes its
    folder's)."""
    key = [sys.executable]
    cwd = os.getcwd()
    for folder in sys.path:
        if not os.path.isabs(folder) or folder == cwd:  # the working folder: where one works, not installs
            continue
        try:
            key.append(f"{folder}:{os.stat(folder or '.').st_mtime_ns}")
        except OSError:
            continue
    import hashlib  # here, not at import: `import mlops_jupyter` loads this module

    digest = hashlib.blake2b("\n".join(key).encode(), digest_size=12).hexdigest()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlops-jupyter", f"entry-points-{digest}.json")


_entry_points: dict[str, list[tuple[str, str]]] | None = None
_entry_points_lock = threading.Lock()


def entry_points_of(group: str) -> list[tuple[str, str]]:
    """``(name, "module:attr")`` of every installed entry point in *group*.

    Reading every distribution's metadata costs tens of milliseconds, paid by the first event of
    each process: the answer is kept in a small file per environment and read back in well under
    a millisecond while nothing on ``sys.path`` changes."""
    global _entry_points
    if not group.startswith(ENTRY_POINT_PREFIX):  # not one of ours: not kept, read each time
        from importlib.metadata import entry_points

        return [(ep.name, ep.value) for ep in entry_points(group=group)]
    with _entry_points_lock:
        if _entry_points is None:
            _entry_points = _read_entry_points()
    return list(_entry_points.get(group, ()))


def _read_entry_points() -> dict[str, list[tuple[str, str]]]:
    import json

    path = _cache_file()
    try:
        with open(path, encoding="utf-8") as f:
            return {g: [tuple(e) for e in eps] for g, eps in json.load(f).items()}
    except (OSError, ValueError, AttributeError):
        pass  # not made yet in this environment (or unreadable): scan and write it
    from importlib.metadata import distributions

    found: dict[str, list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for dist in distributions():  # as entry_points() reads them: the first of a name on sys.path wins
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for ep in dist.entry_points:
            if ep.group.startswith(ENTRY_POINT_PREFIX):
                found.setdefault(ep.group, []).append((ep.name, ep.value))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(found, f)
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    except OSError as e:  # a read-only home: scanned again next time
        import logging

        logging.getLogger(__name__).debug("could not keep the entry points in %s: %s", path, e)
    return found


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
            for name, value in entry_points_of(self._group):
                self._items.setdefault(name, value)

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
