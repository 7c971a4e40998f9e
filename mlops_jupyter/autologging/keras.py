"""Keras 3 autologging: ``Model.fit`` (every backend) records a run.

A callback joins the user's: each epoch's figures (``loss``, ``val_loss``, compiled metrics) are
logged as they come, step = epoch. Also logged, as MLflow does: the fit's arguments (epochs,
batch size, validation split...), the optimizer's name and configuration, the loss, the number of
parameters, the summary as ``model_summary.txt``; with ``EarlyStopping``, the epoch it stopped at
and the one whose weights it restored; the model as a ``.keras`` run artifact with its example.
"""

from __future__ import annotations

import time
from typing import Any

from . import record, session
from .session import nested

FIT_POSITIONAL = ("x", "y", "batch_size", "epochs", "verbose", "callbacks", "validation_split",
                  "validation_data", "shuffle", "class_weight", "sample_weight", "initial_epoch",
                  "steps_per_epoch", "validation_steps", "validation_batch_size", "validation_freq")
LOGGED_ARGS = ("batch_size", "epochs", "validation_split", "shuffle", "class_weight", "initial_epoch",
               "steps_per_epoch", "validation_steps", "validation_batch_size", "validation_freq")
_recorder: list[type] = []


def install(module) -> None:
    """Patch ``keras.Model.fit`` (a post-import hook on ``keras``)."""
    model = getattr(module, "Model", None)
    if isinstance(model, type):
        session.patch(model, "fit", _wrapper, inherited=True)


def recorder(fr: session.FitRun):
    if not _recorder:
        import keras

        class Recorder(keras.callbacks.Callback):
            """Each epoch's figures into the fit's run."""

            def __init__(self, fit_run):
                super().__init__()
                self.fit_run = fit_run

            def on_epoch_end(self, epoch: int, logs=None) -> None:
                self.fit_run.record(dict(logs or {}), epoch, "keras", "logging an epoch")

        _recorder.append(Recorder)
    return _recorder[0](fr)


def _wrapper(original):
    def fit(self, *args, **kwargs):
        s = session.enabled("keras")
        if s is None or session.depth() > 0:
            return original(self, *args, **kwargs)
        try:
            fr = session.begin("keras", type(self).__name__, key=self)
            given = dict(zip(FIT_POSITIONAL, args))
            given.update(kwargs)
            call = dict(given)
            call["callbacks"] = [*(given.get("callbacks") or []), recorder(fr)]
            x = given.get("x")
            example = record.snapshot(record.head(x)) if not callable(getattr(x, "__next__", None)) else None
        except Exception as e:
            session.report("keras", "starting the run", e)
            return original(self, *args, **kwargs)
        t0 = time.perf_counter()
        try:
            with nested(), session.fitting(fr):
                history = original(self, **call)
        except BaseException as e:
            try:
                session.failed(fr, e, key=self)
            except Exception as inner:
                session.report("keras", "marking the run failed", inner)
            raise
        took = time.perf_counter() - t0
        try:
            params = fit_params(self, given)
            stopping = early_stopping(given.get("callbacks") or [])

            def task():
                _log(fr, s, self, params, stopping, example, took)

            session.WORKER.submit(self, task, "keras", "logging the fit", run_id=None if fr.own else fr.run.run_id)
        except Exception as e:
            session.report("keras", "collecting what to log", e)
        return history

    return fit


def fit_params(model: Any, given: dict) -> dict:
    """The fit's arguments, the optimizer (name and configuration) and the loss."""
    params: dict = {k: given[k] for k in LOGGED_ARGS if k in given and given[k] is not None}
    params.setdefault("epochs", 1)
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        params["optimizer_name"] = type(opt).__name__
        try:
            for k, v in opt.get_config().items():
                if k != "name" and (v is None or isinstance(v, (bool, int, float, str))):
                    params[f"optimizer_{k}"] = v
        except Exception:
            pass
    loss = getattr(model, "loss", None)
    if loss is not None:
        params["loss"] = loss if isinstance(loss, str) else getattr(loss, "name", None) or type(loss).__name__
    return {k: v for k, v in params.items() if v is not None}


def early_stopping(callbacks: list) -> dict[str, float]:
    """``stopped_epoch`` and ``restored_epoch`` of an ``EarlyStopping`` among *callbacks*."""
    for cb in callbacks:
        if type(cb).__name__ == "EarlyStopping":
            out = {"stopped_epoch": float(getattr(cb, "stopped_epoch", 0) or 0)}
            best = getattr(cb, "best_epoch", None)
            if getattr(cb, "restore_best_weights", False) and isinstance(best, int):
                out["restored_epoch"] = float(best)
            return out
    return {}


def _log(fr: session.FitRun, s: session.Settings, model: Any, params: dict, stopping: dict, example: Any,
         took: float) -> None:
    run = fr.open()
    try:
        fr.flush_points()
        record.log_params(run, params)
        record.log_metrics(run, stopping)
        run.set_tags({"mlops.autolog.estimator": f"keras.{type(model).__name__}", "mlops.autolog.fit_seconds": f"{took:.6g}"})
        steps = [("logging the summary", lambda: log_summary(run, model)),
                 ("logging the model", lambda: s.log_models and record.log_model(run, model, example, s.register,
                                                                                  "keras"))]
        session.run_steps("keras", steps)
    finally:
        if fr.own:
            run.end("finished")


def log_summary(run, model: Any) -> None:
    lines: list[str] = []
    with nested():
        model.summary(print_fn=lambda line, *a, **k: lines.append(line))
    run.log_text("\n".join(lines) + "\n", "model_summary.txt")
    try:
        record.log_params(run, {"total_params": int(model.count_params())})
    except Exception:
        pass
