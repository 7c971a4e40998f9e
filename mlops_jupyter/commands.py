"""One command grammar for ``%mlops`` in a notebook and ``mlops`` in a terminal.

``%mlops runs ls --last 5`` and ``mlops runs ls --last 5`` are parsed by the same
parser and run by the same handler; the faces differ only in how they show results
(widgets and rich display in a notebook, text in a terminal). Handlers call the core
API and return core objects.
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
from typing import Any, Callable

from .exceptions import BadInput, MlopsError


class CommandError(BadInput):
    """Bad command-line input; carries the usage of the (sub)command."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage.strip()

    def one_line(self, prefix: str = "") -> str:
        """The error and the usage on one line; *prefix* (``%`` in a notebook) goes before `mlops`."""
        usage = " ".join(self.usage.replace("usage:", "").split())
        text = str(self).replace("`mlops ", f"`{prefix}mlops ")
        return text + (f" (usage: {prefix}{usage})" if usage else "")


class HelpRequested(MlopsError):
    """``--help`` was asked for: *text* is the help in the terminal's words, *topic* the command
    path (``["track", "start"]``) for a face that words it its own way."""

    def __init__(self, text: str, topic: list[str] | None = None):
        super().__init__(text)
        self.text = text
        self.topic = topic


def unknown_command(prog: str, word: str, choices: list[str]) -> CommandError:
    """``mlops: unknown command 'rnus'; did you mean `runs`?``: one line, no list of 30 commands."""
    import difflib

    path = prog.split()[1:]  # prog is "mlops" or "mlops runs"
    what = "subcommand" if path else "command"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean `{' '.join([*path, close[0]])}`?"
    elif path:
        hint = f"choose from {', '.join(choices)}"
    else:
        hint = "`mlops help` lists the commands"
    return CommandError(f"{prog}: unknown {what} {word!r}; {hint}")


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str):
        raise CommandError(f"{self.prog}: {message}", self.format_usage())

    def print_help(self, file=None):
        topic = self.prog.split()[1:]
        raise HelpRequested(help_text(topic), topic)

    def _check_value(self, action, value):
        # argparse would answer a typo with every choice ("choose from 'init', 'track', ..."):
        # an unknown (sub)command gets the likely word instead, other choices a hint.
        if action.choices is None or value in action.choices:
            return
        choices = [str(c) for c in action.choices]
        if isinstance(action, argparse._SubParsersAction):
            raise unknown_command(self.prog, str(value), choices)
        import difflib

        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"choose from {', '.join(choices)}"
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}; {hint}")

    def exit(self, status: int = 0, message: str | None = None):
        if status:
            raise CommandError(message or f"{self.prog}: error", self.format_usage())
        raise HelpRequested(message or "")


class Context:
    """What a handler needs from its face: *face* is "magic" or "cli"."""

    # A plain class, not a dataclass: `mlops --help` should not wait for dataclasses (and inspect)
    # to import.
    def __init__(self, face: str, out: Callable[[str], None] = print, shell: Any = None,
                 extra: dict | None = None):
        self.face = face
        self.out = out
        self.shell = shell
        self.extra = {} if extra is None else extra


class Listing:
    """What an ``ls`` command gives the terminal: plain rows, so that listing needs no pandas (a
    notebook gets DataFrames). *kind*: runs, datasets, data_versions, models or model_versions."""

    def __init__(self, kind: str, rows: list[dict]):
        self.kind = kind
        self.rows = rows

    def __repr__(self) -> str:
        return f"Listing({self.kind!r}, {len(self.rows)} rows)"


# -- value parsing --------------------------------------------------------------------
def parse_literal(text: str) -> Any:
    """``0.1`` -> float, ``3`` -> int, ``true`` -> True, ``[1,2]`` -> list, else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if low in ("nan", "inf", "-inf", "+inf"):
        return float(low)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def key_values(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{what} {item!r} is not of the form NAME=VALUE")
        out[key.strip()] = value
    return out


def metric_values(items: list[str]) -> dict[str, float]:
    out = {}
    for key, value in key_values(items, "metric").items():
        v = parse_literal(value)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadInput(f"metric {key!r} must be a number, got {value!r}")
        out[key] = float(v)
    return out


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return n


def _float(text: str, ok: Callable[[float], bool], needs: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not ok(x):
        raise argparse.ArgumentTypeError(f"{text!r} {needs}")
    return x


def _share(text: str) -> float:
    return _float(text, lambda x: 0 <= x <= 1, "should be between 0 and 1")


def _positive_float(text: str) -> float:
    return _float(text, lambda x: x > 0, "must be above 0")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


# -- the grammar --------------------------------------------------------------------------
KERNEL_ONLY = {"track", "log", "param", "tag", "artifact", "watch", "explain", "model_register"}
CLI_ONLY = {"demo"}
_PARSER: list[CommandParser] = []


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", "-p", action="append", metavar="K=V", help="a parameter (repeatable)")
    p.add_argument("--tag", "-t", action="append", metavar="K=V", help="a tag (repeatable)")
    p.add_argument("--notebook", metavar="PATH", help="the notebook path, when it is not found automatically")


def build_parser() -> CommandParser:
    """The grammar of every command (built once per process)."""
    if _PARSER:
        return _PARSER[0]
    # argparse passes each of its strings through gettext, which looks on disk for a catalogue
    # every time: some 200 look-ups here, a third of `mlops --help`. The same text in the same
    # process gets the same translation, so remember it while the grammar is built.
    saved = argparse._
    argparse._ = functools.lru_cache(maxsize=None)(saved)
    try:
        return _build_parser()
    finally:
        argparse._ = saved


def _build_parser() -> CommandParser:
    top = CommandParser(prog="mlops", description="Jupyter-native MLOps. The same commands work as "
                                                  "%mlops in a notebook and mlops in a terminal.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)

    p = sub.add_parser("init", help="create .mlops/ here (or at the git root)")
    p.add_argument("path", nargs="?", help="project folder (default: git root or working directory)")
    p.add_argument("--store", metavar="URL", help="metadata store URL (default: SQLite in .mlops/)")
    p.add_argument("--artifacts", metavar="URL", help="blob store URL (default: .mlops/objects)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="mirror every run to this Weights & Biases project "
                                                             "(in the background; WANDB_MODE is honoured)")

    p = sub.add_parser("track", help="start or stop a tracked run (in a notebook: also %%%%mlops track NAME)")
    tsub = p.add_subparsers(dest="action", metavar="start|stop", parser_class=CommandParser)
    tsub.required = True
    ts = tsub.add_parser("start", help="start a run; it stays active until `track stop`")
    ts.add_argument("name", nargs="?", help="run name (default: the notebook name)")
    _add_run_options(ts)
    tp = tsub.add_parser("stop", help="end the active run")
    tp.add_argument("--status", choices=["finished", "failed", "killed"], default="finished")

    p = sub.add_parser("log", help="log metrics to the active run: %%mlops log loss=0.3 acc=0.9 --step 3")
    p.add_argument("metrics", nargs="+", metavar="K=V", help="metric names and numbers")
    p.add_argument("--step", type=_int, metavar="N", help="the step (default: each metric's last step + 1)")

    p = sub.add_parser("param", help="log params to the active run: %%mlops param lr=0.1")
    p.add_argument("params", nargs="+", metavar="K=V")

    p = sub.add_parser("tag", help="set tags on the active run")
    p.add_argument("tags", nargs="+", metavar="K=V")

    p = sub.add_parser("artifact", help="store a file or folder with the active run")
    p.add_argument("path")
    p.add_argument("--name", help="name to store it under (default: the file name)")

    p = sub.add_parser("runs", help="list, show or remove runs (ls is the default)")
    rsub = p.add_subparsers(dest="action", metavar="ls|show|rm", parser_class=CommandParser)
    rl = rsub.add_parser("ls", help="list runs, newest first")
    rl.add_argument("--last", type=_positive_int, metavar="N", help="only the N newest (after filter and sort)")
    rl.add_argument("--where", metavar="EXPR", help="filter, e.g. \"metrics.acc > 0.8 and params.lr < 0.1\"")
    rl.add_argument("--sort", metavar="KEY", help="sort key, e.g. -metrics.acc (minus: descending)")
    rl.add_argument("--user", metavar="NAME", help="only the runs NAME started (OS user, or JupyterHub user)")
    rs = rsub.add_parser("show", help="one run: params, metrics, charts, artifacts, captured cells")
    rs.add_argument("run", help="run id, id prefix, run name, or 'last'")
    rr = rsub.add_parser("rm", help="delete runs and their metrics (blobs go with `mlops gc`)")
    rr.add_argument("runs", nargs="+", metavar="RUN")
    rr.add_argument("--force", action="store_true", help="also delete runs still marked running")

    p = sub.add_parser("show", help="same as `runs show`")
    p.add_argument("run", help="run id, id prefix, run name, or 'last'")

    p = sub.add_parser("compare", help="params side by side (differences highlighted) and metric curves overlaid")
    p.add_argument("runs", nargs="+", metavar="RUN")

    p = sub.add_parser("watch", help="a live chart of a run's metrics (default: the active run)")
    p.add_argument("run", nargs="?")

    p = sub.add_parser("data", help="version files, folders and DataFrames: add, ls, show, diff, checkout, load, check")
    dsub = p.add_subparsers(dest="action", metavar="add|ls|show|diff|checkout|load|check", parser_class=CommandParser)
    dsub.required = True
    da = dsub.add_parser("add", help="version a file, a folder, or (in a notebook) a DataFrame variable")
    da.add_argument("source", help="a path, or the name of a DataFrame variable in the notebook")
    da.add_argument("--name", "-n", help="dataset name (default: the file, folder or variable name)")
    da.add_argument("--message", "-m", help="what this version is")
    da.add_argument("--output", action="store_true", help="record it as the active run's output (default: input)")
    dl = dsub.add_parser("ls", help="datasets with their latest version, or the versions of one dataset")
    dl.add_argument("name", nargs="?")
    ds = dsub.add_parser("show", help="schema, row count, per-column statistics, files")
    ds.add_argument("ref", help="NAME@vN, NAME@latest or NAME")
    dd = dsub.add_parser("diff", help="what changed between two versions")
    dd.add_argument("a")
    dd.add_argument("b")
    dd.add_argument("--key", help="for tables: compare rows by this key column")
    dc = dsub.add_parser("checkout", help="files back, byte-identical, with their mode bits")
    dc.add_argument("ref")
    dc.add_argument("--to", required=True, metavar="DIR", help="where to write the files")
    dc.add_argument("--force", action="store_true", help="overwrite files that differ from the version")
    dg = dsub.add_parser("load", help="a table version back as a DataFrame")
    dg.add_argument("ref")
    dk = dsub.add_parser("check", help="does a DataFrame (or CSV/Parquet file) fit a version's schema and ranges?")
    dk.add_argument("ref")
    dk.add_argument("frame", help="a DataFrame variable (in a notebook) or a CSV/Parquet path")

    p = sub.add_parser("model", help="register, list, alias and load models: register, ls, show, alias, history, load")
    msub = p.add_subparsers(dest="action", metavar="register|ls|show|alias|history|load|export",
                            parser_class=CommandParser)
    msub.required = True
    mr = msub.add_parser("register", help="save a model variable as the next version of NAME (in a notebook)")
    mr.add_argument("model", help="the model variable")
    mr.add_argument("--name", "-n", required=True, help="model name")
    mr.add_argument("--example", help="a DataFrame or array variable: the input signature is inferred from it")
    mr.add_argument("--alias", help="point this alias at the new version (e.g. staging)")
    mr.add_argument("--pickle", action="store_true",
                    help="store a model skops/XGBoost/LightGBM cannot save as a pickle (loading it runs code)")
    mr.add_argument("--message", "-m", help="what this version is")
    ml = msub.add_parser("ls", help="models with their latest version and aliases, or the versions of one model")
    ml.add_argument("name", nargs="?")
    mw = msub.add_parser("show", help="one version: signature, metrics, datasets, aliases, explanations")
    mw.add_argument("ref", help="NAME@vN, NAME@ALIAS, NAME or models:/NAME/N")
    ma = msub.add_parser("alias", help="point an alias at a version (the move is logged): model alias churn@v3 production")
    ma.add_argument("ref")
    ma.add_argument("alias")
    ma.add_argument("--delete", action="store_true", help="remove the alias instead (ref names the model)")
    mh = msub.add_parser("history", help="every alias move of a model: when, from which version to which, who")
    mh.add_argument("name")
    mo = msub.add_parser("load", help="load a version (in a notebook: returns the model; here: checks it loads)")
    mo.add_argument("ref")
    mo.add_argument("--pickle", action="store_true", help="allow loading a pickle (runs code from the file)")
    mo.add_argument("--to", metavar="FILE", help="also write the saved model file here")
    mx = msub.add_parser("export", help="write a version as ONNX for other runtimes: model export churn@v3 --format onnx")
    mx.add_argument("ref")
    mx.add_argument("--format", default="onnx", choices=["onnx"], help="file format (default onnx)")
    mx.add_argument("--output", "-o", metavar="FILE", help="where to write it (default NAME-vN.onnx here)")
    mx.add_argument("--quantize", action="store_true", help="dynamic int8 quantization of the weights")

    p = sub.add_parser("explain", help="SHAP or LIME explanations of a model on a frame, as a widget (in a notebook)")
    p.add_argument("model", help="a model variable, or a registered model (NAME@ALIAS, NAME@vN)")
    p.add_argument("frame", help="a DataFrame/array variable, or a dataset version (NAME@vN)")
    p.add_argument("--method", choices=["shap", "lime"], default="shap")
    p.add_argument("--rows", type=_positive_int, default=1000, help="explain at most this many rows (default 1000)")
    p.add_argument("--row", type=_int, help="the row the per-row views start on (default 0)")
    p.add_argument("--background", help="a frame variable for the background sample (default: 100 rows of the frame)")
    p.add_argument("--class", dest="class_", metavar="CLASS", help="the class the row views start on")
    p.add_argument("--pickle", action="store_true", help="allow loading a registered pickle model")
    p.add_argument("--no-cache", action="store_true", help="compute again even if the store has this explanation")

    p = sub.add_parser("serve", help="serve a registered model over HTTP: serve churn@production --port 8080 "
                                     "(in a notebook: in the background; `serve stop` ends it)")
    p.add_argument("ref", help="NAME@ALIAS or NAME@vN (or `stop`)")
    p.add_argument("--port", type=_positive_int, help="port to listen on (default 8080); with `stop`: "
                                                      "which server (default: all)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (other than 127.0.0.1 needs a token)")
    p.add_argument("--token-file", help="file holding the bearer token (else $MLOPS_SERVE_TOKEN)")
    p.add_argument("--ab", help="split traffic by weight: churn@v3:0.9,churn@v4:0.1")
    p.add_argument("--tls-cert", help="certificate file: serve HTTPS")
    p.add_argument("--tls-key", help="key file for --tls-cert")
    p.add_argument("--pickle", action="store_true", help="allow serving a model stored as a pickle")
    p.add_argument("--workers", type=_positive_int, help="worker processes (mlops serve only; default 1)")
    p.add_argument("--log-sample", type=_share, default=1.0, metavar="SHARE",
                   help="share of requests logged to the store for monitoring (default 1: all; 0: none)")
    p.add_argument("--runtime", choices=["native", "onnx"], default="native",
                   help="native: the model's own library (default); onnx: convert with skl2onnx, run on onnxruntime")
    p.add_argument("--quantize", action="store_true", help="with --runtime onnx: dynamic int8 quantization")
    p.add_argument("--reload-alias", type=_positive_float, nargs="?", const=2.0, metavar="SECONDS",
                   help="follow the alias: when it moves, load the new version and switch without dropping "
                        "requests (checked every 2 s, or every SECONDS)")

    p = sub.add_parser("promote", help="turn a notebook into a parameterized job folder jobs/NAME/ (papermill, "
                                       "Dockerfile, k8s, CI): promote [NOTEBOOK] --name NAME [--model M --metric X]")
    p.add_argument("notebook", nargs="?", help="the notebook (in a notebook: default, this one, as last saved)")
    p.add_argument("--name", required=True, help="the job's name (folder jobs/NAME, image mlops/NAME)")
    p.add_argument("--model", help="the registered model the job retrains (omit for a plain batch job)")
    p.add_argument("--metric", help="the metric a challenger must beat the champion on, e.g. auc")
    p.add_argument("--direction", choices=["max", "min"], help="is a higher metric better (max) or lower (min)? "
                                                               "default: from the name (loss, rmse...: min)")
    p.add_argument("--alias", default="production", help="the champion's alias (default production)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a parameter and its default (repeatable)")
    p.add_argument("--smoke", action="append", metavar="NAME=VALUE", help="a small value for smoke tests (repeatable)")
    p.add_argument("--schedule", metavar="CRON", help="when the CronJob retrains, e.g. '0 3 * * 0'")
    p.add_argument("--image", help="image name (default mlops/NAME:VERSION)")
    p.add_argument("--retrain-when", metavar="RULE", help="when `mlops monitor check` retrains, e.g. "
                                                       "\"drift_share > 0.3 or accuracy < 0.8\" (default: drift_share > 0.3)")
    p.add_argument("--force", action="store_true", help="overwrite a job folder edited by hand")

    p = sub.add_parser("job", help="promoted jobs: run, build, serve, ls, show")
    jsub = p.add_subparsers(dest="action", metavar="run|build|serve|ls|show", parser_class=CommandParser)
    jsub.required = True
    jr = jsub.add_parser("run", help="one tracked execution with papermill: job run NAME -p n_estimators 300")
    jr.add_argument("job", help="a job name (jobs/NAME) or folder")
    _job_value_arguments(jr, "")
    jr.add_argument("--smoke", action="store_true", help="with the small values in job.toml's [smoke]")
    jr.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="limit per cell")
    jb = jsub.add_parser("build", help="build the job's container image (docker or podman)")
    jb.add_argument("job")
    jb.add_argument("--engine", choices=["docker", "podman"], help="default: whichever is installed")
    jb.add_argument("--wheelhouse", action="store_true", help="download every wheel first: the build needs no network")
    jb.add_argument("--base", metavar="IMAGE", help="base image (default python:3.11-slim)")
    jb.add_argument("--tag", metavar="IMAGE", help="image name (default: job.toml's image)")
    jv = jsub.add_parser("serve", help="serve the job's model at its alias, following the alias when it moves")
    jv.add_argument("job")
    jv.add_argument("--port", type=_positive_int, default=8080)
    jv.add_argument("--host", default="127.0.0.1")
    jv.add_argument("--token-file", help="file holding the bearer token (else $MLOPS_SERVE_TOKEN)")
    jsub.add_parser("ls", help="the jobs of this project")
    js = jsub.add_parser("show", help="a job's parameters, model rule and recent executions")
    js.add_argument("job")

    p = sub.add_parser("retrain", help="run a job over a grid in parallel; the best becomes the challenger and "
                                       "takes the alias only if it beats the champion")
    p.add_argument("job", help="a job name (jobs/NAME) or folder")
    p.add_argument("--grid", nargs="+", action="extend", metavar="NAME=V1,V2", help="values to try (every combination)")
    _job_value_arguments(p, " for every execution")
    p.add_argument("--workers", type=_positive_int, help="executions at once (default: the number of cores)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", help="run on a Dask cluster: tcp://HOST:8786")
    p.add_argument("--smoke", action="store_true", help="with the small values in job.toml's [smoke]")
    p.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="limit per cell")

    p = sub.add_parser("drift", help="data drift per feature: drift train@v2 serving:churn@production --since 24h "
                                     "(each side: a data version, serving:MODEL@ALIAS, a CSV/Parquet file, or in "
                                     "a notebook a DataFrame variable)")
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--columns", metavar="A,B,C", help="compare only these columns")
    p.add_argument("--threshold", type=_share, default=0.5, metavar="SHARE",
                   help="the dataset drifts when at least this share of features drifts (default 0.5)")
    p.add_argument("--method", metavar="M", help="the test deciding drift: wasserstein, jensenshannon, psi, ks, chi2 "
                                                 "(or numeric=ks,categorical=chi2,COLUMN=psi)")
    p.add_argument("--feature-threshold", action="append", metavar="METHOD=X",
                   help="a method's threshold, e.g. psi=0.25 or ks=0.01 (repeatable)")
    p.add_argument("--since", help="serving sides: from (24h, 7d, or an ISO date)")
    p.add_argument("--until", help="serving sides: until (default now)")
    p.add_argument("--model", help="link the report to this model version (NAME@ALIAS, NAME@vN)")
    p.add_argument("--no-save", action="store_true", help="do not store the report")

    p = sub.add_parser("monitor", help="a served model's traffic, latency, accuracy and drift over time: monitor "
                                       "churn@production --since 7d; monitor check JOB evaluates the job's "
                                       "retrain rule and retrains when it fires")
    p.add_argument("ref", help="NAME@ALIAS, NAME@vN or NAME (or `check`)")
    p.add_argument("job", nargs="?", help="with `check`: the job whose rule to evaluate")
    p.add_argument("--since", help="from (default 7d; with check: the job's [retrain] window)")
    p.add_argument("--until", help="until (default now)")
    p.add_argument("--window", help="window size for the charts (default: about 24 windows over the span)")
    p.add_argument("--dry-run", action="store_true", help="with check: decide and store, but do not retrain")
    p.add_argument("--workers", type=_positive_int, help="with check: executions at once when retraining")

    p = sub.add_parser("lineage", help="data -> run -> data/model around a dataset version, a run or a model version")
    p.add_argument("ref", help="NAME@vN, a run, or models:/NAME/N")

    p = sub.add_parser("wandb", help="the Weights & Biases mirror: wandb sync [RUN...] pushes what was not "
                                     "mirrored; wandb status lists what was")
    wsub = p.add_subparsers(dest="action", metavar="sync|status", parser_class=CommandParser)
    wsub.required = True
    ws = wsub.add_parser("sync", help="push runs, data and models not yet mirrored (or the runs named) now")
    ws.add_argument("runs", nargs="*", metavar="RUN")
    wsub.add_parser("status", help="what was mirrored, what failed and why")

    p = sub.add_parser("export", help="export runs and registered models: export mlflow --to URI [RUN...]")
    esub = p.add_subparsers(dest="action", metavar="mlflow", parser_class=CommandParser)
    esub.required = True
    ex = esub.add_parser("mlflow", help="write runs (params, metric histories, tags, artifacts) and registered "
                                        "models with aliases into an MLflow tracking store; again: only what changed")
    ex.add_argument("runs", nargs="*", metavar="RUN", help="runs to export (default: all)")
    ex.add_argument("--to", required=True, metavar="URI", help="MLflow tracking URI: sqlite:///mlflow.db, http://... "
                                                               "(a file: store needs MLFLOW_ALLOW_FILE_STORE=true)")
    ex.add_argument("--experiment", help="MLflow experiment (default: the project folder's name)")
    ex.add_argument("--no-models", action="store_true", help="runs only, no registered models")

    p = sub.add_parser("import", help="bring runs in from another tool: import mlflow --from URI")
    isub = p.add_subparsers(dest="action", metavar="mlflow", parser_class=CommandParser)
    isub.required = True
    im = isub.add_parser("mlflow", help="import MLflow runs (params, metric histories, tags, artifacts); "
                                        "runs imported before are skipped")
    im.add_argument("runs", nargs="*", metavar="RUN_ID", help="MLflow run ids (default: every run)")
    im.add_argument("--from", dest="source", required=True, metavar="URI", help="MLflow tracking URI")
    im.add_argument("--experiment", action="append", help="only these experiments (repeatable)")

    p = sub.add_parser("audit", help="the audit log: alias moves, deletions, promotions, access grants (who, "
                                     "when, what, from, to)")
    p.add_argument("--action", help="only this action (alias.move) or family (alias)")
    p.add_argument("--user", metavar="NAME", help="only what NAME did")
    p.add_argument("--since", help="from (24h, 7d, or an ISO date)")
    p.add_argument("--last", type=_positive_int, metavar="N", help="only the N newest entries")

    p = sub.add_parser("access", help="who may do what on the shared PostgreSQL store: access grant USER "
                                      "viewer|editor|admin, access revoke USER, access ls")
    asub = p.add_subparsers(dest="action", metavar="grant|revoke|ls", parser_class=CommandParser)
    asub.required = True
    ag = asub.add_parser("grant", help="make USER a viewer (reads), editor (logs runs and data, moves unprotected "
                                       "aliases) or admin (also protected aliases, deletions, gc, grants)")
    ag.add_argument("user")
    ag.add_argument("role", choices=["viewer", "editor", "admin"])
    ag.add_argument("--password-env", metavar="VAR", help="set USER's database password from this environment "
                                                          "variable (never on the command line)")
    ar = asub.add_parser("revoke", help="take USER's access away")
    ar.add_argument("user")
    asub.add_parser("ls", help="users and their roles")

    p = sub.add_parser("key", help="the encryption-at-rest key: key generate [--out FILE], key id")
    ksub = p.add_subparsers(dest="action", metavar="generate|id", parser_class=CommandParser)
    ksub.required = True
    kg = ksub.add_parser("generate", help="a new random 256-bit key: into FILE (mode 600, never overwritten), "
                                          "or printed in a terminal")
    kg.add_argument("--out", metavar="FILE", help="write the key here (then MLOPS_ENCRYPTION_KEY_FILE=FILE or "
                                                  "[encryption] key_file)")
    ksub.add_parser("id", help="the id of the key this project uses (compare with teammates'; the key itself "
                               "is never shown)")

    p = sub.add_parser("migrate", help="copy a local project into a shared store: migrate --from .mlops --to "
                                       "postgresql+psycopg://... --artifacts s3://...; again: a no-op")
    p.add_argument("--from", dest="source", default=".mlops", metavar="PATH", help="the local project (default .mlops)")
    p.add_argument("--to", required=True, metavar="URL", help="the shared metadata store's URL")
    p.add_argument("--artifacts", metavar="URL", help="where the blobs go (default: MLOPS_ARTIFACTS_URL)")

    p = sub.add_parser("gc", help="delete blobs that nothing references")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")

    sub.add_parser("fsck", help="verify every blob; exit code 1 if any is corrupted or missing")

    p = sub.add_parser("help", help="show help for a command")
    p.add_argument("topic", nargs="*")

    sub.add_parser("version", help="print the version")

    p = sub.add_parser("demo", help="the main job end to end through the example notebooks (quickstart, a "
                                    "promoted retraining job, monitoring), in a folder with its own store "
                                    "(terminal only)")
    p.add_argument("--dir", default="mlops-demo", help="folder to run the demo in (default: ./mlops-demo)")
    p.add_argument("--grid", nargs="+", action="extend", metavar="NAME=V1,V2",
                   help="the retraining job's grid (default: max_depth=3,6)")
    p.add_argument("--workers", type=_positive_int, help="retraining executions at once (default 2)")

    _PARSER.append(top)
    return top


_VALUE_FLAGS = {"--sort", "--where", "--step"}


def parse(argv: list[str]) -> argparse.Namespace:
    argv = list(argv)
    # `--sort -metrics.acc`: a value that starts with a minus is still the flag's value.
    i = 0
    while i < len(argv) - 1:
        if argv[i] in _VALUE_FLAGS and argv[i + 1].startswith("-") and argv[i + 1] not in ("-h", "--help"):
            argv[i:i + 2] = [f"{argv[i]}={argv[i + 1]}"]
        i += 1
    # `runs` alone, or with options only, lists; `runs lss` is a typo, not options for ls.
    if argv and argv[0] == "runs" and (len(argv) == 1 or (argv[1].startswith("-") and argv[1] not in ("-h", "--help"))):
        argv.insert(1, "ls")
    if not argv:  # `%mlops` alone: the short overview, without building the parser
        return argparse.Namespace(command="help", topic=None)
    ns = build_parser().parse_args(argv)
    if ns.command is None:
        ns.command = "help"
        ns.topic = []
    return ns


# -- help -----------------------------------------------------------------------------------
# `%mlops` alone: what a newcomer needs first, by what it is for. A row: (what for, the
# notebook form, the terminal form or None when it needs a kernel, what it does).
OVERVIEW = (
    ("Track", "track start NAME", None, "start a run (%%mlops track NAME: the cell is the run)"),
    ("", "log loss=0.3 acc=0.9", None, "log metrics (starts a run if none is active)"),
    ("", "track stop", None, "end the run"),
    ("Runs", "runs", "runs", "every run as a table: --where, --sort, --last"),
    ("", "show RUN", "show RUN", "one run: params, metrics, charts, cells"),
    ("", "compare RUN RUN...", "compare RUN RUN...", "params side by side, metric curves overlaid"),
    ("Version", "data add df --name NAME", "data add PATH --name NAME", "a file, folder or DataFrame"),
    ("", "model register clf --name NAME", None, "a trained model"),
    ("Automate", "promote --name NAME", "promote NOTEBOOK --name NAME", "the notebook as a retraining job"),
)
# `%mlops help`: every command, by area; administration apart. A command missing here is
# listed under "Other" (and a test fails).
HELP_GROUPS = (
    ("Track experiments", ("track", "log", "param", "tag", "artifact", "watch")),
    ("Explore runs", ("runs", "show", "compare", "lineage")),
    ("Data", ("data",)),
    ("Models", ("model", "explain", "serve")),
    ("Jobs", ("promote", "job", "retrain")),
    ("Monitoring", ("drift", "monitor")),
    ("Other tools", ("wandb", "export", "import")),
    ("This project", ("init", "demo", "help", "version")),
    ("Administration (shared stores, keys, upkeep)", ("access", "key", "migrate", "gc", "fsck", "audit")),
)
# Forms a command has only as a cell magic, shown with its help.
CELL_FORMS = {"track": ("track start", "the cell is one run: finished when the cell ends, failed if it raises, "
                                       "killed on interrupt; the cell's last expression is its value")}


def _prefix(face: str) -> str:
    return "%mlops " if face == "magic" else "mlops "


def _width(face: str) -> int:
    if face == "magic":
        return 100
    import shutil

    return max(60, min(120, shutil.get_terminal_size((100, 24)).columns))


def _wrap(first: str, text: str, indent: int, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=" " * indent) or [first.rstrip()]


def overview(face: str = "magic") -> str:
    """What ``%mlops`` (or ``mlops``) alone prints: the few commands to start with.

    Args:
        face: ``magic`` or ``cli``; commands that need a kernel keep their ``%mlops`` form in a terminal.
    """
    prefix = _prefix(face)
    rows = [(group, f"{prefix}{cli}" if face != "magic" and cli else f"%mlops {magic}", what)
            for group, magic, cli, what in OVERVIEW]
    w1, w2 = (max(len(r[i]) for r in rows) for i in (0, 1))
    lines = ["mlops-jupyter: experiments, data and models, tracked from notebook cells.", ""]
    if face != "magic":
        lines[1:1] = ["(%mlops commands run in a notebook or IPython after %load_ext mlops_jupyter)"]
    lines += [f"  {g:<{w1}}  {form:<{w2}}  {what}" for g, form, what in rows]
    lines += ["", f"{prefix}help lists every command; {prefix}help COMMAND shows its options "
                  f"(e.g. {prefix}help track)."]
    return "\n".join(lines)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, CommandParser]]:
    """A parser's subcommands in the order they were added: name -> (one-line help, parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            # The one-line helps live on argparse's pseudo-actions; %% is argparse's escaping.
            return {a.dest: ((a.help or "").replace("%%", "%"), action.choices[a.dest])
                    for a in action._choices_actions}
    return {}


def _usage(parser: argparse.ArgumentParser, prefix: str, width: int, form: str | None = None) -> list[str]:
    """``usage: %mlops track start [--param K=V] ... [name]`` wrapped, without ``[-h]``."""
    prog = parser.prog.split()  # ["mlops", "track", "start"]
    words = parser.format_usage().split()[1 + len(prog):]  # after "usage:" and the prog
    head = form or (prefix + " ".join(prog[1:])).strip()
    return _wrap("usage: ", " ".join([head, *(w for w in words if w != "[-h]")]), 8, width)


def _options(parser: argparse.ArgumentParser, width: int) -> list[str]:
    """One line per argument: how it is written, what it is for, its default."""
    # argparse's own formatter words each argument (metavars, %(default)s); only its layout,
    # a page per parser, is not what `help track` needs.
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        text = formatter._expand_help(action) if action.help else ""
        default = action.default
        if default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text = f"{text} (default: {default})".strip()
        rows.append((formatter._format_action_invocation(action), text))
    if not rows:
        return []
    w = min(max(len(inv) for inv, _ in rows), 26)
    out = []
    for inv, text in rows:
        out += _wrap(f"    {inv:<{w}}  ", text, w + 6, width)
    return out


def _resolve(path: list[str]) -> tuple[str, argparse.ArgumentParser]:
    """The one-line help and the parser of a command path; did-you-mean on a typo."""
    parser: argparse.ArgumentParser = build_parser()
    summary = ""
    for word in path:
        subs = _subcommands(parser)
        if word not in subs:
            raise unknown_command(parser.prog, word, list(subs))
        summary, parser = subs[word]
    return summary, parser


def help_text(topic: list[str] | None = None, face: str = "cli") -> str:
    """``mlops help [COMMAND [SUBCOMMAND]]``: every command by area, or one command's options.

    Args:
        topic: the command path (``[]``: every command; ``["track"]``: its subcommands, each
            with its options, and its cell form).
        face: ``magic`` or ``cli``: which prefix the examples and usages carry.

    Raises:
        CommandError: an unknown command or subcommand (with the likely word).
    """
    prefix, width = _prefix(face), _width(face)
    if not topic:
        return _grouped_help(prefix, width)
    path = list(topic)
    summary, parser = _resolve(path)
    lines = _wrap(f"{prefix}{' '.join(path)}: ", summary, 2, width) if summary else []
    subs = _subcommands(parser)
    for name, (sub_summary, sub) in subs.items() or [(None, ("", parser))]:
        lines += ["", *_usage(sub, prefix, width)]
        lines += _wrap("  ", sub_summary, 2, width) if name else []
        lines += _options(sub, width)
    cell = CELL_FORMS.get(" ".join(path))
    if cell:
        start, what = cell
        lines += ["", *_usage(_resolve(start.split())[1], prefix, width, form=f"%%mlops {path[0]}"),
                  *_wrap("  ", f"in a notebook: {what}", 2, width)]
    return "\n".join(lines).strip("\n")


def _grouped_help(prefix: str, width: int) -> str:
    commands = _subcommands(build_parser())
    listed = {name for _, names in HELP_GROUPS for name in names}
    groups = [*HELP_GROUPS, ("Other", tuple(n for n in commands if n not in listed))]
    w = max(len(n) for n in commands)
    lines = [f"usage: {prefix}COMMAND [ARGS]  (the same commands work as %mlops in a notebook and mlops in a "
             "terminal)"]
    for title, names in groups:
        names = [n for n in names if n in commands]
        if names:
            lines += ["", title]
            for name in names:
                lines += _wrap(f"  {name:<{w}}  ", commands[name][0], w + 4, width)
    lines += ["", f"{prefix}help COMMAND shows a command's subcommands and options (e.g. {prefix}help track)."]
    return "\n".join(lines)


# -- handlers ---------------------------------------------------------------------------------
def _store():
    from .store import open_store

    return open_store()


def run_command(ns: argparse.Namespace, ctx: Context) -> Any:
    """Run a parsed command; returns a core object for the face to show (or None)."""
    key = (ns.command if ns.command not in ("track", "runs", "data", "model", "job", "wandb", "export", "import",
                                            "access", "key")
           else f"{ns.command}_{ns.action or 'ls'}")
    handler = HANDLERS[key]
    return handler(ns, ctx)


def _init(ns, ctx):
    from .config import init_project, settings
    from .store import close_store

    root = init_project(ns.path, ns.store, ns.artifacts, wandb=ns.wandb)
    close_store()
    cfg = settings(root)
    from .store import open_store

    open_store(cfg)
    from .tracking.capture import redact_urls

    ctx.out(f"mlops project in {root / '.mlops'} (metadata: {redact_urls(cfg.store_url)}; "
            f"blobs: {redact_urls(cfg.artifacts_url)})")
    if ns.store and redact_urls(ns.store) != ns.store:
        ctx.out("the password was not written to .mlops/config.toml: this process passes it in PGPASSWORD; "
                "elsewhere set PGPASSWORD or add it to ~/.pgpass (libpq reads both), or set MLOPS_STORE_URL")
    from .integrations import wandb_mirror

    project = wandb_mirror.target(cfg)
    if project:
        mode = os.environ.get("WANDB_MODE", "online")
        ctx.out(f"runs are mirrored to W&B {project} (WANDB_MODE={mode}; in the background: W&B never blocks a cell)")
    return None


def _track_start(ns, ctx):
    from .tracking.run import start_run

    params = {k: parse_literal(v) for k, v in key_values(ns.param, "param").items()}
    tags = key_values(ns.tag, "tag")
    run = start_run(ns.name, params=params, tags=tags, notebook=ns.notebook)
    parent = f", child of {run.parent_id[:8]}" if run.parent_id else ""
    ctx.out(f"run {run.name!r} ({run.run_id[:8]}{parent}) started; end it with %mlops track stop")
    return run


def _track_stop(ns, ctx):
    from .tracking.run import active_run

    run = active_run()
    if run is None:
        raise BadInput("no active run to stop (start one with %mlops track start NAME)")
    run.end(ns.status)
    ctx.out(f"run {run.name!r} ({run.run_id[:8]}) {ns.status}")
    return None


# log, param, tag and artifact go through the fluent API, as mj.log does: with no active run
# one named after the notebook is started (and the user told once), but only after every
# value has been checked, so bad input starts no run.
def _log(ns, ctx):
    from .tracking.run import log_metrics

    log_metrics(metric_values(ns.metrics), ns.step)


def _param(ns, ctx):
    from .tracking.run import log_params

    log_params({k: parse_literal(v) for k, v in key_values(ns.params, "param").items()})


def _tag(ns, ctx):
    from .tracking.run import set_tags

    set_tags(key_values(ns.tags, "tag"))


def _artifact(ns, ctx):
    from .tracking.run import active_run, log_artifact

    digest = log_artifact(ns.path, ns.name)
    ctx.out(f"stored {ns.path} with run {active_run().run_id[:8]} ({digest[:12]})")


def _quick_store_url() -> str:
    """The project's store URL, for the terminal's quick listings (store.quickread)."""
    from .config import settings

    return settings().store_url


def _runs_ls(ns, ctx):
    if ctx.face == "cli":
        from .store import quickread

        rows = None if ns.where or ns.sort else quickread.runs(_quick_store_url(), ns.last, ns.user)
        if rows is None:  # a filter, a sort, another database, a run to mark crashed: the usual way
            from .store import open_store
            from .tracking.query import search_runs

            rows = search_runs(open_store(), ns.where, ns.sort, ns.last, user=ns.user)
        return Listing("runs", rows)
    from .tracking.query import runs

    return runs(where=ns.where, order_by=ns.sort, limit=ns.last, user=ns.user)


def _runs_show(ns, ctx):
    from .tracking.query import get_run

    return get_run(ns.run)


def _runs_rm(ns, ctx):
    store = _store()
    ids = [store.meta.resolve(r) for r in ns.runs]
    running = [i for i in ids if store.meta.run_row(i)["status"] == "running"]
    if running and not ns.force:
        raise BadInput(f"run {running[0][:8]} is still running; stop it first or pass --force")
    n = store.meta.delete_runs(ids)
    ctx.out(f"deleted {n} run{'s' if n != 1 else ''}; `mlops gc` frees their blobs")


def _compare(ns, ctx):
    from .tracking.query import compare

    return compare(ns.runs)


def _watch(ns, ctx):
    from .tracking.run import active_run

    store = _store()
    if ns.run:
        run_id = store.meta.resolve(ns.run)
    else:
        run = active_run()
        if run is None:
            raise BadInput("no active run to watch; name one: %mlops watch RUN")
        run_id = run.run_id
    ctx.extra["watch"] = run_id
    return None


def _namespace_value(ctx: Context, word: str):
    """In a notebook, a bare identifier that names a variable means that variable."""
    if ctx.shell is not None and word.isidentifier() and word in ctx.shell.user_ns and not os.path.exists(word):
        return ctx.shell.user_ns[word], True
    return word, False


def _data_add(ns, ctx):
    from . import data

    obj, is_var = _namespace_value(ctx, ns.source)
    if not is_var and ctx.shell is not None and ns.source.isidentifier() and not os.path.exists(ns.source):
        raise BadInput(f"{ns.source!r} is neither a variable in the notebook nor a path")
    name = ns.name or (ns.source if is_var else None)
    v = data.add(obj, name=name, message=ns.message, output=ns.output,
                 source=f"variable {ns.source}" if is_var else None)
    if v.unchanged:
        ctx.out(f"unchanged, still {v.ref} ({v.digest[:12]})")
    else:
        ctx.out(f"added {v}")
    return v if ctx.face == "magic" and not v.unchanged else None


def _data_ls(ns, ctx):
    from . import data

    if ctx.face == "cli":
        from .data import listing
        from .store import quickread

        url = _quick_store_url()
        if ns.name:
            rows = quickread.dataset_versions(url, ns.name)
            return Listing("data_versions", [listing.version_record(r) for r in rows] if rows is not None
                           else data.version_records(ns.name))
        rows = quickread.datasets(url)
        return Listing("datasets", [listing.dataset_record(r) for r in rows] if rows is not None
                       else data.dataset_records())
    return data.versions(ns.name) if ns.name else data.datasets()


def _data_show(ns, ctx):
    from . import data

    return data.show(ns.ref)


def _data_diff(ns, ctx):
    from . import data

    return data.diff(ns.a, ns.b, key=ns.key)


def _data_checkout(ns, ctx):
    from . import data

    report = data.checkout(ns.ref, ns.to, force=ns.force)
    ctx.out(str(report))


def _data_load(ns, ctx):
    from . import data

    return data.load(ns.ref)


def _data_check(ns, ctx):
    from . import data

    obj, _ = _namespace_value(ctx, ns.frame)
    report = data.check(ns.ref, obj)
    if ctx.face == "cli" and not report.ok:
        ctx.extra["exit_code"] = 1
    return report


def _variable(ctx: Context, word: str | None, what: str):
    if word is None:
        return None
    value, is_var = _namespace_value(ctx, word)
    if not is_var:
        raise BadInput(f"{word!r} is not a variable in the notebook ({what})")
    return value


def _model_register(ns, ctx):
    from . import models

    model = _variable(ctx, ns.model, "the model to register")
    example = _variable(ctx, ns.example, "--example")
    if ns.pickle:
        ctx.out("warning: stored as a pickle; loading it will run code from the file (load with --pickle)")
    v = models.register(model, name=ns.name, example=example, alias=ns.alias, pickle=ns.pickle,
                        message=ns.message)
    if v.staged_for:
        ctx.out(f"staged {v.name} as a candidate of job {v.staged_for}: the batch registers its best execution's "
                f"model{' and decides about @' + ns.alias if ns.alias else ''}")
    else:
        ctx.out(f"registered {v}")
    return v if ctx.face == "magic" else None


def _model_ls(ns, ctx):
    from . import models

    if ctx.face == "cli":
        from .models import listing
        from .store import quickread

        url = _quick_store_url()
        if ns.name:
            rows = quickread.model_versions(url, ns.name)
            return Listing("model_versions", [listing.version_record(r, al) for r, al in rows] if rows is not None
                           else models.version_records(ns.name))
        rows = quickread.models(url)
        return Listing("models", [listing.model_record(r, al) for r, al in rows] if rows is not None
                       else models.model_records())
    return models.versions(ns.name) if ns.name else models.ls()


def _model_show(ns, ctx):
    from . import models

    return models.get(ns.ref)


def _model_alias(ns, ctx):
    from . import models
    from .models.registry import Registry

    reg = Registry(_store())
    if ns.delete:
        name = models.parse_model_ref(ns.ref)[0]
        prev = reg.delete_alias(name, ns.alias)
        ctx.out(f"{name}: alias {ns.alias} removed (it pointed to v{prev})")
        return None
    v, prev = reg.set_alias(ns.ref, ns.alias)
    moved = f" (was v{prev})" if prev is not None and prev != v.version else ""
    ctx.out(f"{v.name}@{ns.alias} -> v{v.version}{moved}")
    return None


def _model_export(ns, ctx):
    from . import models

    import os

    path, note = models.export_with_note(ns.ref, format=ns.format, path=ns.output, quantize=ns.quantize)
    ctx.out(f"wrote {path} ({os.path.getsize(path):,} bytes; {note}); ONNX Runtime predicts as the model does "
            "on its signature example")
    return None


def _model_history(ns, ctx):
    from . import models

    return models.history(ns.name)


def _model_load(ns, ctx):
    from .models.registry import Registry

    reg = Registry(_store())
    v = reg.get(ns.ref)
    model = reg.load_version(v, allow_pickle=ns.pickle)
    if ns.to:
        from pathlib import Path

        from .store.blobs import _write_atomic

        _write_atomic(Path(ns.to), [reg.store.blobs.get_bytes(v.digest)])
        ctx.out(f"wrote {v.ref} ({v.flavor}, {v.size:,} bytes) to {ns.to}")
    if ctx.face == "magic":
        return model
    ctx.out(f"{v.ref} loads: {type(model).__module__}.{type(model).__name__}")
    return v


def _explain(ns, ctx):
    from .models.explain import explain

    model, is_var = _namespace_value(ctx, ns.model)
    if not is_var and ns.model.isidentifier() and "@" not in ns.model:
        from .models.registry import Registry

        try:
            Registry(_store()).get(ns.model)
        except MlopsError:
            raise BadInput(f"{ns.model!r} is neither a model variable in the notebook nor a registered model") from None
    frame, is_frame = _namespace_value(ctx, ns.frame)
    if not is_frame and "@" not in ns.frame:
        raise BadInput(f"{ns.frame!r} is neither a frame variable in the notebook nor a dataset version (NAME@vN)")
    background = _variable(ctx, ns.background, "--background")
    return explain(model, frame, method=ns.method, rows=ns.rows, row=ns.row, background=background,
                   class_=ns.class_, cache=not ns.no_cache, pickle=ns.pickle, out=ctx.out)


def _serve(ns, ctx):
    from .serving import server

    if ns.ref == "stop":
        stopped = server.stop_background(ns.port)
        ctx.out("stopped " + ", ".join(stopped) if stopped else "no server was running")
        return None
    port = ns.port or 8080
    refs = server.parse_ab(ns.ab) if ns.ab else [(ns.ref, 1.0)]
    token = server.read_token(ns.token_file)
    if bool(ns.tls_cert) != bool(ns.tls_key):
        raise BadInput("--tls-cert and --tls-key go together")
    if ns.quantize and ns.runtime != "onnx":
        raise BadInput("--quantize applies to --runtime onnx")
    if ns.workers and ctx.face == "magic":
        raise BadInput("--workers is for `mlops serve` in a terminal; in a notebook the server runs on a thread of "
                       "the kernel")
    from .models.registry import Registry, parse_model_ref

    reg = Registry(_store())
    for ref, _ in refs:
        reg.get(ref)  # an unknown ref is one line now, not a failed start-up later
        if ns.reload_alias and parse_model_ref(ref)[1] is not None:
            raise BadInput(f"--reload-alias follows aliases; {ref} names a fixed version")
    kw = dict(tls_cert=ns.tls_cert, tls_key=ns.tls_key, allow_pickle=ns.pickle, log_sample=ns.log_sample,
              runtime=ns.runtime, quantize=ns.quantize, reload_alias=ns.reload_alias)
    if ns.runtime == "onnx":  # convert and check now: a model that cannot be served is one line, not a dead server
        from .serving.app import Settings, load_one

        for ref, w in refs:
            s = load_one(reg, Settings(refs=refs, allow_pickle=ns.pickle, runtime="onnx", quantize=ns.quantize),
                         ref, w)
            ctx.out(f"{s.ref}: {s.predictor.note}; predictions match the original on the signature example")
    note = "" if token else " (no token: listening on 127.0.0.1 only)"
    if ctx.face == "magic":
        bg = server.start_background(refs, ns.host, port, token, **kw)
        ctx.out(f"serving {', '.join(r for r, _ in refs)} at {bg.url}{note}; stop with %mlops serve stop")
        return None
    scheme = "https" if ns.tls_cert else "http"
    ctx.out(f"serving {', '.join(r for r, _ in refs)} at {scheme}://{ns.host}:{port}{note}"
            f"{f' with {ns.workers} workers' if ns.workers and ns.workers > 1 else ''}; Ctrl-C stops")
    server.run_foreground(refs, ns.host, port, token, workers=ns.workers or 1, **kw)
    return None


def _promote(ns, ctx):
    from .jobs.promote import current_notebook, promote_notebook

    if ns.notebook:
        notebook = ns.notebook
    elif ctx.face == "magic":
        notebook = current_notebook()
    else:
        raise BadInput("which notebook? mlops promote NOTEBOOK --name NAME")
    params = {k: parse_literal(v) for k, v in key_values(ns.param, "--param").items()}
    smoke = {k: parse_literal(v) for k, v in key_values(ns.smoke, "--smoke").items()}
    if ctx.face == "magic" and not ns.notebook:
        ctx.out(f"promoting {notebook} as last saved")
    p = promote_notebook(notebook, ns.name, model=ns.model, metric=ns.metric, params=params,
                         direction=ns.direction, alias=ns.alias, schedule=ns.schedule, image=ns.image,
                         smoke=smoke, force=ns.force, retrain_when=ns.retrain_when)
    ctx.out(str(p))
    return None


def _job_value_arguments(p: argparse.ArgumentParser, scope: str) -> None:
    """papermill's ways to give a job's parameters (its CLI's -p, -r, -f, -y), for job run and retrain."""
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help=f"a parameter{scope}, read as papermill reads it: True/False/None, numbers, else text")
    p.add_argument("-r", "--parameter-raw", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help=f"a parameter{scope} as text, never converted")
    p.add_argument("-f", "--parameters-file", action="append", metavar="FILE",
                   help=f"a YAML file of NAME: VALUE parameters{scope} (-p and -r override it)")
    p.add_argument("-y", "--parameters-yaml", action="append", metavar="YAML",
                   help=f"parameters{scope} as a YAML string, e.g. 'n: 3' (-p and -r override it)")


def _job_values(ns):
    """The job and its parameter values from -f, -y, -p and -r, read and checked as papermill's
    CLI reads them, before any kernel starts."""
    from .jobs.params import command_line_values
    from .jobs.spec import find_job

    spec = find_job(ns.job)
    return spec, command_line_values(spec, ns.parameter, ns.parameter_raw, ns.parameters_file, ns.parameters_yaml)


def _job_run(ns, ctx):
    from .jobs.runner import run_job

    spec, values = _job_values(ns)
    run_job(spec, values, smoke=ns.smoke, out=ctx.out, timeout=ns.timeout, progress=ctx.face == "magic" or _tty())
    return None


def _retrain(ns, ctx):
    from .jobs.runner import retrain

    spec, values = _job_values(ns)
    retrain(spec, grid=ns.grid, params=values, workers=ns.workers, dask_scheduler=ns.dask_scheduler, out=ctx.out,
            timeout=ns.timeout, smoke=ns.smoke, progress=ctx.face == "magic" or _tty())
    return None


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


def _job_build(ns, ctx):
    from .jobs.build import build_image

    build_image(ns.job, engine=ns.engine, wheelhouse=ns.wheelhouse, base=ns.base, tag=ns.tag, out=ctx.out)
    return None


def _job_serve(ns, ctx):
    from .jobs.spec import find_job

    spec = find_job(ns.job)
    if not spec.serves:
        raise BadInput(f"job {spec.name} registers no model (promoted without --model): nothing to serve")
    args = argparse.Namespace(ref=f"{spec.model}@{spec.alias}", port=ns.port, host=ns.host, token_file=ns.token_file,
                              ab=None, tls_cert=None, tls_key=None, pickle=False, workers=None, log_sample=1.0,
                              runtime="native", quantize=False, reload_alias=2.0)
    return _serve(args, ctx)


def _job_ls(ns, ctx):
    from .jobs.spec import list_jobs

    return list_jobs()


def _job_show(ns, ctx):
    from .jobs.spec import find_job

    spec = find_job(ns.job)
    ctx.out(spec.describe())
    return None


def _drift_side(ctx: Context, word: str):
    value, is_var = _namespace_value(ctx, word)
    if is_var:
        return value
    if ctx.shell is not None and word.isidentifier() and "@" not in word and not os.path.exists(word):
        from .data.catalog import Catalog

        if Catalog(_store().meta).latest(word) is None:
            raise BadInput(f"{word!r} is neither a DataFrame variable in the notebook nor a dataset")
    return word


def _drift(ns, ctx):
    from .monitoring.drift import drift

    method = ns.method
    if method and "=" in method:
        method = key_values(method.split(","), "--method")
    thresholds = {}
    for k, v in key_values(ns.feature_threshold, "--feature-threshold").items():
        x = parse_literal(v)
        thresholds[k] = x if isinstance(x, (int, float)) and not isinstance(x, bool) else v
    columns = [c.strip() for c in ns.columns.split(",") if c.strip()] if ns.columns else None
    report = drift(_drift_side(ctx, ns.reference), _drift_side(ctx, ns.current), columns=columns,
                   threshold=ns.threshold, method=method, thresholds=thresholds, since=ns.since, until=ns.until,
                   model=ns.model, save=not ns.no_save, progress=None if ctx.face == "magic" or _tty() else False)
    return report


def _monitor(ns, ctx):
    from .monitoring import check, monitor

    if ns.ref == "check":
        if not ns.job:
            raise BadInput("which job? monitor check JOB")
        result = check(ns.job, dry_run=ns.dry_run, window=ns.since, out=ctx.out, workers=ns.workers,
                       progress=ctx.face == "magic" or _tty())
        ctx.extra["exit_code"] = result.exit_code
        return result.drift if ctx.face == "magic" and result.drift is not None else None
    if ns.job:
        raise BadInput(f"unexpected {ns.job!r}: monitor NAME@ALIAS [--since 7d], or monitor check JOB")
    if ns.dry_run or ns.workers:
        raise BadInput("--dry-run and --workers go with `monitor check JOB`")
    return monitor(ns.ref, since=ns.since or "7d", until=ns.until, window=ns.window)


def _lineage(ns, ctx):
    from . import data

    return data.lineage(ns.ref)


def _gc(ns, ctx):
    from .store.maintenance import gc

    report = gc(_store(), dry_run=ns.dry_run)
    ctx.out(str(report))
    return None


def _fsck(ns, ctx):
    from .store.maintenance import fsck

    report = fsck(_store(), progress=ctx.extra.get("progress"))
    ctx.out(str(report))
    ctx.extra["exit_code"] = 0 if report.ok else 1
    return None


def _help(ns, ctx):
    ctx.out(overview(ctx.face) if ns.topic is None else help_text(ns.topic, ctx.face))


def _version(ns, ctx):
    from ._version import __version__

    ctx.out(f"mlops-jupyter {__version__}")


def _demo(ns, ctx):
    from .demo import run_demo

    return run_demo(ns.dir, out=ctx.out, grid=ns.grid, workers=ns.workers)


def _progress(ctx: Context, desc: str):
    """A tqdm wrapper for long loops, when someone is watching (a notebook, a terminal)."""
    if not (ctx.face == "magic" or _tty()):
        return None

    def wrap(items):
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, unit="item", leave=False)

    return wrap


def _wandb_sync(ns, ctx):
    from .integrations import wandb_mirror

    progress = _progress(ctx, "mirroring to W&B")
    counts = wandb_mirror.sync(_store(), ns.runs or None, progress=progress, out=ctx.out)
    project = counts.pop("project")
    ctx.out(f"W&B {project}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n or k == "mirrored"))
    if counts["failed"]:
        ctx.extra["exit_code"] = 1
    return None


def _access_grant(ns, ctx):
    from .store import access

    password = None
    if ns.password_env:
        password = os.environ.get(ns.password_env)
        if not password:
            raise BadInput(f"--password-env {ns.password_env}: that environment variable is not set")
    ctx.out(access.grant(_store(), ns.user, ns.role, password))
    return None


def _access_revoke(ns, ctx):
    from .store import access

    ctx.out(access.revoke(_store(), ns.user))
    return None


def _access_ls(ns, ctx):
    import pandas as pd

    from .store import access

    return pd.DataFrame(list(access.roles(_store()).items()), columns=["user", "role"])


def _key_generate(ns, ctx):
    from .store.crypto import KEY_FILE_ENV, generate_key, write_key_file

    key = generate_key()
    if not ns.out:
        if ctx.face == "magic":
            raise BadInput("key generate: a key printed in a cell is saved with the notebook; give --out FILE")
        ctx.out(key)  # only the key: export MLOPS_ENCRYPTION_KEY=$(mlops key generate)
        return None
    ident = write_key_file(ns.out, key)
    ctx.out(f"key {ident} written to {ns.out} (mode 600); use it with {KEY_FILE_ENV}={ns.out} or "
            f"[encryption] key_file, and keep a copy: blobs sealed with it cannot be read without it")
    return None


def _key_id(ns, ctx):
    from .config import settings
    from .store.crypto import load_key

    try:
        cfg = settings(create=False)
    except BadInput:  # no project here: the environment's key, if any
        cfg = None
    key = load_key(cfg)
    ctx.out("no encryption key is set: new blobs are stored as they are" if key is None
            else f"key {key.id_hex} (from {key.source})")
    return None


def _migrate(ns, ctx):
    from .store.migrate import migrate

    report = migrate(ns.source, ns.to, ns.artifacts, progress=_progress(ctx, "copying blobs"), out=ctx.out)
    ctx.out(str(report))
    return None


def _audit(ns, ctx):
    from .monitoring.sources import parse_time
    from .store.audit import entries

    df = entries(_store(), action=ns.action, user=ns.user, since=parse_time(ns.since) if ns.since else None,
                 limit=ns.last)
    if ctx.face == "cli" and not df.empty:
        df = df.fillna("").assign(at=df["at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                       detail=df["detail"].map(lambda d: "" if not d else ", ".join(f"{k}={v}" for k, v in d.items())))
    return df


def _wandb_status(ns, ctx):
    from .integrations import wandb_mirror

    return wandb_mirror.status(_store())


def _export_mlflow(ns, ctx):
    from .integrations.mlflow_io import export_mlflow

    progress = _progress(ctx, "exporting to MLflow")
    summary = export_mlflow(ns.to, runs=ns.runs or None, experiment=ns.experiment, models=not ns.no_models,
                            progress=progress)
    ctx.out(f"MLflow {ns.to}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()
                                             if not isinstance(v, (dict, list))))
    return None


def _import_mlflow(ns, ctx):
    from .integrations.mlflow_io import import_mlflow

    progress = _progress(ctx, "importing from MLflow")
    summary = import_mlflow(ns.source, experiments=ns.experiment, runs=ns.runs or None, progress=progress)
    ctx.out(f"from MLflow {ns.source}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()
                                                     if not isinstance(v, (dict, list))))
    return None


HANDLERS: dict[str, Callable] = {
    "audit": _audit, "migrate": _migrate, "access_grant": _access_grant, "access_revoke": _access_revoke,
    "access_ls": _access_ls, "wandb_sync": _wandb_sync, "wandb_status": _wandb_status, "export_mlflow": _export_mlflow,
    "import_mlflow": _import_mlflow, "key_generate": _key_generate, "key_id": _key_id,
    "init": _init, "track_start": _track_start, "track_stop": _track_stop, "log": _log,
    "param": _param, "tag": _tag, "artifact": _artifact, "runs_ls": _runs_ls, "runs_show": _runs_show,
    "runs_rm": _runs_rm, "show": _runs_show, "compare": _compare, "watch": _watch, "gc": _gc,
    "fsck": _fsck, "help": _help, "version": _version, "demo": _demo,
    "data_add": _data_add, "data_ls": _data_ls, "data_show": _data_show, "data_diff": _data_diff,
    "data_checkout": _data_checkout, "data_load": _data_load, "data_check": _data_check, "lineage": _lineage,
    "model_register": _model_register, "model_ls": _model_ls, "model_show": _model_show,
    "model_alias": _model_alias, "model_history": _model_history, "model_load": _model_load,
    "model_export": _model_export, "explain": _explain,
    "serve": _serve, "promote": _promote, "job_run": _job_run, "job_build": _job_build, "job_serve": _job_serve,
    "job_ls": _job_ls, "job_show": _job_show, "retrain": _retrain, "drift": _drift, "monitor": _monitor,
}
