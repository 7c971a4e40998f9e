"""The rows ``data ls`` shows, built from the store's columns (no pandas, no SQLAlchemy): one shape
for the notebook's DataFrames and the terminal's tables, whichever way the rows were read."""

from __future__ import annotations

DATASET_COLUMNS = ["name", "latest", "kind", "size", "files", "rows", "created", "run_id", "user", "message"]
VERSION_COLUMNS = ["ref", "version", "kind", "size", "files", "rows", "created", "run_id", "user", "message",
                   "digest"]


def dataset_record(d: dict) -> dict:
    """A dataset by its latest version (a ``dataset_versions`` row)."""
    return {"name": d["name"], "latest": f"v{d['version']}", "kind": d["kind"], "size": d["size"],
            "files": d["n_files"], "rows": d["rows"], "created": d["created"], "run_id": d["run_id"],
            "user": d["username"], "message": d["message"]}


def version_record(d: dict) -> dict:
    """One version of a dataset (a ``dataset_versions`` row)."""
    return {"ref": f"{d['name']}@v{d['version']}", "version": d["version"], "kind": d["kind"], "size": d["size"],
            "files": d["n_files"], "rows": d["rows"], "created": d["created"], "run_id": d["run_id"],
            "user": d["username"], "message": d["message"], "digest": d["digest"][:12]}
