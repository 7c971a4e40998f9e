"""Export each run to MLflow when it ends, in a background process, when the project asks for it.

    # .mlops/config.toml
    [mlflow]
    export_uri = "sqlite:///mlflow.db"

or ``MLOPS_MLFLOW_EXPORT_URI`` (which wins over the file; set and empty, it turns the export off).
A relative path in the URI is taken from the project folder.

On ``run.ended`` the process that ended the run (a notebook's kernel, a job) starts ``mlops export
mlflow RUN --to URI`` as a detached process, its output appended to ``.mlops/mlflow/export.log``,
and goes on at once: MLflow is never imported here, and a slow or unreachable tracking server costs
the notebook nothing. The export sends the run with its parents and the model versions it
registered; as any export, it creates nothing twice, so ``mlops export mlflow --to URI`` later
sends whatever a background export could not.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..exceptions import BadInput

log = logging.getLogger(__name__)

EXPORT_URI_ENV = "MLOPS_MLFLOW_EXPORT_URI"
LOG_LIMIT = 1 << 20  # export.log is started afresh (the previous one kept as export.log.1) past this size

_warned: set[str] = set()


def export_uri(cfg) -> str | None:
    """The MLflow tracking URI each ended run is exported to, or None when runs are not exported.

    Raises:
        BadInput: ``[mlflow] export_uri`` in ``.mlops/config.toml`` is not a string.
    """
    value = os.environ.get(EXPORT_URI_ENV)
    if value is None:
        section = (cfg.extra or {}).get("mlflow") if cfg is not None else None
        value = section.get("export_uri") if isinstance(section, dict) else None
        if value is not None and not isinstance(value, str):
            raise BadInput(f"{cfg.mlops_dir / 'config.toml'}: [mlflow] export_uri must be a string (an MLflow "
                           f"tracking URI), got {value!r:.60}")
    return (value or "").strip() or None


def export_command(run_id: str, uri: str) -> list[str]:
    """The command that exports run *run_id* to *uri*: ``mlops export mlflow RUN --to URI``."""
    return [sys.executable, "-m", "mlops_jupyter.cli", "export", "mlflow", run_id, "--to", uri]


def log_path(cfg) -> Path:
    """Where the background exports of the project write what they print."""
    return cfg.mlops_dir / "mlflow" / "export.log"


def start_export(cfg, run_id: str, uri: str) -> int:
    """Start exporting run *run_id* to *uri* in a detached process; returns its pid at once."""
    path = log_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > LOG_LIMIT:
        os.replace(path, path.with_name(path.name + ".1"))
    env = dict(os.environ, MLOPS_HOME=str(cfg.root), PYTHONUNBUFFERED="1")
    # the export is not part of the run that ended (nor of a job's run around it)
    env.pop("MLOPS_RUN_ID", None)
    env.pop("MLOPS_PARENT_RUN_ID", None)
    command = export_command(run_id, uri)
    with open(path, "ab") as out:
        proc = subprocess.Popen(command, cwd=str(cfg.root), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {proc.pid}: mlops export mlflow {run_id} "
                  f"--to {uri}\n".encode())
    # reaped when it exits, so that a long-lived kernel is left no zombie
    threading.Thread(target=proc.wait, name="mlops-mlflow-export-reaper", daemon=True).start()
    return proc.pid


def _on_run_ended(store, run_id: str, status: str) -> None:
    uri = export_uri(store.settings)
    if uri is None:
        return
    if importlib.util.find_spec("mlflow") is None:  # finds the package without importing it
        if "missing" not in _warned:
            _warned.add("missing")
            print(f"mlops: runs are to be exported to MLflow ({uri}) but mlflow is not installed "
                  "(pip install 'mlops-jupyter[mlflow]'); `mlops export mlflow --to URI` exports them later",
                  file=sys.stderr, flush=True)
        return
    pid = start_export(store.settings, run_id, uri)
    log.debug("exporting run %s to MLflow %s in process %d", run_id, uri, pid)


def install(bus) -> None:
    """Entry point (group ``mlops_jupyter.integrations``): export each run that ends to MLflow."""
    bus.subscribe("run.ended", _on_run_ended)
