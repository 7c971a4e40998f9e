"""Networks on ONNX Runtime: int8 beside float32, and ONNX beside PyTorch, in one process.

    python -m bench.nets [--quick]

Workload: an MLP 784-256-256-10 (ReLU), trained for two epochs (Adam, about 5 s) on synthetic
"digits": pixel-like inputs in [0, 1), each 12% a fixed random pattern of its class and 88% uniform
noise (about 93% held-out accuracy: margins like a trained classifier's, which random weights do
not give; agreement falls with accuracy, see the Gaussian row). Registered, loaded and converted the way ``mlops serve --runtime onnx
[--quantize]`` does it (:func:`mlops_jupyter.models.onnx_nets.convert`, its session options and
quantization settings), then measured side by side:

- rows/s at batch 64, int8 vs float32 ONNX (target int8 >= 2x);
- top-1 agreement int8 vs float32 on 10,000 held-out rows (target >= 99%), and on Gaussian inputs
  (outliers widen the per-batch activation range: the hard case for dynamic quantization);
- file size int8 / float32 (target <= 30%);
- single-row latency, float32 ONNX vs the PyTorch module called eagerly (target ONNX >= 1.5x
  faster), and the same through the served predictors (native: the exported program's module).

Without ``--quick``, the forms investigated are listed too: dynamic quantization's weight types
(QInt8: the u8s8 kernel; QUInt8: u8u8), per-channel scales and reduce-range (7-bit weights),
static quantization calibrated on the example (QGemm / QDQ, no per-batch activation ranges), and
2 intra-op threads, each against float32 at batch 1, 64 and 1,000.
Timings alternate the two sides in short slices (20 rounds) and report medians [min–max], and
the ratio as the median of the per-round ratios, so a noisy neighbour hits both sides alike.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings

from .common import table

QUICK = "--quick" in sys.argv
ROUNDS = 8 if QUICK else 20
SLICE = 0.05 if QUICK else 0.15  # seconds per side per round
EPOCHS = 2


def make_net():
    """The MLP trained on synthetic digits; (net, registration example, 10,000 held-out rows, accuracy)."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 784), dtype=np.float32)
    y = rng.integers(0, 10, 30_000)
    # 12% class pattern, 88% noise: about 93% accuracy after two epochs, not a separable toy
    X = (0.12 * prototypes[y] + 0.88 * rng.random((30_000, 784), dtype=np.float32)).astype(np.float32)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    Xt, yt = torch.from_numpy(X[:20_000]), torch.from_numpy(y[:20_000])
    for _ in range(EPOCHS):
        for i in range(0, len(Xt), 256):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(Xt[i:i + 256]), yt[i:i + 256]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(X[20_000:])).argmax(1).numpy() == y[20_000:]).mean())
    return net, X[:256], X[20_000:], acc


def per_round(fa, fb, n_a: int = 1, n_b: int = 1, fast: bool = False):
    """Alternate *fa* and *fb* in short slices: (calls/s of a, of b, median of the per-round ratios b/a).

    *fast*: shorter slices and fewer rounds (the investigation's many forms)."""
    slice_ = SLICE / 3 if fast else SLICE

    def rate(fn):
        fn()
        k, t0 = 0, time.perf_counter()
        while (t := time.perf_counter() - t0) < slice_:
            fn()
            k += 1
        return k / t

    a, b = [], []
    for _ in range(ROUNDS // 2 if fast else ROUNDS):
        a.append(rate(fa) * n_a)
        b.append(rate(fb) * n_b)
    ratios = [y / x for x, y in zip(a, b)]
    return spread(a), spread(b), statistics.median(ratios)


def spread(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt_rate(m) -> str:
    return f"{m[0]:,.0f} [{m[1]:,.0f}–{m[2]:,.0f}]"


def fmt_latency(m) -> str:  # m in calls/s: as µs per call
    return f"{1e6 / m[0]:.1f} µs [{1e6 / m[2]:.1f}–{1e6 / m[1]:.1f}]"


def session(data: bytes, threads: int = 1):
    import onnxruntime as ort

    from mlops_jupyter.models import onnx_nets

    if threads == onnx_nets.SESSION_THREADS:
        return onnx_nets.session_of(data)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def main() -> None:
    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    os.chdir(tempfile.mkdtemp(prefix="bench-nets-"))
    import mlops_jupyter as mj
    from mlops_jupyter.config import init_project
    from mlops_jupyter.models import onnx_nets
    from mlops_jupyter.models.registry import Registry
    from mlops_jupyter.serving.runtime import prepare
    from mlops_jupyter.store import open_store

    init_project(os.getcwd())
    t0 = time.perf_counter()
    net, example, held_out, acc = make_net()
    print(f"MLP 784-256-256-10 trained {EPOCHS} epoch(s) on 20,000 synthetic rows in "
          f"{time.perf_counter() - t0:.1f} s; held-out accuracy {acc:.1%}; torch threads {torch.get_num_threads()}")
    v = mj.models.register(net, name="digits", example=example)
    model = Registry(open_store()).load_version(v)
    t0 = time.perf_counter()
    f32 = onnx_nets.convert(model, v.signature, v.flavor, ref=v.ref)
    t1 = time.perf_counter()
    i8 = onnx_nets.convert(model, v.signature, v.flavor, quantize=True, ref=v.ref)
    t2 = time.perf_counter()
    print(f"float32: {f32.note} ({t1 - t0:.1f} s)\nint8: {i8.note} ({t2 - t1:.1f} s)")

    fs, qs = f32.session, i8.session
    batch = held_out[:64]
    one = held_out[:1]
    def run_f(x):
        return fs.run(None, {"input": x})[0]

    def run_q(x):
        return qs.run(None, {"input": x})[0]

    rows_f, rows_q, speedup = per_round(lambda: run_f(batch), lambda: run_q(batch), 64, 64)
    agree = float((run_f(held_out).argmax(1) == run_q(held_out).argmax(1)).mean())
    gauss = np.random.default_rng(5).standard_normal((10_000, 784)).astype(np.float32)
    agree_gauss = float((run_f(gauss).argmax(1) == run_q(gauss).argmax(1)).mean())
    size = len(i8.data) / len(f32.data)

    tone = torch.from_numpy(one)

    def eager():
        with torch.inference_mode():
            net(tone)

    lat_t, lat_o, faster = per_round(eager, lambda: run_f(one))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as ONNX Runtime's session: one thread each
    lat_t1, lat_o1, faster1 = per_round(eager, lambda: run_f(one))
    torch.set_num_threads(threads)
    native = prepare(model, v.signature, v.flavor, runtime="native").model
    served_f = f32.predictor(v.signature)
    lat_n, lat_s, served_faster = per_round(lambda: native.predict(one), lambda: served_f.predict(one))

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    table("int8 vs float32 ONNX (ONNX Runtime, 1 thread)", ["measure", "float32", "int8", "ratio", "target"], [
        ["rows/s at batch 64", fmt_rate(rows_f), fmt_rate(rows_q), f"{speedup:.2f}x",
         f">= 2x: {verdict(speedup >= 2)}"],
        ["top-1 agreement, 10,000 held-out rows", "", f"{agree:.2%}", "", f">= 99%: {verdict(agree >= 0.99)}"],
        ["top-1 agreement, 10,000 Gaussian rows", "", f"{agree_gauss:.2%}", "", "(the hard case)"],
        ["file size", f"{len(f32.data):,} B", f"{len(i8.data):,} B", f"{size:.1%}", f"<= 30%: {verdict(size <= 0.3)}"],
    ])
    table("single-row latency: ONNX float32 vs PyTorch", ["path", "PyTorch", "ONNX float32", "ONNX faster by",
                                                          "target"], [
        [f"the network called directly (torch eager, {threads} threads)", fmt_latency(lat_t), fmt_latency(lat_o),
         f"{faster:.2f}x", f">= 1.5x: {verdict(faster >= 1.5)}"],
        ["the same, torch on 1 thread", fmt_latency(lat_t1), fmt_latency(lat_o1), f"{faster1:.2f}x",
         f">= 1.5x: {verdict(faster1 >= 1.5)}"],
        ["served predictor .predict (native: exported program)", fmt_latency(lat_n), fmt_latency(lat_s),
         f"{served_faster:.2f}x", ""],
    ])
    if not QUICK:
        investigate(f32.data, example, held_out, run_f)


def investigate(float_data: bytes, example, held_out, run_f) -> None:
    """The quantization settings and session threads tried, each against float32 in the same rounds."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    from mlops_jupyter.models import onnx_nets

    class Example(CalibrationDataReader):  # static quantization's activation ranges: the stored example
        def __init__(self):
            self.batches = iter([{"input": example[i:i + 32]} for i in range(0, len(example), 32)])

        def get_next(self):
            return next(self.batches, None)

    ref = run_f(held_out).argmax(1)
    fs = session(float_data)
    sizes = (1, 64, 1000)
    rows = []

    def measure(label: str, data: bytes, threads: int = 1) -> None:
        qs = session(data, threads)
        agree = float((qs.run(None, {"input": held_out})[0].argmax(1) == ref).mean())
        ratios = [per_round(lambda x=held_out[:n]: fs.run(None, {"input": x}),
                            lambda x=held_out[:n]: qs.run(None, {"input": x}), fast=True)[2] for n in sizes]
        rows.append([label, f"{agree:.2%}", *(f"{r:.2f}x" for r in ratios)])

    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "f.onnx")
        with open(src, "wb") as f:
            f.write(float_data)

        def written(path: str) -> bytes:
            with open(path, "rb") as f:
                return f.read()

        measure("float32, 2 intra-op threads", float_data, threads=2)
        for wt in ("QInt8", "QUInt8"):
            for per_channel in (False, True):
                for reduce_range in (False, True):
                    dst = os.path.join(d, f"{wt}{per_channel}{reduce_range}.onnx")
                    with onnx_nets.quiet():
                        quantize_dynamic(src, dst, weight_type=getattr(QuantType, wt), per_channel=per_channel,
                                         reduce_range=reduce_range)
                    chosen = onnx_nets.QUANTIZE == {"weight_type": wt, "per_channel": per_channel,
                                                    "reduce_range": reduce_range}
                    measure(f"dynamic {wt}{' per-channel' if per_channel else ''}"
                            f"{' reduce-range' if reduce_range else ''}{' (chosen)' if chosen else ''}", written(dst))
        for fmt in (QuantFormat.QOperator, QuantFormat.QDQ):
            dst = os.path.join(d, f"static{fmt}.onnx")
            with onnx_nets.quiet():
                quantize_static(src, dst, Example(), quant_format=fmt, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8)
            measure(f"static {'QOperator (QGemm)' if fmt == QuantFormat.QOperator else 'QDQ'}, calibrated on "
                    "the example", written(dst))
    table("investigated: each form against float32 ONNX (1 thread) in the same rounds",
          ["form", "agreement (10,000 rows)", *(f"speed, batch {n:,}" for n in sizes)], rows)


if __name__ == "__main__":
    main()
