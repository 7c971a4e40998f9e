"""The rows ``model ls`` shows, built from the store's columns (no pandas, no SQLAlchemy): one shape
for the notebook's DataFrames and the terminal's tables, whichever way the rows were read."""

from __future__ import annotations

import json

from .signature import describe

MODEL_COLUMNS = ["name", "latest", "aliases", "class", "flavor", "size", "created", "run_id", "metrics"]
VERSION_COLUMNS = ["ref", "aliases", "class", "flavor", "size", "created", "run_id", "datasets", "metrics",
                   "signature"]


def metrics_text(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items())[:6])


def _json(d: dict, key: str, default):
    value = d.get(key)
    if isinstance(value, str):
        return json.loads(value) if value else default
    return default if value is None else value


def model_record(d: dict, aliases: list[str]) -> dict:
    """A model by its latest version (a ``model_versions`` row); *aliases*: ``alias->vN`` of the model."""
    return {"name": d["name"], "latest": f"v{d['version']}", "aliases": ", ".join(aliases),
            "class": (d["model_class"] or "").rsplit(".", 1)[-1], "flavor": d["flavor"], "size": d["size"],
            "created": d["created"], "run_id": d["run_id"], "metrics": metrics_text(_json(d, "metrics", {}))}


def version_record(d: dict, aliases: list[str]) -> dict:
    """One version of a model (a ``model_versions`` row); *aliases*: the aliases it holds."""
    datasets = _json(d, "datasets", [])
    return {"ref": f"{d['name']}@v{d['version']}", "aliases": ", ".join(aliases),
            "class": (d["model_class"] or "").rsplit(".", 1)[-1], "flavor": d["flavor"], "size": d["size"],
            "created": d["created"], "run_id": d["run_id"],
            "datasets": ", ".join(x["ref"] for x in datasets if x.get("direction") == "input"),
            "metrics": metrics_text(_json(d, "metrics", {})), "signature": describe(_json(d, "signature", None))}
