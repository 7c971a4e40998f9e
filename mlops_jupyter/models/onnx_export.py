"""ONNX export of scikit-learn models: convert with skl2onnx, optionally quantize with onnxruntime's
dynamic quantization, and check, before anything uses the result, that ONNX Runtime predicts what
the original model predicts on the signature's example.

Used by ``mj.models.export`` (a file for other runtimes) and by the server's ``onnx`` runtime, which
runs the graph through :class:`OnnxModel`, an ONNX Runtime session with the scikit-learn face.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..exceptions import BadInput
from .signature import example_input, numeric_columns, without_feature_names


def export_onnx(model: Any, signature: dict | None, quantize: bool = False, ref: str = "") -> tuple[bytes, str]:
    """The model as ONNX bytes, checked against the original on the signature's example.

    Returns (bytes, a note on what was done, e.g. how many operators were quantized)."""
    import importlib.util

    for mod, pkg in (("skl2onnx", "skl2onnx"), ("onnxruntime", "onnxruntime")):
        if importlib.util.find_spec(mod) is None:
            raise BadInput(f"the ONNX runtime needs {pkg}: pip install 'mlops-jupyter[onnx]'")
    if not type(model).__module__.startswith("sklearn"):
        raise BadInput(f"ONNX conversion takes scikit-learn models; {ref or 'this model'} is a "
                       f"{type(model).__module__}.{type(model).__name__}: serve it with its own library")
    ex = example_input(signature)
    if ex is None:
        raise BadInput(f"{ref or 'the model'} has no input example in its signature to convert and check "
                       "with: register it again with example=X")
    import numpy as np
    from skl2onnx import to_onnx

    classifier = hasattr(model, "predict_proba")
    matrix = OnnxModel.wants_matrix(signature)
    sample = ex.to_numpy(dtype=np.float32) if matrix and hasattr(ex, "to_numpy") else ex
    if matrix:
        model = without_feature_names(model)  # the graph takes one float tensor, in the signature's column order
    try:
        onx = to_onnx(model, sample[:1], options={"zipmap": False} if classifier else None,
                      target_opset={"": 17, "ai.onnx.ml": 3})
    except Exception as e:
        raise BadInput(f"skl2onnx cannot convert {ref or 'this model'}: {type(e).__name__}: "
                       f"{str(e).splitlines()[0][:300]}") from None
    _dedupe_opsets(onx)
    data = onx.SerializeToString()
    note = f"ONNX {len(data) / 1024:,.1f} KiB"
    if quantize:
        data, nq = _quantize(data)
        note += (f"; quantized {nq} operator(s) to int8" if nq else
                 "; nothing in this graph can be quantized (dynamic quantization covers MatMul/Gemm/"
                 "Conv/recurrent operators), so it is served unquantized")
    check_onnx(model, data, signature, ex, quantized=quantize, ref=ref)
    return data, note


def _dedupe_opsets(onx) -> None:
    """skl2onnx can list the default domain twice (seen with a bare LinearClassifier graph), which
    onnxruntime's quantizer refuses; keep one entry per domain, the highest version."""
    best: dict[str, int] = {}
    for o in onx.opset_import:
        best[o.domain] = max(best.get(o.domain, 0), o.version)
    if len(best) != len(onx.opset_import):
        del onx.opset_import[:]
        for domain, version in best.items():
            entry = onx.opset_import.add()
            entry.domain, entry.version = domain, version


def _quantize(data: bytes) -> tuple[bytes, int]:
    import os
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="mlops-onnx-") as d:
        src, dst = os.path.join(d, "model.onnx"), os.path.join(d, "model.int8.onnx")
        with open(src, "wb") as f:
            f.write(data)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        with open(dst, "rb") as f:
            out = f.read()
    nodes = onnx.load_from_string(out).graph.node
    n = sum(1 for node in nodes if "Integer" in node.op_type or node.op_type.startswith(("QLinear", "DynamicQuant")))
    return (out, n) if n else (data, 0)


def check_onnx(model: Any, data: bytes, signature: dict | None, ex, quantized: bool, ref: str = "") -> None:
    """Refuse (one line) an ONNX model that does not answer as *model* does on the example."""
    import numpy as np

    om = OnnxModel(data, signature, getattr(model, "classes_", None))
    classifier = hasattr(model, "predict_proba")
    X = ex.to_numpy(dtype=np.float64) if om.matrix and hasattr(ex, "to_numpy") else ex
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.asarray(model.predict(X if om.matrix else ex))
    got = np.asarray(om.predict(X))
    tol = 2e-2 if quantized else 1e-4
    if classifier:
        if not (want.astype(str) == got.astype(str)).all():
            bad = int((want.astype(str) != got.astype(str)).sum())
            raise BadInput(f"the ONNX model of {ref or 'this model'} predicts a different class on {bad} of "
                           f"{len(want)} example rows: serve it with the native runtime")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want_p = np.asarray(model.predict_proba(X if om.matrix else ex))
        diff = float(np.abs(want_p - om.predict_proba(X)).max())
        if diff > tol:
            raise BadInput(f"the ONNX model of {ref or 'this model'} gives probabilities up to {diff:.3g} away "
                           f"from the original's on the example (tolerance {tol}): serve it natively")
    elif not np.allclose(want.astype(float), got.astype(float), rtol=tol, atol=tol):
        diff = float(np.abs(want.astype(float) - got.astype(float)).max())
        raise BadInput(f"the ONNX model of {ref or 'this model'} predicts up to {diff:.3g} away from the "
                       f"original on the example (tolerance {tol}): serve it natively")


class OnnxModel:
    """An ONNX Runtime session with the scikit-learn face the server uses."""

    def __init__(self, data: bytes, signature: dict | None, classes=None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # one request per core beats threads fighting over two cores
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.type) for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.matrix = self.wants_matrix(signature)
        self.signature = signature
        if classes is not None:
            self.classes_ = classes

    @staticmethod
    def wants_matrix(signature: dict | None) -> bool:
        """Whether the graph takes one float tensor (all-numeric columns, or an array signature)."""
        return numeric_columns(signature) or bool(signature and signature.get("type") == "ndarray")

    def _feed(self, X) -> dict:
        import numpy as np

        if self.matrix:
            return {self.inputs[0][0]: np.asarray(X, dtype=np.float32)}
        feed = {}
        for name, typ in self.inputs:
            col = X[name].to_numpy()
            if "string" in typ:
                col = col.astype(str)
            elif "int64" in typ:
                col = col.astype(np.int64)
            elif "double" in typ:
                col = col.astype(np.float64)
            else:
                col = col.astype(np.float32)
            feed[name] = col.reshape(-1, 1)
        return feed

    def predict(self, X):
        out = self.session.run(self.outputs[:1], self._feed(X))[0]
        out = out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out
        classes = getattr(self, "classes_", None)
        if classes is not None and getattr(getattr(classes, "dtype", None), "kind", "") == "b" and out.dtype.kind in "iu":
            out = out.astype(bool)  # skl2onnx writes True/False classes as 1/0
        return out

    def predict_proba(self, X):
        if len(self.outputs) < 2:
            raise AttributeError("predict_proba")
        return self.session.run(self.outputs[1:2], self._feed(X))[0]
