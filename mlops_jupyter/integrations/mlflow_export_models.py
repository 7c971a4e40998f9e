"""Export registered model versions and their aliases to MLflow's model registry.

Each version's file goes into the exported MLflow run that registered it (or into a run of its
own), beside an ``mlops_model.json`` card and, for scikit-learn, Keras and PyTorch, an ``MLmodel``
(:mod:`.mlflow_models`), so ``mlflow.sklearn.load_model("models:/NAME@ALIAS")`` (``mlflow.keras``,
``mlflow.pytorch``, ``mlflow.pyfunc``) works, without pickle. Part of
:func:`.mlflow_export.export_mlflow`, which exports the runs first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import MlopsError
from .mlflow_common import T_ALIASES, T_DIGEST, T_MODEL, first_line, is_not_found, millis, pages, with_progress
from .mlflow_models import write_mlmodel

if TYPE_CHECKING:
    from .mlflow_export import RunExporter

MODEL_DIR = "models"  # where model files go inside the run that holds them


class ModelVersionExporter:
    """Registers model versions in MLflow, their files logged to the runs a :class:`RunExporter` wrote."""

    def __init__(self, runs: RunExporter):
        self.runs = runs
        self.client = runs.client
        self.store = runs.store
        self.meta = runs.meta
        self.summary = runs.summary

    def export(self, run_ids: set[str] | None, progress=None) -> None:
        """Register the model versions not exported before (those of *run_ids*, or all), then
        point the registry's aliases where the project's point."""
        import sqlalchemy as sa

        from ..models.registry import version_from_row
        from ..store import schema as S

        mv, ma = S.model_versions, S.model_aliases
        with self.meta.read() as conn:
            q = sa.select(mv).order_by(mv.c.name, mv.c.version)
            if run_ids is not None:
                q = q.where(mv.c.run_id.in_(sorted(run_ids)))
            versions = [version_from_row(r) for r in conn.execute(q)]
            aliases = conn.execute(sa.select(ma.c.name, ma.c.alias, ma.c.version)).all()
            digests = {(r.name, r.version): r.digest for r in conn.execute(sa.select(mv.c.name, mv.c.version,
                                                                                      mv.c.digest))}
            described = dict(conn.execute(sa.select(S.models.c.name, S.models.c.description)).all())
        names = sorted({v.name for v in versions})
        state = {name: self._registered(name, described.get(name)) for name in names}
        for v in with_progress(progress, versions):
            known = state[v.name]
            key = (f"{v.name}@v{v.version}", v.digest)
            if key in known:
                self.summary["model_versions_skipped"] += 1
                continue
            known[key] = self._export_version(v)
            self.summary["model_versions"] += 1
        for name in names:
            ours = {a.alias: a.version for a in aliases if a.name == name}
            want = {alias: state[name].get((f"{name}@v{version}", digests.get((name, version))))
                    for alias, version in ours.items()}
            self._sync_aliases(name, {a: v for a, v in want.items() if v is not None}, set(ours))

    def _registered(self, name: str, description: str | None) -> dict[tuple, str]:
        """Make sure registered model *name* exists; its versions exported before, by (name@vN, digest)."""
        try:
            self.client.get_registered_model(name)
        except Exception as e:
            if not is_not_found(e):
                raise MlopsError(f"MLflow registry: {first_line(e)}") from e
            self.client.create_registered_model(name, tags={"mlops.model": "true"}, description=description)
        found = {}
        for mv in pages(self.client.search_model_versions, filter_string=f"name = '{name}'", max_results=1000):
            if T_MODEL in mv.tags:
                found[(mv.tags[T_MODEL], mv.tags.get(T_DIGEST))] = str(mv.version)
        return found

    def _export_version(self, v) -> str:
        ref = f"{v.name}@v{v.version}"
        mid = self.runs.mlflow_id.get(v.run_id) if v.run_id else None
        if mid is None:
            mid = self._model_run(v)
        path = f"{MODEL_DIR}/{v.name}/v{v.version}"
        try:
            self.runs.upload(mid, [], under=path, extra=lambda folder: self._model_files(v, folder, mid, path))
            source = f"{self.runs.artifact_uri[mid].rstrip('/')}/{path}"
            tags = {T_MODEL: ref, T_DIGEST: v.digest, "mlops.flavor": v.flavor,
                    "mlops.class": v.model_class or "", "mlops.library": f"{v.library or ''} {v.library_version or ''}",
                    "mlops.metrics": json.dumps(v.metrics, sort_keys=True, default=str),
                    "mlops.signature": json.dumps(v.signature, default=str) if v.signature else "",
                    "mlops.datasets": json.dumps(v.datasets, default=str),
                    # a Keras model with Lambda or custom layers: MLflow loads it only out of safe mode
                    "mlops.runs_code": "true" if (v.extra or {}).get("runs_code") else ""}
            tags = {k: val for k, val in tags.items() if val}
            metrics = ", ".join(f"{k}={x:.4g}" if isinstance(x, float) else f"{k}={x}"
                                for k, x in sorted(v.metrics.items()))
            desc = (f"{v.message}\n\n" if v.message else "") + f"{ref} in mlops-jupyter" + (
                f" (run {v.run_id[:8]})" if v.run_id else "") + (f"; metrics: {metrics}" if metrics else "")
            created = self.client.create_model_version(v.name, source, run_id=mid, tags=tags, description=desc)
        except Exception as e:
            raise MlopsError(f"exporting model {ref} to MLflow failed: {first_line(e)}") from e
        return str(created.version)

    def _model_run(self, v) -> str:
        """The MLflow run holding the files of a version no exported run registered."""
        ref = f"{v.name}@v{v.version}"
        found = self.runs.model_runs.get((ref, v.digest))
        if found is not None:
            self.runs.artifact_uri[found.info.run_id] = found.info.artifact_uri
            return found.info.run_id
        tags = {T_MODEL: ref, T_DIGEST: v.digest}
        if v.username:
            tags["mlflow.user"] = v.username
        run = self.client.create_run(self.runs.experiment_id, start_time=millis(v.created), run_name=f"{v.name}-v{v.version}",
                                     tags=tags)
        self.client.set_terminated(run.info.run_id, "FINISHED", end_time=millis(v.created))
        self.runs.model_runs[(ref, v.digest)] = run
        self.runs.artifact_uri[run.info.run_id] = run.info.artifact_uri
        return run.info.run_id

    def _model_files(self, v, folder: Path, mid: str, path: str) -> None:
        from ..models.flavors import file_name

        fname = file_name(v.flavor)
        self.store.blobs.copy_to(v.digest, folder / fname)  # the digest is checked on the way
        mlflow_flavor = write_mlmodel(v, folder, fname, mid, path)
        meta = dict(name=v.name, version=v.version, created=v.created, run_id=v.run_id, username=v.username,
                    flavor=v.flavor, library=v.library, library_version=v.library_version,
                    model_class=v.model_class, file=fname, digest=v.digest, size=v.size, signature=v.signature,
                    metrics=v.metrics, datasets=v.datasets, trusted=v.trusted, extra=v.extra, message=v.message,
                    mlflow_flavor=mlflow_flavor)
        (folder / "mlops_model.json").write_text(json.dumps(meta, indent=2, default=str))

    def _sync_aliases(self, name: str, want: dict[str, str], ours: set[str]) -> None:
        """Point MLflow's aliases of *name* where ours point (*want*: alias -> MLflow version); remove
        those this project set before and has dropped since (*ours*: every alias the model has here)."""
        rm = self.client.get_registered_model(name)
        have = {a: str(ver) for a, ver in (rm.aliases or {}).items()}
        try:
            ours_before = set(json.loads(rm.tags.get(T_ALIASES) or "[]"))
        except ValueError:
            ours_before = set()
        for alias, version in sorted(want.items()):
            if have.get(alias) != version:
                self.client.set_registered_model_alias(name, alias, version)
                self.summary["aliases"] += 1
        for alias in sorted(ours_before - ours):
            if alias in have:
                self.client.delete_registered_model_alias(name, alias)
                self.summary["aliases"] += 1
        mine = json.dumps(sorted(set(want) | (ours_before & ours)))
        if rm.tags.get(T_ALIASES) != mine:
            self.client.set_registered_model_tag(name, T_ALIASES, mine)
