"""Model registry: ``mj.models.register / load / get / ls / versions / alias / history``.

    import mlops_jupyter as mj
    v = mj.models.register(clf, name="churn", example=X_train, alias="staging")
    model = mj.models.load("models:/churn@staging")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import ModelVersion


def __getattr__(name: str):
    # The registry (and SQLAlchemy) load on first use: `mlops model ls` in a terminal reads without them.
    if name in ("ModelVersion", "parse_model_ref"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["register", "load", "get", "ls", "versions", "alias", "unalias", "history", "export", "describe",
           "ModelVersion", "parse_model_ref"]


def _registry():
    from ..store import open_store
    from .registry import Registry

    return Registry(open_store())


def register(model: Any, name: str, example: Any = None, alias: str | None = None, pickle: bool = False,
             message: str | None = None, task: str | None = None) -> ModelVersion:
    """Save *model* as the next version of *name*.

    Records the active run (its metrics are copied into the version) and the dataset
    versions that run used, the input signature inferred from *example*, the library and
    its version, and the size. scikit-learn models are saved with skops, XGBoost and
    LightGBM in their own formats; anything else needs ``pickle=True`` (loading a pickle
    runs code from the file). PyTorch and Keras networks are stored without pickle; their task is
    read off their outputs on *example*, and *task* (``"classification"`` or ``"regression"``)
    says it where the outputs cannot: several outputs that are not class scores, or one output that
    is the logit of class 1.
    """
    from ..tracking.run import active_run

    from .explain import REGISTERED

    run = active_run()
    v = _registry().register(model, name, example=example, alias=alias, allow_pickle=pickle, message=message,
                             run_id=run.run_id if run is not None else None, task=task)
    if not v.staged_for:
        REGISTERED.set(model, v)
    return v


def load(ref: str, pickle: bool = False) -> Any:
    """The model object of ``churn@production``, ``churn@v3``, ``models:/churn/3``, ... , or of a
    run's logged model: ``runs:/<run id>/model`` (what autologging logs)."""
    from .explain import REGISTERED

    if ref.startswith("runs:/"):
        return load_run_model(ref, pickle)
    reg = _registry()
    v = reg.get(ref)
    model = reg.load_version(v, allow_pickle=pickle)
    REGISTERED.set(model, v)  # explaining this object links the version
    return model


def load_run_model(ref: str, pickle: bool = False) -> Any:
    """``runs:/<run id>/<folder>``: the model a run logged as ``<folder>/model.json`` and its file."""
    import json

    from ..exceptions import BadInput, NotFound
    from ..store import open_store
    from . import flavors

    run_id, _, folder = ref[len("runs:/"):].partition("/")
    folder = folder.strip("/") or "model"
    if not run_id or ".." in folder.split("/"):
        raise BadInput(f"{ref!r} is not a run's model: runs:/<run id>/model")
    from ..tracking.run import settle

    store = open_store()
    run_id = store.meta.resolve(run_id)
    settle(run_id)  # what autologging still writes into it
    rows = {a["path"]: a for a in store.meta.artifacts(run_id)}
    meta = rows.get(f"{folder}/model.json")
    if meta is None:
        raise NotFound(f"run {run_id[:8]} logged no model under {folder}/")
    info = json.loads(store.blobs.get_bytes(meta["digest"]))
    if info["flavor"] == "pickle" and not pickle:
        flavors.load(b"", "pickle", None, None, allow_pickle=False, label=ref)
    data = store.blobs.get_bytes(rows[f"{folder}/{info['file']}"]["digest"])
    return flavors.load(data, info["flavor"], info.get("trusted"), info.get("extra"), allow_pickle=pickle, label=ref)


def export(ref: str, format: str = "onnx", path: str | None = None, quantize: bool = False) -> str:
    """Write version *ref* as an ONNX file (for edge devices and other runtimes); returns the path.

    The file is checked before it is written: ONNX Runtime must predict what the model predicts on
    the signature's example. Default path: ``NAME-vN.onnx`` (``NAME-vN.int8.onnx`` quantized)."""
    return export_with_note(ref, format, path, quantize)[0]


def export_with_note(ref: str, format: str = "onnx", path: str | None = None, quantize: bool = False,
                     min_agreement: float | None = None) -> tuple[str, str]:
    """:func:`export`, also returning what was done (size, operators quantized, agreement measured).

    PyTorch and Keras versions go through :mod:`.onnx_nets` (checked on the stored example; int8
    refused below *min_agreement*, there documented), scikit-learn ones through :mod:`.onnx_export`.
    Nothing is written unless the checks pass."""
    from pathlib import Path

    from ..exceptions import BadInput
    from ..store.blobs import save_file

    if format != "onnx":
        raise BadInput(f"unknown export format {format!r}: onnx is the one supported")
    reg = _registry()
    v = reg.get(ref)
    model = reg.load_version(v)
    if v.signature and v.signature.get("type") == "tensors":
        from .onnx_nets import convert

        form = convert(model, v.signature, v.flavor, quantize=quantize, min_agreement=min_agreement, ref=v.ref)
        data, note = form.data, form.note
        quantize = form.precision == "int8"  # the file is named for what it holds
    else:
        from .onnx_export import export_onnx

        data, note = export_onnx(model, v.signature, quantize=quantize, ref=v.ref)
    out = Path(path) if path else Path(f"{v.name}-v{v.version}{'.int8' if quantize else ''}.onnx")
    if out.is_dir():
        out = out / f"{v.name}-v{v.version}{'.int8' if quantize else ''}.onnx"
    return save_file(out, data), note


def get(ref: str) -> ModelVersion:
    """The registry record of a version (no model loaded)."""
    return _registry().get(ref)


def ls():
    """Every model: latest version, aliases, class, size, when, run and metrics."""
    return _registry().models()


def versions(name: str):
    """The versions of model *name*: aliases, class, size, when, run, datasets, metrics, signature."""
    return _registry().versions(name)


def model_records() -> list[dict]:
    """:func:`ls` as plain rows, without pandas (the terminal's ``mlops model ls``)."""
    return _registry().model_records()


def version_records(name: str) -> list[dict]:
    """:func:`versions` as plain rows, without pandas (``mlops model ls NAME``)."""
    return _registry().version_records(name)


def alias(ref: str, name: str) -> ModelVersion:
    """Point alias *name* at version *ref* (moving it if it pointed elsewhere; the move is logged)."""
    v, _ = _registry().set_alias(ref, name)
    return v


def unalias(model: str, name: str) -> int:
    """Remove alias *name* of *model*; returns the version it pointed to."""
    return _registry().delete_alias(model, name)


def describe(ref: str, intended_use: str | None = None, limitations: str | None = None) -> dict:
    """Say what version *ref* is for and where it should not be used; its model card
    (``mj.model_card``) shows it (a later version without its own text shows this one's, saying so)."""
    return _registry().describe(ref, intended_use=intended_use, limitations=limitations)


def history(name: str):
    """Every alias move of a model: when, which alias, from which version to which, who."""
    return _registry().history(name)
