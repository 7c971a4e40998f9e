"""Mirror runs, data versions and models to Weights & Biases, without ever blocking a notebook.

The kernel never imports wandb. When a project names a W&B project (``%mlops init --wandb
ENTITY/PROJECT``, ``[wandb] project`` in ``.mlops/config.toml`` or ``MLOPS_WANDB_PROJECT``), each
new run, data version (added outside a run), model version and alias move becomes an item in the
store's ``mirrors`` table, and a background process per project (``python -m
mlops_jupyter.integrations.wandb_daemon``, started on demand, gone when idle) mirrors them: a
running run is followed live from the store (params, tags, metrics with their steps and
timestamps), and when it ends its files, the data versions it used or made and the models it
registered become W&B Artifacts (BLAKE3 digests in their metadata). W&B failing, hanging or having
no network costs the notebook nothing: the item is marked failed with the reason, the user is told
once, and ``mlops wandb sync`` pushes it again later. ``WANDB_MODE`` (``offline``, ``disabled``)
and W&B's other settings are W&B's own: the mirror passes them through.

This module is the mirror's face to the rest of the package: the bus subscribers (:func:`install`,
the entry point), :func:`notify` and :func:`sync`, and the names commands and tests use. Its parts:
:mod:`.wandb_queue` (the items in the store), :mod:`.wandb_upload` (what goes to W&B) and
:mod:`.wandb_daemon` (the background process).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from ..exceptions import BadInput
from .wandb_daemon import daemon_pid, ensure_daemon, kick, serve
from .wandb_queue import (TARGET, claim, claimable, covered_by_run, enabled, enqueue, item, report_failures,
                          status, target)
from .wandb_upload import Mirror

__all__ = ["TARGET", "Mirror", "daemon_pid", "enabled", "enqueue", "ensure_daemon", "install", "kick", "notify",
           "report_failures", "serve", "status", "sync", "target"]


def notify(store, kind: str, key: Any, conn=None) -> None:
    """Queue an item for the mirror when the project mirrors to W&B, and make sure the mirror runs.

    With *conn* the item is added in that transaction and the mirror is started by :func:`kick`
    after it commits; without, here and now."""
    if not enabled(store.settings):
        return
    if conn is not None:
        enqueue(conn, kind, key)
        return
    store.meta.run_transaction(lambda c: enqueue(c, kind, key))
    kick(store)


# -- the bus: what the domain publishes, queued here ----------------------------------------------------------
def _on_run_started(store, run_id: str) -> None:
    notify(store, "run", run_id)


def _on_run_ended(store, run_id: str, status: str) -> None:
    if enabled(store.settings):
        report_failures(store)


def _on_data_version_added(store, version_id: int, run_id: str | None) -> None:
    if run_id is None:  # a run's versions go with the run
        notify(store, "data", version_id)


def _on_model_registered(store, version_id: int, conn) -> None:
    notify(store, "model", version_id, conn=conn)


def _on_alias_moved(store, event_id: int, conn) -> None:
    notify(store, "alias", event_id, conn=conn)


def _on_committed(published: list) -> None:
    # queued inside a transaction: start the mirror once it is committed
    stores = {id(p["store"]): p["store"] for event, p in published
              if event in ("model.registered", "alias.moved") and "store" in p}
    for store in stores.values():
        kick(store)


def install(bus) -> None:
    """Entry point (group ``mlops_jupyter.integrations``): mirror what the project records to W&B."""
    bus.subscribe("run.started", _on_run_started)
    bus.subscribe("run.ended", _on_run_ended)
    bus.subscribe("data.version_added", _on_data_version_added)
    bus.subscribe("model.registered", _on_model_registered)
    bus.subscribe("alias.moved", _on_alias_moved)
    bus.subscribe("committed", _on_committed)


# -- mlops wandb sync ---------------------------------------------------------------------------------------
def sync(store, runs: list[str] | None = None, progress=None, out: Callable[[str], None] = print) -> dict:
    """Push what was not mirrored (or the runs named) now, in this process; returns counts.

    Runs still running are left to the background mirror; runs already mirrored are skipped."""
    import importlib.util

    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        raise BadInput("WANDB_MODE=disabled: nothing is mirrored (unset it, or set WANDB_MODE=offline)")
    if importlib.util.find_spec("wandb") is None:
        raise BadInput("wandb is not installed: pip install 'mlops-jupyter[wandb]'")
    mirror = Mirror(store, out=out)
    meta = store.meta
    keys = None
    if runs:
        keys = [meta.resolve(r) for r in runs]
        store.meta.run_transaction(lambda c: [enqueue(c, "run", k) for k in keys])
    rows = claimable(store, kinds=("run",) if keys else None, keys=keys, manual=True)
    counts = {"mirrored": 0, "failed": 0, "running": 0, "already mirrored": 0}
    if keys:
        counts["already mirrored"] = len(set(keys) - {r.key for r in rows})
    for r in (progress(rows) if progress else rows):
        if r.kind == "run" and meta.run_row(r.key)["status"] == "running":
            counts["running"] += 1
            continue
        if r.kind in ("model", "data") and covered_by_run(store, r):
            continue
        if not claim(store, r):
            counts["running"] += 1
            continue
        mirror.process(r, follow=False)
        counts["mirrored" if item(store, r.id).status == "done" else "failed"] += 1
    if counts["running"]:
        ensure_daemon(store.settings)
    return {**counts, "project": mirror.project}

