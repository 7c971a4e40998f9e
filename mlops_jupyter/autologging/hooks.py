"""Post-import hooks: call a function when a module is imported, or at once if it already is.

Autologging patches a framework only once the user imports it: nothing here imports a framework.
A finder placed first on ``sys.meta_path`` answers for the watched names only. It asks the other
finders for the module's spec, then wraps the spec's loader so that, once the module has executed,
the loader is put back and the hooks run. A module imported before the hook was added is handled
at once, as is every already imported module under a watched prefix (``"sklearn."``: each
submodule, whenever it is imported).

A hook's exception is reported once by the caller's *report* and never breaks the import.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from typing import Callable

Hook = Callable[[object], None]

_lock = threading.RLock()
_exact: dict[str, list[Hook]] = {}
_prefixes: dict[str, list[Hook]] = {}  # "sklearn." -> hooks, for every submodule
_report: list[Callable[[str, BaseException], None]] = []


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once *name* is imported (now, if it is). A name ending in ``.`` is a
    prefix: the hook runs for each module under it, the ones imported so far first."""
    with _lock:
        _install()
        if name.endswith("."):
            _prefixes.setdefault(name, []).append(hook)
            now = [m for n, m in list(sys.modules.items()) if n.startswith(name) and m is not None]
        else:
            _exact.setdefault(name, []).append(hook)
            now = [sys.modules[name]] if sys.modules.get(name) is not None else []
    for module in now:
        _call(hook, module)


def remove(hook: Hook) -> None:
    """Forget *hook* wherever it was added."""
    with _lock:
        for table in (_exact, _prefixes):
            for name in list(table):
                table[name] = [h for h in table[name] if h is not hook]
                if not table[name]:
                    del table[name]


def on_error(report: Callable[[str, BaseException], None]) -> None:
    """Where a hook's exception goes (autologging reports it once)."""
    _report[:] = [report]


def _watched(fullname: str) -> list[Hook]:
    hooks = list(_exact.get(fullname, ()))
    for prefix, more in _prefixes.items():
        if fullname.startswith(prefix):
            hooks.extend(more)
    return hooks


def _call(hook: Hook, module) -> None:
    try:
        hook(module)
    except Exception as e:  # never break the user's import
        for report in _report:
            report(getattr(module, "__name__", "?"), e)


class _Loader(importlib.abc.Loader):
    """The module's own loader, with the hooks run after it executed the module."""

    def __init__(self, loader, spec):
        self.loader = loader
        self.spec = spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module sees its real loader (importlib.resources and friends ask it).
        self.spec.loader = self.loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        self.loader.exec_module(module)
        with _lock:
            hooks = _watched(module.__name__)
        for hook in hooks:
            _call(hook, module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self):
        self._busy = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if not _exact and not _prefixes:
            return None
        with _lock:
            if not _watched(fullname):
                return None
        busy = getattr(self._busy, "names", None)
        if busy is None:
            busy = self._busy.names = set()
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            busy.discard(fullname)
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, spec)
        return spec


_finder = _Finder()


def _install() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
