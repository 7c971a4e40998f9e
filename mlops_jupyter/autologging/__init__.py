"""Autologging: ``mj.autolog()`` / ``%mlops autolog``, and every ``fit`` records a run.

The frameworks are a registry (:data:`FRAMEWORKS`): a name, the modules whose import patches it,
and the function that patches each. Nothing is imported to patch it: a framework imported after
``autolog()`` is patched when it is imported. ``autolog(disable=True)`` puts every method back.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Callable

from ..exceptions import BadInput
from . import hooks, session


@dataclass(frozen=True)
class Framework:
    """A framework autologging knows: *hooks*, pairs of a module name (or a prefix ending in ``.``)
    and the ``"module:function"`` its import calls with the module; the versions it was *tested*
    with (a specifier: others warn once)."""

    hooks: tuple[tuple[str, str], ...]
    tested: str


FRAMEWORKS: dict[str, Framework] = {
    "sklearn": Framework((("sklearn.", "sklearn:install_module"),), ">=1.3,<1.10"),
    "xgboost": Framework((("xgboost.sklearn", "sklearn:install_module"), ("xgboost", "boosters:install_xgboost")),
                         ">=2.0,<3.3"),
    "lightgbm": Framework((("lightgbm.sklearn", "sklearn:install_module"), ("lightgbm", "boosters:install_lightgbm")),
                          ">=4.0,<4.8"),
    "keras": Framework((("keras", "keras:install"),), ">=3.0,<3.16"),
    "lightning": Framework((("lightning.pytorch", "lightning:install"), ("pytorch_lightning", "lightning:install")),
                           ">=2.0,<2.7"),
}

_installed: list[tuple[str, Callable]] = []


def _hook(framework: str, target: str) -> Callable:
    module_name, _, fn_name = target.partition(":")

    def hook(module) -> None:
        from importlib import import_module

        _check_version(framework)
        install = getattr(import_module(f"{__name__}.{module_name}"), fn_name)
        install(module)

    hook.__qualname__ = f"autolog[{framework}]"
    return hook


_checked: set[str] = set()


def _check_version(framework: str) -> None:
    """Warn once when *framework*'s installed version is not one autologging was tested with."""
    if framework in _checked:
        return
    _checked.add(framework)
    import warnings
    from importlib.metadata import PackageNotFoundError, version

    try:
        from packaging.specifiers import SpecifierSet  # ipykernel's dependency, hence always here
    except ImportError:
        return
    for dist in {"sklearn": ("scikit-learn",), "lightning": ("lightning", "pytorch-lightning")}.get(
            framework, (framework,)):
        try:
            installed = version(dist)
            break
        except PackageNotFoundError:
            continue
    else:
        return
    tested = FRAMEWORKS[framework].tested
    if not SpecifierSet(tested).contains(installed, prereleases=True):
        warnings.warn(f"mlops autolog: {dist} {installed} has not been tested with autologging (tested: {tested}); "
                      "it logs what it can", UserWarning, stacklevel=2)


def autolog(frameworks: str | list[str] | None = None, *, disable: bool = False, log_models: bool = True,
            log_datasets: bool = True, registered_model_name: str | None = None, max_tuning_runs: int = 5,
            silent: bool = False) -> list[str]:
    """Record every ``fit`` as a run, without a line of logging code.

    Args:
        frameworks: names (or one comma-separated string) of the frameworks to log; default: all
            (``sklearn``, ``xgboost``, ``lightgbm``, ``keras``, ``lightning``).
        disable: stop autologging and put every patched method back.
        log_models: log each fitted model as a run artifact in its safe format.
        log_datasets: version the training data and record it as the run's input.
        registered_model_name: also register each fitted model as the next version of this name.
        max_tuning_runs: for hyperparameter searches, the best N candidates as child runs.
        silent: say nothing (waits and failures are still warned about once).

    Returns the frameworks now logged (empty after ``disable``).

    Raises:
        BadInput: an unknown framework or a bad option; nothing changes.
    """
    names = _names(frameworks)
    if not isinstance(max_tuning_runs, int) or isinstance(max_tuning_runs, bool) or max_tuning_runs < 0:
        raise BadInput(f"max_tuning_runs must be a whole number >= 0, got {max_tuning_runs!r}")
    if registered_model_name is not None:
        from ..data.catalog import check_name

        check_name(registered_model_name, "model")
    _uninstall()
    if disable:
        from . import post

        session.set_settings(None)
        session.unpatch_all()
        post.forget()
        return []
    session.set_settings(session.Settings(frozenset(names), log_models=log_models, log_datasets=log_datasets,
                                          register=registered_model_name, max_tuning_runs=max_tuning_runs,
                                          silent=silent))
    _install_once()
    for name in names:
        for module, install in FRAMEWORKS[name].hooks:
            hook = _hook(name, install)
            _installed.append((module, hook))
            hooks.when_imported(module, hook)
    return sorted(names)


def _names(given: str | list[str] | None) -> list[str]:
    if given is None:
        return list(FRAMEWORKS)
    items = given.split(",") if isinstance(given, str) else list(given)
    names = [str(n).strip().lower() for n in items if str(n).strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown:
        raise BadInput(f"unknown framework {', '.join(unknown)}: autolog knows {', '.join(FRAMEWORKS)}")
    if not names:
        raise BadInput(f"name at least one framework: {', '.join(FRAMEWORKS)}")
    return names


def _uninstall() -> None:
    while _installed:
        _, hook = _installed.pop()
        hooks.remove(hook)


_once: list[bool] = []


def _install_once() -> None:
    if _once:
        return
    _once.append(True)
    from ..tracking import run as tracking

    hooks.on_error(lambda module, e: session.report(module.split(".")[0], f"patching {module}", e))
    tracking.settle_hooks.append(_settle)
    atexit.register(session.WORKER.wait)


def _settle(run_id: str | None) -> None:
    """Autologging done for *run_id* (all runs when None), and its metric points written."""
    from ..store import current_store

    if session.WORKER.wait(run_id=run_id) and session.WORKER.wrote():
        store = current_store()
        if store is not None:
            store.writer.flush()


def status() -> dict:
    """What autologging does now: the frameworks and options, and how many methods are patched."""
    s = session.settings()
    if s is None:
        return {"enabled": False, "frameworks": [], "patched": session.patched()}
    return {"enabled": True, "frameworks": sorted(s.frameworks), "log_models": s.log_models,
            "log_datasets": s.log_datasets, "registered_model_name": s.register,
            "max_tuning_runs": s.max_tuning_runs, "patched": session.patched()}
