"""ONNX forms of PyTorch and Keras networks, checked against the original before anything uses them.

One pipeline, for the server's ``onnx`` runtime and for ``mlops model export``
(:func:`convert`): the stored example -> the original's outputs on it -> ONNX -> checked -> (with
*quantize*: int8 -> checked again) -> an ONNX Runtime session and the bytes.

- PyTorch: the version's exported program (``module.mlops_program``) goes through
  ``torch.onnx.export(..., dynamo=True)``; the batch axis stays free, as it is in the program.
- Keras: Keras' own exporter (``model.export(path, format="onnx")``).

The checks, on the example stored with the version (``module.mlops_example``, up to 256 rows; for
Keras the signature's few rows):

- float: every output within ``1e-4`` relative plus ``1e-5`` absolute (the absolute part scaled by
  the largest output when that is above 1) of the original's; else one line with the largest
  difference. A batch of one row is also run (a graph that only takes the example's batch size is
  caught here, not by the first request).
- int8 (onnxruntime's dynamic quantization: weights stored as int8, activations quantized per
  batch): *agreement* with the original must reach *min_agreement*:

  - classifiers: the share of example rows whose top class is the original's (default 0.99);
  - regressors: ``1 - max|int8 - original| / spread``, where *spread* is ``max - min`` of the
    original's predictions on the example (``max|original|`` when they are all equal): the largest
    error as a share of the range the model predicts over (default 0.95, an error of 5% at most).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from ..exceptions import BadInput
from . import nets
from ..exceptions import first_line

FLOAT_RTOL = 1e-4
FLOAT_ATOL = 1e-5
DEFAULT_MIN_AGREEMENT = {"classification": 0.99, "regression": 0.95}
# int8 weights as measured best by bench/nets.py on an AVX2 machine without VNNI: signed weights run
# the u8s8 kernel (QUInt8's u8u8 one is slower); per-channel scales and 7-bit weights
# (reduce_range, against the u8s8 kernel's 16-bit saturation) agreed no better there and ran no
# faster. The agreement check stands guard where saturation does bite.
QUANTIZE = {"weight_type": "QInt8", "per_channel": False, "reduce_range": False}
QUANTIZED_OPS = ("MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QLinearMatMul",
                 "QLinearConv")
# One intra-op thread per session: a second one is faster alone (bench/nets.py: about 1.2x a row, 1.4-1.7x
# a batch) but spins on the core the event loop's neighbours (the prediction log writer, other
# --workers) need; more cores are used by --workers, one session each.
SESSION_THREADS = 1


@dataclass
class NetOnnx:
    """A checked ONNX form of a network: its bytes, a session running them, and what was done."""

    data: bytes
    session: Any  # onnxruntime.InferenceSession
    precision: str  # "float32" or "int8"
    note: str  # size, operators quantized, agreement measured

    def predictor(self, signature: dict) -> nets.NetPredictor:
        """``predict`` / ``predict_proba`` as the native runtime's, over ONNX Runtime."""
        return nets.NetPredictor(OnnxForward(self.session), signature)


class OnnxForward:
    """Arrays by input name -> the graph's first output (the graph's inputs carry the signature's names)."""

    def __init__(self, session: Any):
        self.session = session
        self.inputs = [i.name for i in session.get_inputs()]
        self.output = session.get_outputs()[0].name

    def __call__(self, arrays: dict):
        return self.session.run([self.output], {n: arrays[n] for n in self.inputs})[0]


def convert(model: Any, signature: dict, library: str | None = None, *, quantize: bool = False,
            min_agreement: float | None = None, ref: str = "", hint: str = "") -> NetOnnx:
    """*model* (a loaded PyTorch or Keras version) as ONNX, checked on its example; int8 with *quantize*.

    *hint*: what to do instead, ending the refusal line (the server: use the native runtime).

    Raises:
        BadInput: one line: a library missing, no example, a conversion that fails or answers
            differently, an int8 form below *min_agreement*.
    """
    require()
    label = ref or "this model"
    tail = f": {hint}" if hint else ""
    flavor = library if library in ("torch", "keras") else flavor_of(model)
    arrays = example_of(model, signature, label)
    want = original_outputs(model, signature, flavor, arrays)
    if flavor == "torch":
        data = torch_onnx(model, signature, arrays, label)
    elif flavor == "keras":
        data = keras_onnx(model, signature, label)
    else:
        raise BadInput(f"{label} is neither a PyTorch nor a Keras network: its ONNX form cannot be made here")
    session = session_of(data, label)
    check_inputs(session, signature, label)
    diff = check_float(session, arrays, want, label, tail)
    note = (f"ONNX {kib(data)} float32; answers as the original on {len(want)} example rows "
            f"(largest difference {diff:.2g})")
    if not quantize:
        return NetOnnx(data, session, "float32", note)
    qdata, counted = quantize_dynamic(data)
    if not counted:
        return NetOnnx(data, session, "float32", note + "; nothing in this graph can be quantized (dynamic "
                       "quantization covers MatMul/Gemm/Conv/recurrent operators), so it is served in float32")
    qsession = session_of(qdata, label)
    got = run(qsession, arrays)
    task = signature.get("task", "regression")
    agreement, measured = agreement_of(got, want, signature)
    need = DEFAULT_MIN_AGREEMENT.get(task, 0.99) if min_agreement is None else float(min_agreement)
    if not agreement >= need:
        raise BadInput(f"the int8 form of {label} {refusal(task, agreement, len(want))}, below --min-agreement "
                       f"{need:g}: serve or export it without --quantize, or lower --min-agreement")
    note = (f"ONNX int8 {kib(qdata)} ({len(qdata) / len(data):.0%} of float32's {kib(data)}); "
            f"{counted} operator(s) quantized ({'per-channel ' if QUANTIZE['per_channel'] else ''}"
            f"{QUANTIZE['weight_type']} weights, dynamic uint8 activations); {measured} "
            f"(--min-agreement {need:g})")
    return NetOnnx(qdata, qsession, "int8", note)


# -- the pieces, in the order convert runs them ------------------------------------------------------
def require() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise BadInput(f"ONNX for networks needs {' and '.join(missing)}: pip install onnx onnxruntime onnxscript")


def flavor_of(model: Any) -> str | None:
    from .flavors import flavor_of as detect

    return detect(model)


def example_of(model: Any, signature: dict, label: str) -> dict:
    """The example rows to check on: the ones stored with the version, else the signature's."""
    arrays = getattr(model, "mlops_example", None) or nets.example_arrays(signature)
    if not arrays:
        raise BadInput(f"{label} has no stored input example to check its ONNX form on: register it again "
                       "with example=...")
    return nets.inputs_from(signature, dict(arrays))


def original_outputs(model: Any, signature: dict, flavor: str | None, arrays: dict):
    """The original network's first output on the example (numpy), through its own library."""
    import numpy as np

    from .flavors import predictor

    return np.asarray(predictor(model, flavor, signature).outputs(arrays))


def torch_onnx(model: Any, signature: dict, arrays: dict, label: str) -> bytes:
    """The exported program through ``torch.onnx.export(dynamo=True)``, graph inputs named as the signature's."""
    import importlib.util

    import torch

    if importlib.util.find_spec("onnxscript") is None:
        raise BadInput("ONNX export of PyTorch models needs onnxscript: pip install onnxscript")
    program = getattr(model, "mlops_program", None)
    if program is None:  # a module in memory, not a loaded version: export it as registering does
        from . import torch_format

        ex = nets.Example(arrays, signature.get("call", "args"))
        program, _ = torch_format.export(model, ex, torch_format.module_device(model), False)
    names = input_order(program, signature)
    try:
        with quiet():
            onx = torch.onnx.export(program, (), dynamo=True, verbose=False, input_names=names, optimize=True)
            return onx.model_proto.SerializeToString()
    except Exception as e:
        raise BadInput(f"torch.onnx cannot export {label}: {first_line(e)}") from None


def input_order(program: Any, signature: dict) -> list[str]:
    """The signature's input names in the order the program takes its flat inputs (the ONNX graph's)."""
    from torch.utils._pytree import tree_unflatten

    names = [s["name"] for s in signature["inputs"]]
    try:
        args, kwargs = tree_unflatten(list(range(len(names))), program.call_spec.in_spec)
    except Exception:  # a structure we do not read: the signature's order, which the example was given in
        return names
    call = signature.get("call", "args")
    if call == "kwargs":
        slots = kwargs
    elif call == "dict":
        slots = args[0] if args and isinstance(args[0], dict) else {}
    else:
        slots = dict(zip(names, args))
    if sorted(slots) != sorted(names) or sorted(slots.values()) != list(range(len(names))):
        return names
    return sorted(names, key=lambda n: slots[n])


def keras_onnx(model: Any, signature: dict, label: str) -> bytes:
    """Keras' exporter (the model was called on the example, which its exporter requires)."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="mlops-onnx-") as d:
        path = os.path.join(d, "model.onnx")
        try:
            with quiet():
                model.export(path, format="onnx", verbose=False)
        except Exception as e:
            raise BadInput(f"Keras cannot export {label} to ONNX: {first_line(e)}") from None
        proto = onnx.load(path)
    rename_inputs(proto, [s["name"] for s in signature["inputs"]], label)
    return proto.SerializeToString()


def rename_inputs(proto: Any, names: list[str], label: str) -> None:
    """Name the graph's inputs as the signature does (by position when the names differ)."""
    graph_inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    have = [i.name for i in graph_inputs]
    if sorted(have) == sorted(names):
        return
    if len(have) != len(names):
        raise BadInput(f"the ONNX form of {label} takes {len(have)} input(s) ({', '.join(have)}); the model "
                       f"takes {len(names)} ({', '.join(names)})")
    new = dict(zip(have, names))
    for i in graph_inputs:
        i.name = new[i.name]
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name in new:
                node.input[k] = new[name]


def session_of(data: bytes, label: str = "the model"):
    """An ONNX Runtime session for serving on a small machine: one thread, sequential, all graph fusions."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = SESSION_THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: the exporter's graphs draw harmless warnings
    try:
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise BadInput(f"ONNX Runtime cannot load the ONNX form of {label}: {first_line(e)}") from None


def check_inputs(session: Any, signature: dict, label: str) -> None:
    have = sorted(i.name for i in session.get_inputs())
    want = sorted(s["name"] for s in signature["inputs"])
    if have != want:
        raise BadInput(f"the ONNX form of {label} takes inputs {', '.join(have)}; the model takes {', '.join(want)}")


def run(session: Any, arrays: dict):
    return OnnxForward(session)(arrays)


def check_float(session: Any, arrays: dict, want, label: str, tail: str) -> float:
    """The largest difference from the original on the example (and on its first row alone);
    BadInput past the tolerance."""
    worst = 0.0
    for rows in (None, 1):
        part = arrays if rows is None else {k: v[:rows] for k, v in arrays.items()}
        expect = want if rows is None else want[:rows]
        try:
            got = run(session, part)
        except Exception as e:
            size = "the example" if rows is None else "a batch of one row"
            raise BadInput(f"the ONNX form of {label} fails on {size}: {first_line(e)}{tail}") from None
        worst = max(worst, float_difference(got, expect, label, tail))
    return worst


def float_difference(got, want, label: str, tail: str) -> float:
    import numpy as np

    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise BadInput(f"the ONNX form of {label} answers shape {got.shape} where the original answers "
                       f"{want.shape}{tail}")
    diff = np.abs(got - want)
    diff[np.isnan(got) & np.isnan(want)] = 0.0
    diff[np.isnan(diff)] = np.inf  # NaN on one side only
    atol = FLOAT_ATOL * max(1.0, float(np.abs(want[np.isfinite(want)]).max(initial=0.0)))
    excess = diff - (atol + FLOAT_RTOL * np.abs(np.nan_to_num(want)))
    if (excess > 0).any():
        row = int(np.unravel_index(np.argmax(excess), excess.shape)[0])
        raise BadInput(f"the ONNX form of {label} answers up to {float(diff.max()):.3g} away from the original "
                       f"on its example (row {row}; tolerance {FLOAT_RTOL:g} relative + {atol:.3g} absolute){tail}")
    return float(diff.max(initial=0.0))


def quantize_dynamic(data: bytes) -> tuple[bytes, int]:
    """onnxruntime's dynamic int8 quantization with :data:`QUANTIZE`: (bytes, operators quantized)."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as quantize

    with tempfile.TemporaryDirectory(prefix="mlops-onnx-") as d:
        src, dst = os.path.join(d, "model.onnx"), os.path.join(d, "model.int8.onnx")
        with open(src, "wb") as f:
            f.write(data)
        with quiet():
            quantize(src, dst, weight_type=getattr(QuantType, QUANTIZE["weight_type"]),
                     per_channel=QUANTIZE["per_channel"], reduce_range=QUANTIZE["reduce_range"])
        with open(dst, "rb") as f:
            out = f.read()
    n = sum(1 for node in onnx.load_from_string(out).graph.node if node.op_type in QUANTIZED_OPS)
    return out, n


def agreement_of(got, want, signature: dict) -> tuple[float, str]:
    """(agreement of the int8 outputs *got* with the original's *want*, how it reads)."""
    import numpy as np

    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    n = len(want)
    if signature.get("task") == "classification":
        agree = float((nets.top_class(got, signature) == nets.top_class(want, signature)).mean())
        return agree, f"top-1 agreement with the original {agree:.1%} on {n} example rows"
    got, want = got.reshape(n, -1), want.reshape(n, -1)
    spread = float(np.ptp(want)) or float(np.abs(want).max(initial=0.0)) or 1.0
    error = float(np.abs(got - want).max(initial=0.0)) / spread
    if not np.isfinite(error):
        error = np.inf
    return 1.0 - error, f"largest error {error:.2%} of the original's spread on {n} example rows"


def refusal(task: str, agreement: float, n: int) -> str:
    if task == "classification":
        return f"predicts the original's class on {agreement:.1%} of its {n} example rows"
    return f"is up to {1 - agreement:.2%} of the original's spread away from it on {n} example rows " \
           f"(agreement {agreement:.3f})"


@contextlib.contextmanager
def quiet():
    """Exporters and the quantizer warn and log about what we check ourselves: keep the one line clean."""
    import logging
    import warnings

    # onnxruntime's quantizer logs through the root logger ("consider pre-processing...")
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript",
                                               "onnxruntime")] + [logging.getLogger()]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def kib(data: bytes) -> str:
    return f"{len(data) / 1024:,.1f} KiB"
