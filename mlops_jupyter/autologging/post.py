"""Post-training metrics: a fitted model evaluated later writes the figure into its fit's run.

- ``clf.score(X_test, y_test)`` logs ``<Estimator>_score_X_test``;
- a ``sklearn.metrics`` function given the model's predictions
  (``mean_squared_error(y_test, reg.predict(X_test))``) logs ``mean_squared_error_X_test``.

The dataset's name is the variable the caller passed (``X_test``), found in the calling frame or
the notebook's namespace, else ``unknown_dataset``. A figure computed again is the next step of the
same metric. The prediction methods of each autologged estimator class remember their outputs
(the last :data:`REMEMBERED`, by identity); a metric function looks its ``y_pred`` up there. Only
the user's own calls count: the functions are patched in the ``sklearn.metrics`` namespace, which
scikit-learn's internals do not call through, and calls made inside a fit or by the worker are
skipped. As in MLflow, a metric function imported before ``autolog()`` is the unpatched one.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable

from . import session

PREDICT_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")
REMEMBERED = 64
EXTRA_METRICS = ("matthews_corrcoef", "mean_poisson_deviance", "mean_gamma_deviance", "mean_tweedie_deviance")
PRED_ARGS = ("y_pred", "y_score", "y_proba", "y_prob", "probas_pred", "labels_pred")

_fitted: "weakref.WeakKeyDictionary[Any, session.FitRun]" = weakref.WeakKeyDictionary()
_outputs: "OrderedDict[int, tuple[Any, session.FitRun, str]]" = OrderedDict()  # id -> (output, fit, dataset)
_steps: dict[tuple[str, str], int] = {}  # (user's run id, metric) -> last step
_lock = threading.Lock()
_calling = threading.local()


def fitted(estimator: Any, fr: session.FitRun) -> None:
    """*estimator* was fitted under *fr*: its later evaluations go to that run."""
    try:
        _fitted[estimator] = fr
    except TypeError:  # not weakly referenceable: no post-training metrics for it
        pass


def install_class(cls: type) -> None:
    """Patch *cls*'s prediction methods and ``score`` (inherited ones too, set on *cls*)."""
    import inspect

    for name in (*PREDICT_METHODS, "score"):
        static = inspect.getattr_static(cls, name, None)
        if static is None:
            continue
        make = _scorer if name == "score" else _predictor
        if type(static).__name__ == "function":
            session.patch(cls, name, make(name), inherited=True)
        elif hasattr(static, "fn") and type(static.fn).__name__ == "function":  # scikit-learn's available_if
            session.patch(static, "fn", make(name))


def install_metrics(module) -> None:
    """Patch the metric functions of the ``sklearn.metrics`` namespace (a post-import hook)."""
    for name in list(getattr(module, "__all__", ())):
        fn = getattr(module, name, None)
        if type(fn).__name__ == "function" and (name.endswith(("_score", "_error", "_loss")) or name in EXTRA_METRICS):
            session.patch(module, name, _metric(name))


def _outermost() -> bool:
    return session.depth() == 0 and not getattr(_calling, "on", False)


class _inside:
    def __enter__(self):
        self.was = getattr(_calling, "on", False)
        _calling.on = True

    def __exit__(self, *exc):
        _calling.on = self.was


def _evaluation(what: str, then: Callable[[Any, session.FitRun, str, Any], None]):
    """A wrapper of a model's prediction or score method: the call as it was; then, on the user's own
    call of a model autologging fitted, ``then(model, fit_run, dataset name, result)``."""
    def make(original):
        def method(self, *args, **kwargs):
            if not _outermost() or session.settings() is None:
                return original(self, *args, **kwargs)
            with _inside():
                out = original(self, *args, **kwargs)
            fr = None
            try:
                fr = _fitted.get(self)
                if fr is not None:
                    X = args[0] if args else kwargs.get("X")
                    then(self, fr, _dataset_name(X, sys._getframe(1)), out)
            except Exception as e:
                session.report(fr.framework if fr else "sklearn", what, e)
            return out

        return method

    return make


def _predictor(name: str):
    return _evaluation("remembering predictions", lambda model, fr, dataset, out: _remember(out, fr, dataset))


def _scorer(name: str):
    return _evaluation("logging a score", lambda model, fr, dataset, value: _log(
        fr, f"{type(model).__name__}_score_{dataset}", value, model))


def _metric(name: str):
    def make(original):
        def metric(*args, **kwargs):
            if not _outermost() or session.settings() is None:
                return original(*args, **kwargs)
            with _inside():
                value = original(*args, **kwargs)
            try:
                pred = args[1] if len(args) > 1 else next((kwargs[k] for k in PRED_ARGS if k in kwargs), None)
                with _lock:
                    hit = _outputs.get(id(pred)) if pred is not None else None
                if hit is not None and hit[0] is pred:
                    _log(hit[1], f"{name}_{hit[2]}", value, None)
            except Exception as e:
                session.report("sklearn", "logging a metric", e)
            return value

        return metric

    return make


def _remember(out: Any, fr: session.FitRun, dataset: str) -> None:
    with _lock:
        _outputs[id(out)] = (out, fr, dataset)
        _outputs.move_to_end(id(out))
        while len(_outputs) > REMEMBERED:
            _outputs.popitem(last=False)


def _dataset_name(X: Any, frame) -> str:
    from .record import variable_name

    try:
        for scope in (frame.f_locals, frame.f_globals):
            names = [k for k, v in list(scope.items()) if v is X and not k.startswith("_")]
            if len(names) == 1:
                return names[0]
    except Exception:
        pass
    return variable_name(X) or "unknown_dataset"


def _log(fr: session.FitRun, key: str, value: Any, estimator: Any) -> None:
    """*key* = *value* into *fr*'s run (on the worker: after the fit's own logging made the run)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return
    with _lock:
        where = fr.run.run_id if not fr.own else fr  # the user's run: one series per key for every model in it
        step = fr.steps.get(key, -1) + 1 if fr.own else _steps.get((where, key), -1) + 1
        if fr.own:
            fr.steps[key] = step
        else:
            if len(_steps) > 10_000:
                _steps.clear()
            _steps[(where, key)] = step

    def task():
        from ..tracking.run import append_metrics

        append_metrics(fr.open().run_id, {key: value}, step)

    session.WORKER.submit(estimator if estimator is not None else fr, task, fr.framework, "logging a post-training metric",
                          run_id=None if fr.own else fr.run.run_id)


def forget() -> None:
    with _lock:
        _outputs.clear()
        _steps.clear()
    _fitted.clear()
