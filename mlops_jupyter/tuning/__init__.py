"""Tuning with Optuna: ``mj.tune(objective, ...)`` over a notebook function, trials as tracked runs.

Optuna does the searching (its samplers and pruners); this package keeps the study in the
project's store and makes each trial a child run of the study's run:

- the study is an Optuna study in the project's own database (SQLite or PostgreSQL, through
  Optuna's storage for that URL), so it can be resumed and shared (:mod:`.study`);
- each trial is a run named ``trial N`` under the study's run: its parameters, the objective's
  value under the study's metric, what the objective logged, and its state (``finished``,
  ``pruned``, ``failed``);
- what the objective logs under the study's metric with a step (``mj.log(auc=..., step=epoch)``,
  or autologged epochs and boosting rounds) is reported to Optuna as it arrives, and when the
  pruner says stop, that ``mj.log`` raises ``optuna.TrialPruned``: the trial's run ends ``pruned``.
"""

from __future__ import annotations

from .study import tune

__all__ = ["tune"]
