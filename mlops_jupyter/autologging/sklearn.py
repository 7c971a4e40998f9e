"""scikit-learn autologging (also the scikit-learn faces of XGBoost and LightGBM, whose estimators
are scikit-learn estimators).

Every estimator class with a ``fit``, ``fit_transform`` or ``fit_predict`` of its own is patched as
its module is imported (a post-import hook on ``sklearn.``, ``xgboost.sklearn`` and
``lightgbm.sklearn``): nothing is imported to patch it, and a class defined later by the user
inherits the patched method. The outermost fit logs; the fits it makes (a pipeline's steps, a
search's candidates, ``super().fit``) log nothing of their own.

What is logged matches MLflow's scikit-learn autologging: ``get_params(deep=True)``; training
metrics on the training data named as MLflow names them (``training_accuracy_score``, ...,
``training_score``), weighted by ``sample_weight`` when the fit had one; the model as a run
artifact in its safe format with its signature and input example; the training data as a dataset
version (the notebook variable's name, else ``training-data``); tree importances as a chart.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from . import post, record, search, session
from .session import nested

FIT_METHODS = ("fit", "fit_transform", "fit_predict")
# Data preparation, not models (as MLflow's autologging leaves them): scikit-learn's own functions
# fit these inside (metrics encode labels), and a scaler's fit is no experiment.
NOT_MODELS = ("sklearn.preprocessing.", "sklearn.impute.", "sklearn.feature_extraction.",
              "sklearn.feature_selection.")
MODULES = ("sklearn.", "xgboost.sklearn", "lightgbm.sklearn")
# Functions that fit or score copies of a model many times over (as MLflow, they log nothing:
# a run per fold, or hundreds of scores in the model's run, would bury the experiment).
UNLOGGED = {"sklearn.model_selection": ("cross_validate", "cross_val_predict", "cross_val_score", "learning_curve",
                                        "permutation_test_score", "validation_curve"),
            "sklearn.inspection": ("permutation_importance", "partial_dependence")}


def _unlogged(original):
    def call(*args, **kwargs):
        with nested():
            return original(*args, **kwargs)

    return call
NAMES = {"xgboost.sklearn": "xgboost", "lightgbm.sklearn": "lightgbm"}


def install_module(module) -> None:
    """Patch the estimator classes defined in *module* (a post-import hook)."""
    # While scikit-learn imports itself, sklearn.base may be half made: the modules imported then
    # (its utilities) define no estimators, and sklearn.base's own hook comes once it is whole.
    Estimator = getattr(sys.modules.get("sklearn.base"), "BaseEstimator", None)
    if Estimator is None:
        return
    if module.__name__ == "sklearn.metrics":
        post.install_metrics(module)
    for name in UNLOGGED.get(module.__name__, ()):
        if callable(getattr(module, name, None)):
            session.patch(module, name, _unlogged)
    if module.__name__.startswith(NOT_MODELS):
        return
    for value in list(vars(module).values()):
        if (isinstance(value, type) and value.__module__ == module.__name__ and issubclass(value, Estimator)):
            for name in FIT_METHODS:
                fn = value.__dict__.get(name)
                if callable(fn) and type(fn).__name__ == "function":
                    session.patch(value, name, _wrapper_for(name))
            post.install_class(value)


def framework_of(estimator: Any) -> str:
    top = type(estimator).__module__.split(".")[0]
    return top if top in ("xgboost", "lightgbm") else "sklearn"


def _wrapper_for(method: str):
    def make(original):
        def fit(self, *args, **kwargs):
            framework = framework_of(self)
            s = session.enabled(framework)
            if s is None or session.depth() > 0:
                return original(self, *args, **kwargs)
            try:
                fr = session.begin(framework, type(self).__name__, key=self)
            except Exception as e:
                session.report(framework, "starting the run", e)
                return original(self, *args, **kwargs)
            t0 = time.perf_counter()
            try:
                with nested(), session.fitting(fr):
                    result = original(self, *args, **kwargs)
            except BaseException as e:
                try:
                    session.failed(fr, e, key=self, params=_params_of(self))
                except Exception as inner:
                    session.report(framework, "marking the run failed", inner)
                raise
            took = time.perf_counter() - t0
            try:
                _hand_over(fr, s, self, original, args, kwargs, took)
                post.fitted(self, fr)
            except Exception as e:
                session.report(framework, "collecting what to log", e)
                if fr.own:  # nothing will log into it: the run is written, ended, with what is known
                    session.WORKER.submit(self, lambda: fr.open().end("finished"), framework, "ending the run")
            return result

        return fit

    return make


_SIGNATURES: dict = {}


def _args(original, args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    """X, y and sample_weight of a fit call, however they were passed."""
    import inspect

    sig = _SIGNATURES.get(original)
    if sig is None:
        sig = _SIGNATURES[original] = inspect.signature(original)
    try:
        bound = sig.bind_partial(None, *args, **kwargs).arguments
    except TypeError:
        bound = {}
    X = bound.get("X", args[0] if args else kwargs.get("X"))
    y = bound.get("y", bound.get("Y"))
    weight = bound.get("sample_weight")
    for name in ("fit_params", "params", "kwargs"):  # **fit_params of pipelines and meta-estimators
        if weight is None and isinstance(bound.get(name), dict):
            weight = bound[name].get("sample_weight")
    return X, y, weight


def _params_of(estimator) -> dict | None:
    try:
        return estimator.get_params(deep=True)
    except Exception:
        return None


def _hand_over(fr, s, estimator, original, args: tuple, kwargs: dict, took: float) -> None:
    """On the user's time: what the worker will need, copied."""
    X, y, weight = _args(original, args, kwargs)
    params = estimator.get_params(deep=True)
    data_name = record.variable_name(X)
    X, y, weight = record.snapshot(X), record.snapshot(y), record.snapshot(weight)

    def task():
        _log(fr, s, estimator, params, X, y, weight, data_name, took)

    session.WORKER.submit(estimator, task, fr.framework, "logging the fit", run_id=None if fr.own else fr.run.run_id)


def _log(fr, s, estimator, params, X, y, weight, data_name, took) -> None:
    run, framework = fr.open(), fr.framework
    try:
        fr.flush_points()  # the rounds of a booster's eval_set, logged as they came
        record.log_params(run, params)
        run.set_tags({"mlops.autolog.estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
                      "mlops.autolog.fit_seconds": f"{took:.6g}"})
        if framework != "sklearn":
            from .boosters import best_rounds

            record.log_metrics(run, best_rounds(estimator))
        steps = [
            ("computing training metrics", lambda: X is not None and y is not None and record.log_metrics(
                run, training_metrics(estimator, X, y, weight, framework))),
            ("logging the model", lambda: s.log_models and record.log_model(
                run, estimator, record.head(X), s.register, framework)),
            ("versioning the training data", lambda: s.log_datasets and X is not None and record.log_dataset(
                run, X, y, data_name)),
            ("logging feature importances", lambda: record.log_importances(run, estimator, feature_names(estimator, X))),
            ("logging the search's candidates", lambda: search.is_search(estimator) and search.log_search(
                run, estimator, s.max_tuning_runs)),
            ("logging the search's best estimator", lambda: s.log_models and search.is_search(estimator) and
             getattr(estimator, "best_estimator_", None) is not None and record.log_model(
                 run, estimator.best_estimator_, record.head(X), None, framework, folder="best_estimator")),
        ]
        session.run_steps(framework, steps)
    finally:
        if fr.own:
            run.end("finished")


def feature_names(estimator: Any, X: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    cols = getattr(X, "columns", None)
    return [str(c) for c in cols] if cols is not None else None


# -- training metrics ----------------------------------------------------------------------------------
def training_metrics(estimator: Any, X: Any, y: Any, weight: Any = None, framework: str = "sklearn") -> dict[str, float]:
    """MLflow's training metrics for *estimator* on its training data (``training_`` + the name);
    each computed on its own, as MLflow does: one that does not apply (a multi-output target for
    accuracy) is left out, the others are still logged."""
    import numpy as np
    from sklearn import metrics as M
    from sklearn.base import is_classifier, is_regressor

    out: dict[str, float] = {}
    kw = {"sample_weight": weight} if weight is not None else {}
    y_arr = np.asarray(y)

    def add(name: str, compute) -> None:
        try:
            out[name] = float(compute())
        except Exception:  # not for this estimator or target
            pass

    if hasattr(estimator, "score"):
        add("training_score", lambda: estimator.score(X, y, **kw))
    if not hasattr(estimator, "predict"):
        return out
    try:
        with nested():
            pred = estimator.predict(X)
    except Exception as e:
        session.report(framework, "predicting on the training data", e)
        return out
    if is_classifier(estimator):
        add("training_accuracy_score", lambda: M.accuracy_score(y_arr, pred, **kw))
        for name, fn in (("precision_score", M.precision_score), ("recall_score", M.recall_score),
                         ("f1_score", M.f1_score)):
            add(f"training_{name}", lambda fn=fn: fn(y_arr, pred, average="weighted", zero_division=0, **kw))
        if hasattr(estimator, "predict_proba"):
            try:
                with nested():
                    proba = estimator.predict_proba(X)
            except Exception:
                proba = None
            if proba is not None and getattr(proba, "ndim", 0) == 2:
                classes = getattr(estimator, "classes_", None)
                add("training_log_loss", lambda: M.log_loss(y_arr, proba, labels=classes, **kw))
                if proba.shape[1] == 2:
                    add("training_roc_auc", lambda: M.roc_auc_score(y_arr, proba[:, 1], **kw))
                elif proba.shape[1] > 2:  # as MLflow: one-vs-one, weighted
                    add("training_roc_auc", lambda: M.roc_auc_score(y_arr, proba, multi_class="ovo",
                                                                    average="weighted", labels=classes, **kw))
    elif is_regressor(estimator):
        add("training_mean_squared_error", lambda: M.mean_squared_error(y_arr, pred, **kw))
        if "training_mean_squared_error" in out:
            out["training_root_mean_squared_error"] = float(np.sqrt(out["training_mean_squared_error"]))
        add("training_mean_absolute_error", lambda: M.mean_absolute_error(y_arr, pred, **kw))
        add("training_r2_score", lambda: M.r2_score(y_arr, pred, **kw))
    return out
