"""XGBoost's and LightGBM's native training (``xgboost.train``, ``lightgbm.train``), and the
per-round evaluation metrics of their scikit-learn faces.

``train`` is wrapped in every namespace that calls it (the package, its training module, its
scikit-learn module), and a recorder callback joins the user's callbacks: each round's evaluation
figures (``eval_set`` / ``evals`` / ``valid_sets``) are logged as they come, step = round, named as
the library names them (``validation_0-logloss``, ``valid-auc``). Under an autologged
``XGBClassifier.fit`` the recorder joins that fit's run; a native ``train`` outside one records a
run of its own: the booster's parameters and the call's, the best and last round with early
stopping, the booster as a run artifact, and its gain importances.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from . import record, session
from .session import nested

NAMESPACES = {"xgboost": ("xgboost", "xgboost.training", "xgboost.sklearn"),
              "lightgbm": ("lightgbm", "lightgbm.engine", "lightgbm.sklearn")}
_xgb_recorder: list[type] = []


def install_xgboost(module) -> None:
    _install("xgboost")


def install_lightgbm(module) -> None:
    _install("lightgbm")


def _install(framework: str) -> None:
    for name in NAMESPACES[framework]:
        ns = sys.modules.get(name)
        if ns is not None and callable(getattr(ns, "train", None)):
            session.patch(ns, "train", _wrapper(framework))


# -- the recorders -----------------------------------------------------------------------------------
def xgboost_recorder(fr: session.FitRun):
    if not _xgb_recorder:
        import xgboost

        class Recorder(xgboost.callback.TrainingCallback):
            """Each round's evaluation figures into the fit's run."""

            def __init__(self, fit_run):
                super().__init__()
                self.fit_run = fit_run

            def after_iteration(self, model, epoch: int, evals_log) -> bool:
                figures = {}
                for data, metrics in evals_log.items():
                    for metric, values in metrics.items():
                        if values:
                            last = values[-1]
                            figures[f"{data}-{metric}"] = last[0] if isinstance(last, tuple) else last
                self.fit_run.record(figures, epoch, "xgboost", "logging a round")
                return False

        _xgb_recorder.append(Recorder)
    return _xgb_recorder[0](fr)


def lightgbm_recorder(fr: session.FitRun):
    def record_round(env) -> None:
        figures = {}
        for item in env.evaluation_result_list or ():
            data, metric, value = item[0], item[1], item[2]
            figures[f"{data}-{metric}"] = value
        fr.record(figures, env.iteration, "lightgbm", "logging a round")

    record_round.order = 20  # with record_evaluation: before early stopping (30) ends the last round
    return record_round


def _with_recorder(framework: str, fr: session.FitRun, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The call's arguments with the recorder after the user's callbacks."""
    kwargs = dict(kwargs)
    given = kwargs.get("callbacks")
    at = LIGHTGBM_CALLBACKS_AT if framework == "lightgbm" else None  # keyword-only in xgboost
    if at is not None and len(args) > at:
        given, args = args[at], args[:at] + args[at + 1:]
    recorder = xgboost_recorder(fr) if framework == "xgboost" else lightgbm_recorder(fr)
    kwargs["callbacks"] = [*(given or []), recorder]
    return args, kwargs


LIGHTGBM_CALLBACKS_AT = 8  # lightgbm.train(params, train_set, num_boost_round, valid_sets, valid_names,
#                            feval, init_model, keep_training_booster, callbacks)


# -- train -------------------------------------------------------------------------------------------
def _wrapper(framework: str):
    def make(original):
        def train(*args, **kwargs):
            s = session.enabled(framework)
            if s is None:
                return original(*args, **kwargs)
            outer = session.current_fit()
            if session.depth() > 0:
                if outer is None or outer.framework != framework or getattr(outer, "recording", False):
                    return original(*args, **kwargs)
                try:  # inside XGBClassifier.fit / LGBMClassifier.fit: its rounds into its run
                    args, kwargs = _with_recorder(framework, outer, args, kwargs)
                    outer.recording = True
                except Exception as e:
                    session.report(framework, "adding the round recorder", e)
                return original(*args, **kwargs)
            try:
                fr = session.begin(framework, f"{framework}.train")
                call_args, call = _with_recorder(framework, fr, args, kwargs)
            except Exception as e:
                session.report(framework, "starting the run", e)
                return original(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                with nested(), session.fitting(fr):
                    booster = original(*call_args, **call)
            except BaseException as e:
                try:
                    session.failed(fr, e)
                except Exception as inner:
                    session.report(framework, "marking the run failed", inner)
                raise
            took = time.perf_counter() - t0
            try:
                params = _params(framework, args, kwargs)

                def task():
                    _log(fr, s, booster, params, took)

                session.WORKER.submit(booster, task, framework, "logging the training",
                                      run_id=None if fr.own else fr.run.run_id)
            except Exception as e:
                session.report(framework, "collecting what to log", e)
            return booster

        return train

    return make


SCALAR = (bool, int, float, str, type(None))


def _params(framework: str, args: tuple, kwargs: dict) -> dict:
    params = dict(args[0] if args else kwargs.get("params") or {})
    rounds = args[2] if len(args) > 2 else kwargs.get("num_boost_round")
    if rounds is not None:
        params["num_boost_round"] = rounds
    for k, v in kwargs.items():
        if k not in ("params", "num_boost_round") and isinstance(v, SCALAR) and v is not None:
            params[k] = v
    return params


def _log(fr: session.FitRun, s: session.Settings, booster: Any, params: dict, took: float) -> None:
    run, framework = fr.open(), fr.framework
    try:
        fr.flush_points()
        record.log_params(run, params)
        run.set_tags({"mlops.autolog.estimator": f"{framework}.Booster", "mlops.autolog.fit_seconds": f"{took:.6g}"})
        record.log_metrics(run, best_rounds(booster))
        steps = [("logging the model", lambda: s.log_models and record.log_model(run, booster, None, s.register,
                                                                                  framework)),
                 ("logging feature importances", lambda: log_booster_importances(run, booster, framework))]
        session.run_steps(framework, steps)
    finally:
        if fr.own:
            run.end("finished")


def best_rounds(model: Any) -> dict[str, float]:
    """``best_iteration`` (early stopping) and ``stopped_iteration`` (the last round trained)."""
    out: dict[str, float] = {}
    for attr in ("best_iteration", "best_iteration_"):
        try:
            v = getattr(model, attr, None)
        except Exception:  # XGBoost raises when there was no early stopping
            v = None
        if isinstance(v, (int, float)) and v >= 0 and not isinstance(v, bool):
            out["best_iteration"] = float(v)
            break
    booster = model.get_booster() if hasattr(model, "get_booster") else getattr(model, "booster_", model)
    try:
        if hasattr(booster, "num_boosted_rounds"):
            out["stopped_iteration"] = float(booster.num_boosted_rounds() - 1)
        elif hasattr(booster, "current_iteration"):
            out["stopped_iteration"] = float(booster.current_iteration() - 1)
    except Exception:
        pass
    return out


def log_booster_importances(run, booster: Any, framework: str) -> None:
    """Gain importances of a native booster, as :func:`record.log_importances` draws them."""
    if framework == "xgboost":
        scores = booster.get_score(importance_type="gain")
        names = booster.feature_names or sorted(scores)
        values = [float(scores.get(n, 0.0)) for n in names]
    else:
        names = booster.feature_name()
        values = [float(v) for v in booster.feature_importance(importance_type="gain")]
    if names:
        record.log_importance_values(run, names, values, f"{framework} Booster: feature importance",
                                     "importance (total gain)")
