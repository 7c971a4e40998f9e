"""Who is working (:func:`current_user`), and values attached to live objects of this session by identity, held weakly: a frame knows the
dataset version it came from, a model object the registry version it was saved or loaded as."""

from __future__ import annotations

import getpass
import os
import weakref
from typing import Any


class ObjectMap:
    def __init__(self, limit: int = 1000):
        self._items: dict[int, tuple[weakref.ref, Any]] = {}
        self.limit = limit  # past this many entries, those of dead objects are dropped

    def set(self, obj: Any, value: Any) -> None:
        try:
            ref = weakref.ref(obj)
        except TypeError:  # objects that take no weak reference are not remembered
            return
        if len(self._items) > self.limit:
            for k in [k for k, (w, _) in self._items.items() if w() is None]:
                del self._items[k]
        self._items[id(obj)] = (ref, value)

    def get(self, obj: Any) -> Any:
        got = self._items.get(id(obj))
        if got is None or got[0]() is not obj:  # an id reused by another object
            return None
        return got[1]


def current_user() -> str:
    """The user recorded on runs, versions and audit entries (JupyterHub's user when there is one)."""
    for var in ("JUPYTERHUB_USER", "MLOPS_USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
