"""Keras 3 models, in Keras' native ``.keras`` format, loaded in Keras' safe mode.

A ``.keras`` file is a zip of the model's configuration (JSON), its weights (HDF5) and metadata;
it is the same file for every Keras backend. No TensorFlow is needed: when this process has not
chosen a backend yet, Keras is imported with the PyTorch one.

Keras' safe mode refuses to rebuild a ``Lambda`` layer from its stored Python bytecode. We refuse
the same models when they are registered, and also models built from classes outside Keras (custom
layers): rebuilding them runs the user's code, so both are taken only with ``--pickle``
(``pickle=True``), and loaded only when the loader passes it too.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import zipfile
from typing import Any

from ..exceptions import BadInput
from . import nets
from ..exceptions import first_line
from .flavors import Library, ModelFormat, Saved, qualname, version_of


def import_keras():
    """Keras, with the PyTorch backend unless this process chose one (TensorFlow is not required)."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    return keras


class KerasFormat(ModelFormat):
    """``keras.Model`` as a ``.keras`` file; custom code (lambdas, custom classes) only when asked."""

    library = "keras"
    file_name = "model.keras"

    def detect(self, model: Any) -> bool:
        keras = sys.modules.get("keras")
        return keras is not None and hasattr(keras, "Model") and isinstance(model, keras.Model)

    def is_fitted(self, model: Any) -> bool:
        return bool(getattr(model, "built", True))

    def save(self, model: Any, library: Library, allow_pickle: bool = False, example: Any = None) -> Saved:
        ex = nets.example_of(example, input_names(model) or None)
        output = nets.read_outputs(call(model, ex.arrays, ex.call))
        with tempfile.TemporaryDirectory(prefix="mlops-keras-") as d:
            path = os.path.join(d, "model.keras")
            try:
                model.save(path)
            except Exception as e:
                raise BadInput(f"Keras cannot save this {type(model).__name__}: {first_line(e)}") from None
            with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as z:
                z.writestr(EXAMPLE_FILE, example_bytes(ex))
            with open(path, "rb") as f:
                data = f.read()
        custom = custom_code(data)
        if custom and not allow_pickle:
            raise BadInput(f"this {type(model).__name__} holds code Keras' safe mode will not load "
                           f"({', '.join(custom[:5])}); pass --pickle (pickle=True) to register it anyway: "
                           "loading it will then also need --pickle")
        lib = Library("keras", version_of("keras"), qualname(model))
        saved = lib.saved(data, "keras", extra={"call": ex.call, "inputs": list(ex.arrays),
                                                "runs_code": bool(custom), "custom": custom[:20],
                                                "backend": backend_name()})
        saved.signature = nets.tensor_signature(ex, output, sigmoid=nets.ends_in_sigmoid(model))
        return saved

    def load(self, data: bytes, trusted: list[str], extra: dict, allow_pickle: bool = False,
             label: str = "this model") -> Any:
        if extra.get("runs_code") and not allow_pickle:
            raise BadInput(f"{label} is a Keras model with custom code ({', '.join(extra.get('custom') or [])}), "
                           "which runs when it is loaded; pass --pickle (allow_pickle=True) if you trust it")
        keras = import_keras()
        with tempfile.TemporaryDirectory(prefix="mlops-keras-") as d:
            path = os.path.join(d, "model.keras")
            with open(path, "wb") as f:
                f.write(data)
            try:
                model = keras.saving.load_model(path, safe_mode=not allow_pickle)
            except Exception as e:
                raise BadInput(f"Keras cannot load {label}: {first_line(e)}") from None
        model.mlops_example = read_example(data)
        return model

    def predictor(self, model: Any, signature: dict | None) -> nets.NetPredictor:
        sig = signature or {}

        def forward(arrays: dict):
            return nets.read_outputs(call(model, arrays, sig.get("call", "args")))

        return nets.NetPredictor(forward, sig, module=model)


EXAMPLE_FILE = "mlops_example.safetensors"  # added to the .keras zip; Keras reads only its own members


def example_bytes(ex: nets.Example) -> bytes:
    """The registration example (up to 256 rows) as safetensors: what ONNX and int8 forms are checked on."""
    import numpy as np
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in ex.arrays.items()})


def read_example(data: bytes) -> dict | None:
    """The stored example arrays by input name (None for a file registered before examples were kept)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if EXAMPLE_FILE not in z.namelist():
            return None
        raw = z.read(EXAMPLE_FILE)
    from safetensors.numpy import load

    return load(raw)


def input_names(model: Any) -> list[str]:
    """The names of the model's inputs; Keras' generated ones (``keras_tensor_6``) read as ``x``, ``input_1``, ..."""
    try:
        tensors = list(getattr(model, "inputs", None) or [])
    except (AttributeError, ValueError):  # a subclassed model not called yet has no inputs
        tensors = []
    names = []
    for i, t in enumerate(tensors):
        name = str(getattr(t, "name", "") or "")
        generated = not name or name.startswith(("keras_tensor", "input_layer"))
        names.append(("x" if len(tensors) == 1 else f"input_{i}") if generated else name)
    return names


def call(model: Any, arrays: dict, style: str):
    """*model*'s outputs on *arrays* (numpy), in inference mode, as numpy."""
    keras = sys.modules["keras"]
    if style in ("kwargs", "dict") or len(arrays) > 1:
        inputs: Any = dict(arrays) if style != "args" else list(arrays.values())
    else:
        inputs = next(iter(arrays.values()))
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            out = model(inputs, training=False)
    else:
        out = model(inputs, training=False)
    if isinstance(out, dict):
        out = next(iter(out.values()))
    elif isinstance(out, (list, tuple)):
        out = out[0]
    return keras.ops.convert_to_numpy(out)


def custom_code(data: bytes) -> list[str]:
    """What in a ``.keras`` file safe mode would refuse or that comes from outside Keras: Lambda
    layers and classes of other modules (by ``module.class_name``)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        config = json.loads(z.read("config.json"))
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            cls, module = node.get("class_name"), node.get("module")
            if isinstance(cls, str) and "config" in node:
                if cls == "Lambda" or cls == "__lambda__":
                    found.append("Lambda layer")
                elif isinstance(module, str) and module and not module.startswith("keras"):
                    found.append(f"{module}.{cls}")
                elif node.get("registered_name") and not str(node.get("registered_name")).startswith("keras"):
                    if str(node["registered_name"]) != cls:
                        found.append(str(node["registered_name"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return sorted(set(found))


def backend_name() -> str:
    keras = sys.modules.get("keras")
    try:
        return keras.backend.backend() if keras is not None else ""
    except Exception:
        return ""



FORMAT = KerasFormat()  # what models.flavors.model_formats registers as "keras"
