"""PyTorch Lightning: ``Trainer.fit`` autologged, and a Lightning logger (``mj.lightning_logger()``).

Autologging (``lightning.pytorch`` and the older ``pytorch_lightning`` namespace alike) adds a
callback to the trainer. At each training epoch's end it logs ``trainer.callback_metrics``
(training and validation figures, as MLflow does; step = epoch; the sanity check's validation is
not logged). After the fit, as MLflow logs them: the epochs, the optimizer's name and defaults,
``EarlyStopping``'s settings and where it stopped, the model summary; also the module's
``hparams``, the batch size, gradient accumulation and clipping, precision. The module itself is a
run artifact in the safe PyTorch format (``torch.export``), traced on the first batch it was
called with during training. A ``TensorDataset`` of features and target is versioned as the
training data. A later ``trainer.test`` adds its figures to the fit's run.

``mj.lightning_logger()`` is a Lightning ``Logger``: ``Trainer(logger=mj.lightning_logger())``
writes what the module logs with ``self.log`` (step = Lightning's global step) and its
hyperparameters into the active run, the job's run, or a run of its own that ends with the fit.
With autologging on as well, the fit logs into the logger's run: one run.
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import record, session
from .session import nested

NAMESPACES = ("lightning.pytorch", "pytorch_lightning")
EXAMPLE_ROWS = 32
DATASET_MAX_VALUES = 50_000_000  # larger training tensors are not copied for a dataset version
_recorders: dict[str, type] = {}
_loggers: dict[str, type] = {}


def install(module) -> None:
    """Patch ``Trainer.fit`` (a post-import hook on ``lightning.pytorch`` / ``pytorch_lightning``)."""
    trainer = getattr(module, "Trainer", None)
    if isinstance(trainer, type):
        session.patch(trainer, "fit", _wrapper)


def _namespace(obj: Any) -> str:
    """``lightning.pytorch`` or ``pytorch_lightning``: the one *obj*'s class (or the process) uses."""
    module = type(obj).__module__ if obj is not None else ""
    for ns in NAMESPACES:
        if module == ns or module.startswith(ns + "."):
            return ns
    import sys

    for ns in NAMESPACES:
        if ns in sys.modules:
            return ns
    return NAMESPACES[0]


def figures(metrics: dict) -> dict[str, float]:
    """Lightning's metric dict (tensors of one value, numbers) as finite floats."""
    out = {}
    for k, v in (metrics or {}).items():
        if hasattr(v, "numel"):
            if v.numel() != 1:
                continue
            v = v.detach().float().cpu().item()
        out[str(k)] = v
    return record.finite_metrics(out)


# -- autologging -------------------------------------------------------------------------------------
def recorder(ns: str, fr: session.FitRun, epochs: bool):
    """The callback that records one fit: epoch figures (when *epochs*), the optimizer, the first
    batch's input (the model's example), and a later test's figures."""
    if ns not in _recorders:
        from importlib import import_module

        base = import_module(ns).Callback

        class Recorder(base):
            def __init__(self, fit_run, epochs):
                super().__init__()
                self.fit_run = fit_run
                self.epochs = epochs
                self.params: dict = {}
                self.example: Any = None
                self.patched: Any = None
                self.loader: Any = None  # the training loader (the trainer forgets it at the fit's end)

            def on_train_start(self, trainer, pl_module) -> None:
                try:
                    self.loader = trainer.train_dataloader
                    self.params.update(optimizer_params(trainer))
                    self._watch_forward(pl_module)
                except Exception as e:
                    session.report("lightning", "reading the optimizer", e)

            def _watch_forward(self, pl_module) -> None:
                if self.example is not None or "forward" in vars(pl_module):
                    return
                original = pl_module.forward

                def forward(*args, **kwargs):
                    out = original(*args, **kwargs)
                    if self.example is None:
                        try:
                            self.example = example_of_call(args, kwargs)
                        except Exception:
                            self.example = False
                        self.unwatch()
                    return out

                pl_module.forward = forward
                self.patched = pl_module

            def unwatch(self) -> None:
                module, self.patched = self.patched, None
                if module is not None and "forward" in vars(module):
                    del module.forward

            def on_train_epoch_end(self, trainer, pl_module) -> None:
                if not self.epochs or trainer.sanity_checking:
                    return
                try:
                    points = figures(trainer.callback_metrics)
                except Exception as e:
                    session.report("lightning", "logging an epoch", e)
                    return
                self.fit_run.record(points, int(trainer.current_epoch), "lightning", "logging an epoch")

            def on_train_end(self, trainer, pl_module) -> None:
                self.unwatch()

            def on_test_end(self, trainer, pl_module) -> None:
                """``trainer.test`` after the fit: its figures into the fit's run (ended or not)."""
                if trainer.state.fn != "test":
                    return
                test = figures(trainer.callback_metrics)
                fr = self.fit_run

                def task():
                    from ..tracking.run import append_metrics

                    run = fr.open()
                    append_metrics(run.run_id, test, step=0)

                if test:
                    session.WORKER.submit(pl_module, task, "lightning", "logging test figures",
                                          run_id=None if fr.own else fr.run.run_id)

        _recorders[ns] = Recorder
    return _recorders[ns](fr, epochs)


def example_of_call(args: tuple, kwargs: dict) -> Any:
    """The first rows of a ``forward`` call's tensors (positional, or keywords), on the CPU."""
    def rows(t):
        return t[:EXAMPLE_ROWS].detach().cpu().clone()

    if args and not kwargs and all(hasattr(a, "detach") for a in args):
        return rows(args[0]) if len(args) == 1 else tuple(rows(a) for a in args)
    if kwargs and not args and all(hasattr(v, "detach") for v in kwargs.values()):
        return {k: rows(v) for k, v in kwargs.items()}
    return False


def optimizer_params(trainer) -> dict:
    """The first optimizer's class name and its defaults (``lr``, ``betas``...), as MLflow logs them."""
    optimizers = getattr(trainer, "optimizers", None) or []
    if not optimizers:
        return {}
    opt = optimizers[0]
    params: dict = {"optimizer_name": type(opt).__name__}
    for k, v in (getattr(opt, "defaults", None) or {}).items():
        if v is None or isinstance(v, (bool, int, float, str)) or (isinstance(v, tuple) and
                                                                  all(isinstance(x, (int, float)) for x in v)):
            params[k] = list(v) if isinstance(v, tuple) else v
    return params


def trainer_params(trainer, model, loader: Any) -> dict:
    """The fit's settings: epochs, steps, batch size, accumulation, clipping, precision, the
    module's ``hparams``."""
    params: dict = {"epochs": trainer.max_epochs}
    if getattr(trainer, "max_steps", -1) not in (-1, None):
        params["max_steps"] = trainer.max_steps
    for name in ("accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "precision"):
        v = getattr(trainer, name, None)
        if v is not None:
            params[name] = v if isinstance(v, (bool, int, float, str)) else str(v)
    size = getattr(loader, "batch_size", None)
    if isinstance(size, int):
        params["batch_size"] = size
    hparams = getattr(model, "hparams", None)
    if hparams:
        params.update(flatten(dict(hparams)))
    return params


def flatten(params: dict, prefix: str = "") -> dict:
    """Nested dicts as ``a/b`` keys (as Lightning's loggers write them); other values kept."""
    out: dict = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{key}/"))
        elif hasattr(v, "__dict__") and type(v).__name__ == "Namespace":
            out.update(flatten(vars(v), f"{key}/"))
        else:
            out[key] = v
    return out


def early_stopping(trainer) -> tuple[dict, dict]:
    """``EarlyStopping``'s settings (parameters) and where it stopped (metrics), as MLflow logs them:
    ``restored_epoch`` is the epoch of the best score (stopped − patience; Lightning itself does not
    restore weights)."""
    for cb in getattr(trainer, "callbacks", None) or []:
        if type(cb).__name__ == "EarlyStopping":
            params = {p: getattr(cb, p) for p in ("monitor", "mode", "patience", "min_delta", "stopped_epoch")
                      if hasattr(cb, p)}
            metrics: dict = {}
            stopped = int(getattr(cb, "stopped_epoch", 0) or 0)
            if stopped:
                metrics = {"stopped_epoch": stopped, "restored_epoch": stopped - max(1, int(cb.patience))}
                best = getattr(cb, "best_score", None)
                if best is not None:
                    metrics["best_score"] = float(best)
                metrics["wait_count"] = int(getattr(cb, "wait_count", 0))
            return params, metrics
    return {}, {}


def training_tensors(loader: Any) -> tuple[Any, Any] | None:
    """Features and target of a ``TensorDataset(X, y)`` training loader, copied (None otherwise)."""
    dataset = getattr(loader, "dataset", None)
    tensors = getattr(dataset, "tensors", None)
    if not isinstance(tensors, tuple) or len(tensors) != 2:
        return None
    X, y = tensors
    if X.ndim != 2 or y.ndim > 2 or len(X) != len(y) or X.numel() + y.numel() > DATASET_MAX_VALUES:
        return None
    return X.detach().cpu().numpy().copy(), y.detach().cpu().numpy().copy()


def _our_logger(trainer):
    for lg in getattr(trainer, "loggers", None) or []:
        if getattr(lg, "_mlops_logger", False):
            return lg
    return None


def _wrapper(original):
    def fit(self, model, *args, **kwargs):
        s = session.enabled("lightning")
        if s is None or session.depth() > 0:
            return original(self, model, *args, **kwargs)
        ns = _namespace(self)
        try:
            logger = _our_logger(self)
            if logger is not None:
                run = logger.run
                fr = session.FitRun(run, logger._own, "lightning")
                logger._fit_owns_end = logger._own
            else:
                fr = session.begin("lightning", type(model).__name__, key=model)
            rec = recorder(ns, fr, epochs=logger is None)
            self.callbacks[:] = [cb for cb in self.callbacks if type(cb) is not type(rec)] + [rec]
        except Exception as e:
            session.report("lightning", "starting the run", e)
            return original(self, model, *args, **kwargs)
        t0 = time.perf_counter()
        try:
            with nested(), session.fitting(fr):
                result = original(self, model, *args, **kwargs)
        except BaseException as e:
            rec.unwatch()
            cause = e.__context__ if isinstance(e, SystemExit) and isinstance(e.__context__, KeyboardInterrupt) else e
            try:
                session.failed(fr, cause, key=model, params={**trainer_params(self, model, rec.loader), **rec.params})
            except Exception as inner:
                session.report("lightning", "marking the run failed", inner)
            raise
        took = time.perf_counter() - t0
        try:
            params = {**trainer_params(self, model, rec.loader), **rec.params}
            stop_params, stop_metrics = early_stopping(self)
            params.update(stop_params)
            data = training_tensors(rec.loader) if s.log_datasets else None
            example = rec.example if rec.example is not False else None

            def task():
                _log(fr, s, ns, model, params, stop_metrics, example, data, took)

            session.WORKER.submit(model, task, "lightning", "logging the fit", run_id=None if fr.own else fr.run.run_id)
        except Exception as e:
            session.report("lightning", "collecting what to log", e)
        return result

    return fit


def _log(fr: session.FitRun, s: session.Settings, ns: str, model: Any, params: dict, stop_metrics: dict,
         example: Any, data: tuple | None, took: float) -> None:
    run = fr.open()
    try:
        fr.flush_points()
        record.log_params(run, params)
        record.log_metrics(run, stop_metrics)
        run.set_tags({"mlops.autolog.estimator": f"lightning.{type(model).__name__}",
                      "mlops.autolog.fit_seconds": f"{took:.6g}"})
        steps = [("logging the summary", lambda: log_summary(run, ns, model)),
                 ("logging the training data", lambda: data is not None and
                  record.log_dataset(run, data[0], data[1], "training-data")),
                 ("logging the model", lambda: s.log_models and example is not None and
                  record.log_model(run, model, example, s.register, "lightning"))]
        session.run_steps("lightning", steps)
    finally:
        if fr.own:
            run.end("finished")


def log_summary(run, ns: str, model: Any) -> None:
    """``model_summary.txt`` (Lightning's summary table) and ``total_params``."""
    from importlib import import_module

    summary = import_module(f"{ns}.utilities.model_summary").ModelSummary(model, max_depth=1)
    run.log_text(str(summary) + "\n", "model_summary.txt")
    record.log_params(run, {"total_params": int(summary.total_parameters),
                            "trainable_params": int(summary.trainable_parameters)})


# -- the explicit logger -------------------------------------------------------------------------------
def lightning_logger(run: Any = None, *, name: str | None = None, tags: dict | None = None):
    """A Lightning logger writing into mlops-jupyter: ``Trainer(logger=mj.lightning_logger())``.

    Args:
        run: the run to log into (a ``Run`` or a run id); default: the active run when the first
            figure comes, else the job's run, else a run of its own (named *name*) that ends with
            the fit, failed if the fit fails.
        name: the name of a run of its own (default: ``lightning``).
        tags: tags set on that run.

    What the module logs with ``self.log`` is written at Lightning's global step; the module's
    saved hyperparameters are the run's parameters. Figures from a later ``trainer.test`` go into the
    same run, ended or not.
    """
    ns = _namespace(None)
    if ns not in _loggers:
        _loggers[ns] = _logger_class(ns)
    return _loggers[ns](run=run, name=name, tags=tags)


def _logger_class(ns: str) -> type:
    from importlib import import_module

    base = import_module(f"{ns}.loggers.logger").Logger

    class MlopsLogger(base):
        """Lightning's figures and hyperparameters as an mlops-jupyter run."""

        _mlops_logger = True

        def __init__(self, run: Any = None, name: str | None = None, tags: dict | None = None):
            super().__init__()
            self._given = run
            self._run: Any = None
            self._own = False
            self._ended = False
            self._fit_owns_end = False  # autologging ends the run once its logging is written
            self._run_name = name or "lightning"
            self._tags = dict(tags or {})

        @property
        def name(self) -> str:
            return "mlops"

        @property
        def version(self) -> str:
            return self.run.run_id

        @property
        def experiment(self):
            return self.run

        @property
        def save_dir(self) -> str | None:
            return None

        @property
        def run(self):
            if self._run is None:
                from ..tracking import run as tracking

                given = self._given
                if given is not None:
                    self._run = tracking.attach_run(given) if isinstance(given, str) else given
                elif tracking.active_run() is not None:
                    self._run = tracking.active_run()
                elif os.environ.get("MLOPS_RUN_ID"):
                    self._run = tracking.attach_run(os.environ["MLOPS_RUN_ID"])
                else:
                    self._run = tracking.start_run(name=self._run_name, tags={"mlops.lightning": "logger", **self._tags},
                                                   activate=False)
                    self._own = True
            return self._run

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            if params is None:
                return
            values = vars(params) if hasattr(params, "__dict__") and not isinstance(params, dict) else dict(params)
            record.log_params(self.run, flatten(values))

        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            clean = figures(metrics)
            if not clean:
                return
            run = self.run
            if self._ended or getattr(run, "status", "running") != "running":
                from ..tracking.run import append_metrics

                append_metrics(run.run_id, clean, step=int(step or 0), flush=True)
            else:
                run.log_metrics(clean, step=step)

        def finalize(self, status: str) -> None:
            if self._run is None or not self._own or self._ended:
                return
            self._ended = True
            if self._fit_owns_end:  # autologging writes the fit's parameters and model, then ends it
                return
            self._run.end("finished" if status in ("success", "finished") else "failed")

    MlopsLogger.__qualname__ = MlopsLogger.__name__ = "MlopsLogger"
    return MlopsLogger
