"""The ``MLmodel`` beside an exported model version: MLflow's description of it, so that MLflow
loads the version with its own flavor, and without running code from the files.

One writer per flavor (:data:`MLMODEL_WRITERS`); each gets the folder already holding the
version's file (copied from the blob store, its digest checked on the way):

- ``sklearn``: the skops file as it is (``mlflow.sklearn``, MLflow 3 reads skops files, trusting
  the types we recorded when it was saved);
- ``keras``: the ``.keras`` file as it is (``mlflow.keras``; Keras loads it in safe mode, so no
  code from the file runs). A model with Lambda or custom layers loads only with
  ``load_model_kwargs={"safe_mode": False}``, as here with ``--pickle``;
- ``torch``: our exported program written again as a PyTorch 2 archive, ``data/model.pt2``
  (``mlflow.pytorch``'s "pt2" format): the graph as JSON, the weights as raw tensor bytes and a
  few example rows as plain tensors, the only record MLflow checks with torch's ``weights_only``
  unpickler when ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``. Our own ``model.pt2.zip`` is
  logged beside it unchanged.

Other flavors (xgboost, lightgbm, pickle) get no ``MLmodel``: their file and ``mlops_model.json``.
A writer that cannot run here (MLflow too old, torch missing) warns and leaves the ``MLmodel``
out; the version is exported all the same.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path
from typing import Callable

# What MLflow calls our dtypes in a column-based signature.
MLFLOW_TYPES = {"float64": "double", "float32": "float", "int64": "long", "int32": "integer", "bool": "boolean",
                "object": "string", "string": "string", "str": "string", "datetime64[ns]": "datetime"}
PT2_FILE = "data/model.pt2"  # where mlflow.pytorch looks for a "pt2" archive (model_data "data")
EXAMPLE_ROWS = 8  # rows of the stored example kept as the pt2 archive's sample inputs


def write_mlmodel(v, folder: Path, fname: str, mid: str, path: str) -> str | None:
    """Write the ``MLmodel`` (and requirements) for version *v* whose file *fname* is in *folder*.

    Returns:
        The MLflow flavor that loads it (``"sklearn"``, ``"keras"``, ``"pytorch"``), or None when
        MLflow is given the files only.
    """
    writer = MLMODEL_WRITERS.get(v.flavor)
    if writer is None:
        return None
    from ..exceptions import BadInput

    try:
        return writer(v, folder, fname, mid, path)
    except (ImportError, BadInput) as e:  # the flavor's library missing here, or too old to read the file
        warnings.warn(f"mlops: {v.name}@v{v.version} exported without an MLmodel ({e}); MLflow gets its "
                      "files only", RuntimeWarning, stacklevel=2)
        return None


def mlflow_signature(sig: dict | None):
    """Our signature as MLflow's, when every type has an MLflow equivalent (else None)."""
    if not sig or "type" not in sig:
        return None
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    if sig["type"] == "dataframe":
        cols = []
        for c in sig.get("columns", []):
            t = MLFLOW_TYPES.get(str(c.get("dtype")))
            if t is None:
                return None
            cols.append(ColSpec(t, c["name"]))
        return ModelSignature(inputs=Schema(cols)) if cols else None
    if sig["type"] == "tensors":
        inputs = sig.get("inputs") or []
        # one input is an unnamed tensor (MLflow then takes a bare array); several are named
        specs = [_tensor_spec(i, i.get("name") if len(inputs) > 1 else None) for i in inputs]
        out = _tensor_spec(sig["output"]) if sig.get("output") else None
        if not specs or None in specs:
            return None
        return ModelSignature(inputs=Schema(specs), outputs=Schema([out]) if out is not None else None)
    spec = _tensor_spec(sig)
    return ModelSignature(inputs=Schema([spec])) if spec is not None else None


def _tensor_spec(sig: dict, name: str | None = None):
    import numpy as np
    from mlflow.types.schema import TensorSpec

    try:
        dtype = np.dtype(sig.get("dtype"))
    except TypeError:
        return None
    shape = tuple(-1 if s is None else int(s) for s in sig.get("shape") or [])
    return TensorSpec(dtype, shape, name)


def _model(v, mid: str, path: str):
    from mlflow.models import Model

    model = Model(artifact_path=path, run_id=mid)
    signature = mlflow_signature(v.signature)
    if signature is not None:
        model.signature = signature
    return model


def _pin(package: str, version: str | None = None) -> str | None:
    """``package==version`` (the installed version when not given), without a local label
    (``2.13.0+cpu``: pip cannot install that from PyPI); None when it is not installed."""
    if not version:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            version = installed(package)
        except PackageNotFoundError:
            return None
    return f"{package}=={version.split('+', 1)[0]}"


def _write_env(folder: Path, requirements: list[str | None]) -> None:
    import mlflow

    reqs = [f"mlflow=={mlflow.__version__}"] + [r for r in requirements if r]
    (folder / "requirements.txt").write_text("\n".join(reqs) + "\n")
    (folder / "python_env.yaml").write_text(f"python: {platform.python_version()}\nbuild_dependencies:\n- pip\n"
                                            "dependencies:\n- -r requirements.txt\n")


def write_sklearn(v, folder: Path, fname: str, mid: str, path: str) -> str | None:
    """An ``MLmodel`` around the skops file as it is, when this MLflow reads skops files (3.x)."""
    from mlflow import pyfunc

    try:
        import mlflow.sklearn as mlflow_sklearn
    except ImportError:  # pragma: no cover - scikit-learn missing, yet a sklearn model: leave it
        return None
    if "skops" not in getattr(mlflow_sklearn, "SUPPORTED_SERIALIZATION_FORMATS", ()):
        return None
    model = _model(v, mid, path)
    pyfunc.add_to_model(model, loader_module="mlflow.sklearn", model_path=fname, python_env="python_env.yaml")
    model.add_flavor("sklearn", pickled_model=fname, sklearn_version=v.library_version,
                     serialization_format="skops", code=None, skops_trusted_types=list(v.trusted or []))
    model.save(str(folder / "MLmodel"))
    _write_env(folder, [_pin("scikit-learn", v.library_version) if v.library_version else None, _pin("skops")])
    return "sklearn"


def write_keras(v, folder: Path, fname: str, mid: str, path: str) -> str | None:
    """An ``MLmodel`` around the ``.keras`` file as it is (``mlflow.keras``, not the exported form).

    MLflow's keras flavor reads ``<data>.keras`` from the model's folder: *data* names our file
    without its suffix. Neither Keras nor its backend is imported here."""
    from mlflow import pyfunc

    if not fname.endswith(".keras"):
        return None
    backend = (v.extra or {}).get("backend") or "torch"
    model = _model(v, mid, path)
    # pyfunc without "data": mlflow.keras's pyfunc loader reads the MLmodel next to the path it is given
    pyfunc.add_to_model(model, loader_module="mlflow.keras", python_env="python_env.yaml")
    model.add_flavor("keras", data=fname[: -len(".keras")], keras_version=v.library_version,
                     keras_backend=backend, save_exported_model=False)
    model.save(str(folder / "MLmodel"))
    backend_package = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}.get(backend)
    _write_env(folder, [_pin("keras", v.library_version), _pin(backend_package) if backend_package else None])
    return "keras"


def write_torch(v, folder: Path, fname: str, mid: str, path: str) -> str | None:
    """Our exported program as ``mlflow.pytorch``'s "pt2" archive, and an ``MLmodel`` for it.

    The program is read from our file (JSON and safetensors: nothing unpickled) and written with
    ``torch.export.save``. Its sample inputs are the first rows of the stored example, as plain
    tensors: MLflow refuses a "pt2" archive without them when pickle deserialization is off."""
    import torch
    from mlflow import pyfunc

    from ..models import flavors, nets, torch_format

    module = flavors.load((folder / fname).read_bytes(), "torch", v.trusted, v.extra, label=v.ref)
    ep = module.mlops_program
    sig = v.signature or {}
    call = sig.get("call") or (v.extra or {}).get("call") or "args"
    arrays = {k: a[:EXAMPLE_ROWS] for k, a in module.mlops_example.items()}
    if arrays and len(next(iter(arrays.values()))) < 2:  # the batch axis was exported free of 0 and 1
        arrays = {k: a.repeat(2, axis=0) for k, a in arrays.items()}
    tensors = {k: torch.from_numpy(a.copy()) for k, a in arrays.items()}
    ep.example_inputs = torch_format.call_args(nets.Example(tensors, call), tensors)
    target = folder / PT2_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(ep, str(target))
    model = _model(v, mid, path)
    data_dir = str(Path(PT2_FILE).parent)
    if call == "args" and len(tensors) == 1:  # MLflow's pyfunc calls the module with one tensor
        pyfunc.add_to_model(model, loader_module="mlflow.pytorch", data=data_dir,
                            pickle_module_name="mlflow.pytorch.pickle_module", python_env="python_env.yaml",
                            model_config={"device": None})
    model.add_flavor("pytorch", model_data=data_dir, pytorch_version=str(torch.__version__), code=None)
    model.save(str(folder / "MLmodel"))
    _write_env(folder, [_pin("torch", v.library_version)])
    return "pytorch"


MLMODEL_WRITERS: dict[str, Callable[..., str | None]] = {
    "sklearn": write_sklearn,
    "keras": write_keras,
    "torch": write_torch,
}
