"""What the server calls to predict: the model's own library, or ONNX Runtime.

Runtimes are registered by name in :data:`runtimes` (``mlops serve --runtime NAME``); each turns a
loaded model into a :class:`Predictor` once, before the server answers. Adding one is a
:class:`Runtime` subclass and a ``runtimes.register`` line.

``native`` serves the model with its own library. It also tries the *matrix* fast path: when every
input column is a number, the signature check has already put the columns in the model's order, so
the model can be given a float matrix instead of a DataFrame (scikit-learn spends most of a
single-row prediction turning a DataFrame back into an array). The fast path is taken only when the
model predicts the same on the signature's example both ways, with no warning; otherwise the
DataFrame path is used, unchanged.

``onnx`` converts a scikit-learn model with skl2onnx, a PyTorch or Keras network with its library's
ONNX exporter (optionally quantized with onnxruntime's dynamic quantization), and checks, before
serving, that it answers as the original does on the example (:mod:`mlops_jupyter.models.onnx_export`,
:mod:`mlops_jupyter.models.onnx_nets`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from ..exceptions import BadInput
from ..registry import Registry


@dataclass
class Predictor:
    model: Any  # has predict (and predict_proba for classifiers)
    matrix: bool  # give it a float64 matrix (True) or a DataFrame (False)
    runtime: str  # "sklearn", "xgboost", ..., or "onnx"
    note: str = ""
    precision: str | None = None  # what the numbers are computed in ("float32", "int8"), where it is known


class Runtime:
    """Turns a loaded model into what the server calls. *quantizes*: takes ``--quantize``."""

    quantizes = False

    def prepare(self, model: Any, signature: dict | None, *, library: str | None = None, quantize: bool = False,
                ref: str = "") -> Predictor:
        raise NotImplementedError


class NativeRuntime(Runtime):
    """The model's own library; a float matrix instead of a DataFrame when that predicts the same."""

    def prepare(self, model: Any, signature: dict | None, *, library: str | None = None, quantize: bool = False,
                ref: str = "") -> Predictor:
        if quantize:
            raise BadInput("--quantize applies to --runtime onnx")
        if signature and signature.get("type") == "tensors":  # a network: predict over its forward
            from ..models.flavors import predictor

            return Predictor(predictor(model, library, signature), False, library or "native",
                             precision=tensor_precision(signature))
        fast = matrix_model(model, signature)
        if fast is not None:
            return Predictor(fast, True, library or "native", "columns given as one float matrix")
        return Predictor(model, False, library or "native")


class OnnxRuntime(Runtime):
    """The model converted to ONNX (checked against the original), run by ONNX Runtime."""

    quantizes = True

    def prepare(self, model: Any, signature: dict | None, *, library: str | None = None, quantize: bool = False,
                ref: str = "", min_agreement: float | None = None) -> Predictor:
        """*min_agreement*: the int8 form's agreement with the original a network must reach on its
        example (:mod:`~mlops_jupyter.models.onnx_nets`; None: 0.99 for classifiers, 0.95 for
        regressors). scikit-learn models keep their stricter check: every example class the same."""
        if signature and signature.get("type") == "tensors":
            from ..models import onnx_nets

            form = onnx_nets.convert(model, signature, library, quantize=quantize, min_agreement=min_agreement,
                                     ref=ref, hint="serve it with --runtime native")
            return Predictor(form.predictor(signature), matrix=False, runtime="onnx", note=form.note,
                             precision=form.precision)
        from ..models import onnx_export

        data, note = onnx_export.export_onnx(model, signature, quantize=quantize, ref=ref)
        return Predictor(onnx_export.OnnxModel(data, signature, getattr(model, "classes_", None)),
                         matrix=onnx_export.OnnxModel.wants_matrix(signature), runtime="onnx", note=note)


runtimes: Registry[Runtime] = Registry("serving runtime", entry_point_group="mlops_jupyter.serving_runtimes")
runtimes.register("native", NativeRuntime())
runtimes.register("onnx", OnnxRuntime())


def prepare(model: Any, signature: dict | None, library: str | None = None, runtime: str = "native",
            quantize: bool = False, ref: str = "", min_agreement: float | None = None) -> Predictor:
    """*model* ready to serve with the runtime registered as *runtime* (BadInput naming the known ones)."""
    extra = {} if min_agreement is None else {"min_agreement": min_agreement}  # only runtimes that quantize take it
    return runtimes.get(runtime).prepare(model, signature, library=library, quantize=quantize, ref=ref, **extra)


def tensor_precision(signature: dict) -> str:
    """The dtype a network's first input is given in (its weights' precision is not in the signature)."""
    inputs = signature.get("inputs") or [{}]
    return str(inputs[0].get("dtype") or "float32")


# -- the native runtime's matrix path ---------------------------------------------------------------
def _same(a, b, classifier: bool, tol: float) -> bool:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if classifier or a.dtype.kind not in "fc":
        return bool((a == b).all())
    return bool(np.allclose(a, b, rtol=tol, atol=tol))


def matrix_model(model: Any, signature: dict | None):
    """A copy of *model* that takes a float matrix, if it predicts the same as on the DataFrame."""
    import numpy as np

    from ..models.signature import example_input, numeric_columns, without_feature_names

    if not numeric_columns(signature) or not hasattr(model, "predict"):
        return None
    ex = example_input(signature)
    if ex is None or not len(ex):
        return None
    classifier = hasattr(model, "predict_proba")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = model.predict(ex)
            want_p = model.predict_proba(ex) if classifier else None
        fast = without_feature_names(model)
        arr = ex.to_numpy(dtype=np.float64)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            got = fast.predict(arr)
            got_p = fast.predict_proba(arr) if classifier else None
    except Exception:
        return None
    if seen or not _same(want, got, classifier, 1e-9):
        return None
    if classifier and not np.allclose(want_p, got_p, rtol=1e-9, atol=1e-12):
        return None
    return fast
