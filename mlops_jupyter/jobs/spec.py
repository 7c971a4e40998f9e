"""A promoted job's description (``job.toml``): its parameters with types and defaults, the
model it registers and how models are compared, when it retrains.

Parameters (:mod:`.params`: types, defaults, help) are checked here, before any kernel starts: an
unknown name or a value of the wrong type is one line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import BadInput, NotFound
from .params import TYPES, Parameter, check_identifier, toml_value, type_of, unknown_parameter

__all__ = ["JobSpec", "Parameter", "TYPES", "type_of", "check_identifier", "check_job_name", "check_cron",
           "check_retrain", "direction_for", "find_job", "iter_jobs", "list_jobs"]

JOB_FILE = "job.toml"
NOTEBOOK = "notebook.ipynb"
_LOWER_IS_BETTER = re.compile(r"(loss|error|err|mse|rmse|mae|mape|logloss|perplexity|latency|cost)$", re.I)
_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def check_job_name(name: str) -> str:
    """Job names become folder and image names: lower-case letters, digits, '-', '_', '.'."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", name) or ".." in name:
        raise BadInput(f"job name {name!r}: use 1-63 lower-case letters, digits, '-', '_' or '.', starting with a "
                       "letter or digit (it names a folder and a container image)")
    return name


def check_cron(expr: str) -> str:
    fields = expr.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise BadInput(f"schedule {expr!r} is not a cron string of five fields (minute hour day month weekday), "
                       "e.g. '0 3 * * 0'")
    return " ".join(fields)


def direction_for(metric: str) -> str:
    """``max`` unless the metric's name says lower is better (loss, rmse, error, ...)."""
    return "min" if _LOWER_IS_BETTER.search(metric) else "max"


@dataclass
class JobSpec:
    name: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    model: str | None = None
    metric: str | None = None
    direction: str = "max"
    alias: str = "production"
    schedule: str | None = None
    image: str | None = None
    source: str | None = None  # the promoted notebook, relative to the project root
    workdir: str = "."  # where the notebook runs, relative to the job folder
    smoke: dict[str, Any] = field(default_factory=dict)
    retrain: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def notebook(self) -> Path:
        assert self.folder is not None
        return self.folder / NOTEBOOK

    @property
    def serves(self) -> bool:
        return self.model is not None

    def parameter(self, name: str, where: str = "") -> Parameter:
        """The parameter *name*; BadInput (with a did-you-mean) when the job has none."""
        p = self.parameters.get(name)
        if p is None:
            raise unknown_parameter(self.name, name, self.parameters, where)
        return p

    def check_params(self, values: dict[str, Any], where: str = "") -> dict[str, Any]:
        """Values (Python values) by name, checked against and converted to their parameters'
        types; unknown names and values of the wrong type are refused."""
        return {name: self.parameter(name, where).check(value, where) for name, value in values.items()}

    def better(self, a: float, b: float | None) -> bool:
        """Is *a* strictly better than *b* by this job's metric?"""
        if b is None:
            return True
        return a > b if self.direction == "max" else a < b

    def describe(self) -> str:
        lines = [f"job {self.name}  ({self.folder})"]
        if self.source:
            lines.append(f"  promoted from {self.source}")
        lines.append("  parameters:" + ("" if self.parameters else " none"))
        lines += [f"    {p.describe()}" for p in self.parameters.values()]
        if self.model:
            rule = (f"{self.metric} ({'higher' if self.direction == 'max' else 'lower'} is better)"
                    if self.metric else "no metric: every retrain takes the alias")
            lines.append(f"  model: {self.model}@{self.alias}; challenger vs champion on {rule}")
        if self.retrain.get("retrain_when"):
            lines.append(f"  monitoring: retrain when {self.retrain['retrain_when']} over the last "
                         f"{self.retrain.get('window', '24h')} (mlops monitor check {self.name})")
        if self.gate:
            lines.append(f"  gate: {self.gate['rule']} on {self.gate['data']} (target {self.gate['target']})")
        if self.smoke:
            lines.append("  smoke: " + ", ".join(f"{k}={v!r}" for k, v in self.smoke.items()))
        lines.append(f"  image: {self.image}")
        if self.schedule:
            lines.append(f"  schedule: {self.schedule}")
        return "\n".join(lines)

    # -- job.toml ---------------------------------------------------------------------------------
    def to_toml(self) -> str:
        v = toml_value

        lines = ["# A job promoted from a notebook by mlops-jupyter. Edit freely; `mlops promote` again",
                 "# refuses to overwrite a hand-edited folder without --force.",
                 f"name = {v(self.name)}"]
        if self.source:
            lines.append(f"source = {v(self.source)}  # the notebook it was promoted from")
        lines.append(f"workdir = {v(self.workdir)}  # where the notebook runs, relative to this folder")
        if self.image:
            lines.append(f"image = {v(self.image)}")
        if self.schedule:
            lines.append(f"schedule = {v(self.schedule)}  # cron: when the CronJob retrains")
        lines += ["", "# name = { type, default, help }: papermill parameters; `mlops job run` checks values",
                  f"# against these. type: {', '.join(TYPES[:-1])} or {TYPES[-1]}. No default: None (TOML has",
                  "# no null). expression: a default the notebook computes (papermill can still override it).",
                  "[parameters]"]
        lines += [p.toml_row() for p in self.parameters.values()]
        if self.model:
            lines += ["", "# The model this job registers, and how a challenger is compared with the champion",
                      "[model]", f"name = {v(self.model)}", f"alias = {v(self.alias)}  # the champion's alias"]
            if self.metric:
                lines += [f"metric = {v(self.metric)}", f"direction = {v(self.direction)}  # max: higher is better"]
        lines += ["", "# Small values for a quick smoke test (CI runs the notebook with these)", "[smoke]"]
        lines += [f"{k} = {toml_value(val)}" for k, val in self.smoke.items()]
        lines += ["", "# When monitoring retrains the job: `mlops monitor check NAME` (from cron or the CronJob)",
                  "# evaluates retrain_when over the last `window` of served traffic and, when it fires, retrains.",
                  "# Figures: drift_share, drifted_features, accuracy, f1, roc_auc, rmse, latency_p99_ms, requests...",
                  "[retrain]"]
        for k, val in self.retrain.items():
            lines.append(f"{k} = {v(val)}")
        if self.gate:
            lines += ["", "# What a challenger must show on the evaluation data before it takes the alias, whoever",
                      "# proposes the move (retrain, tune, monitor check). Figures: auc, recall, f1, rmse, ...;",
                      "# baseline (the champion's figure), max_slice_gap(FIGURE, COLUMN), min_slice(FIGURE, COLUMN),",
                      "# demographic_parity_difference(COLUMN), equalized_odds_difference(COLUMN).", "[gate]"]
            lines += [f"{k} = {v(val)}" for k, val in self.gate.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, path: Path) -> "JobSpec":
        from ..config import read_toml

        d = read_toml(path)
        if not d:
            raise NotFound(f"{path} is missing or empty")
        where = f"{path}: "
        try:
            params = {}
            for name, p in (d.get("parameters") or {}).items():
                params[name] = Parameter.from_toml(name, p)
            m = d.get("model") or {}
            spec = cls(name=check_job_name(d.get("name", "")), parameters=params, model=m.get("name"),
                       metric=m.get("metric"), direction=m.get("direction", "max"),
                       alias=m.get("alias", "production"), schedule=d.get("schedule"), image=d.get("image"),
                       source=d.get("source"), workdir=d.get("workdir", "."), smoke=dict(d.get("smoke") or {}),
                       retrain=dict(d.get("retrain") or {}), gate=dict(d.get("gate") or {}), folder=path.parent)
            if spec.direction not in ("max", "min"):
                raise BadInput(f"[model] direction is max or min, not {spec.direction!r}")
            if spec.schedule:
                check_cron(spec.schedule)
            spec.check_params(spec.smoke, "[smoke]: ")
            spec.retrain = check_retrain(spec.retrain, spec)
            from .gate import check_gate

            spec.gate = check_gate(spec.gate)
            if spec.gate and not spec.model:
                raise BadInput("[gate] needs a [model]: the gate decides about the model's alias")
        except BadInput as e:
            raise BadInput(where + str(e)) from None
        return spec


RETRAIN_KEYS = {
    "retrain_when": "the rule `mlops monitor check` evaluates, e.g. \"drift_share > 0.3 or accuracy < 0.8\"",
    "window": "how far back the check looks (default 24h)",
    "reference": "the data version drift is measured against (default: the champion's training data)",
    "threshold": "share of drifted features that makes dataset drift (default 0.5)",
    "grid": "values to retrain over, e.g. { n_estimators = [100, 300] }",
}


def check_retrain(retrain: dict[str, Any], spec: "JobSpec | None" = None) -> dict[str, Any]:
    """Check job.toml's [retrain] table; the rule is parsed here, so a rule that does not parse is
    refused (with the position of the error) by every command that reads the job."""
    from ..config import parse_duration
    from .rule import parse

    out = dict(retrain)
    if "retrain_when" not in out and out.pop("on_drift", False):  # written by earlier versions
        out["retrain_when"] = f"drift_share > {out.pop('drift_threshold', 0.2)}"
    out.pop("on_drift", None)
    out.pop("drift_threshold", None)
    for key in out:
        if key not in RETRAIN_KEYS:
            raise BadInput(f"[retrain] has no key {key!r}; keys: {', '.join(RETRAIN_KEYS)}")
    if "retrain_when" in out:
        parse(out["retrain_when"], "[retrain] retrain_when")
    if "window" in out:
        parse_duration(out["window"], "[retrain] window")
    t = out.get("threshold")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1):
        raise BadInput(f"[retrain] threshold is a share of features, above 0 and at most 1, not {t!r}")
    grid = out.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise BadInput("[retrain] grid is a table of non-empty lists, e.g. { n_estimators = [100, 300] }")
        if spec is not None:
            for name, values in grid.items():
                for value in values:
                    spec.check_params({name: value}, "[retrain] grid: ")
    return out


def find_job(job: str | os.PathLike) -> JobSpec:
    """A job by folder path (holding job.toml) or by name (``jobs/NAME`` under the project)."""
    p = Path(job)
    candidates = [p] if p.is_dir() else []
    if not candidates:
        name = str(job)
        check_job_name(name)
        from ..config import find_root

        root = find_root() or Path.cwd()
        candidates = [root / "jobs" / name]
    for folder in candidates:
        if (folder / JOB_FILE).is_file():
            return JobSpec.from_toml(folder / JOB_FILE)
    raise NotFound(f"no job {job!r}: expected {candidates[0] / JOB_FILE} (make one with mlops promote NOTEBOOK "
                   f"--name {Path(str(job)).name})")


def iter_jobs():
    """The project's jobs (``jobs/*/job.toml``) in name order: ``(folder name, JobSpec or None,
    the problem reading it or None)``."""
    from ..config import find_root

    root = find_root() or Path.cwd()
    for f in sorted((root / "jobs").glob(f"*/{JOB_FILE}")):
        try:
            yield f.parent.name, JobSpec.from_toml(f), None
        except (BadInput, NotFound) as e:
            yield f.parent.name, None, str(e)


def list_jobs():
    """The project's jobs (``jobs/*/job.toml``) as a DataFrame."""
    import pandas as pd

    rows = []
    for folder, spec, problem in iter_jobs():
        if spec is None:
            rows.append({"name": folder, "parameters": "", "model": "", "metric": "", "problem": problem})
            continue
        rows.append({"name": spec.name, "parameters": ", ".join(spec.parameters),
                     "model": f"{spec.model}@{spec.alias}" if spec.model else "",
                     "metric": f"{spec.metric} ({spec.direction})" if spec.metric else "", "problem": ""})
    df = pd.DataFrame(rows, columns=["name", "parameters", "model", "metric", "problem"])
    if not df["problem"].astype(bool).any():
        df = df.drop(columns="problem")
    return df
