"""SHAP explanations of neural networks: PyTorch modules (the ``torch.fx.GraphModule`` the registry
loads too) and Keras 3 models.

    ex = mj.explain(net, X_val[:100], background=X_train[:200])

The explainer is the most exact one the network allows, tried in this order, each step that is
passed over saying why in the explanation's notes:

1. ``DeepExplainer`` (DeepLIFT's rules over SHAP's background): its values and the expected output
   add up to the network's output. That is checked here on every explained row; where it does not
   hold (an operation outside DeepLIFT's rules: a function called in ``forward`` rather than a
   layer, a layer it does not know, Keras layers it cannot hook), the next.
2. ``GradientExplainer`` (expected gradients): approximate, the gap to the output is noted.
3. The model-agnostic ``PermutationExplainer`` over the network's outputs, when no gradient can be
   taken (integer codes into an embedding, a ``forward`` that leaves autograd).

Outputs are read by the registry's rules (:func:`nets.read_task`): two or more are class scores
(logits, or probabilities when every row's add up to 1), every class is explained and the per-row
views start on the predicted one; one output is a regression, or the probability of class 1 when the
network ends in a sigmoid.

Rows of more than one dimension (images: rows x [channels x] height x width) are flattened into
features named by position (``pixel (c=0, y=3, x=5)``), which keeps the image's shape in every
stored explanation; their pictures are heat maps over the image (:func:`image_chart`). The network
runs in evaluation mode and is left in the modes, and with the gradients, it had.
"""

from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..exceptions import BadInput, MlopsError, first_line
from . import nets
from .explain import Explanation
from .explain_images import feature_names, image_dims  # noqa: F401 (image rows are named here)

BACKGROUND = 200  # rows of X sampled (seed 0) as the background when none is given
AGNOSTIC_BACKGROUND = 50  # the model-agnostic explainer runs the network on (2 x features + 1) x these per row
GRADIENT_SAMPLES = 200  # expected gradients: samples a row
CHUNK = 8  # rows an explainer call: fixed, so the values never depend on how long a call took
TOLERANCE = 1e-3  # additivity holds within this, relative to the output's size (at least 1)
BATCH = 1024  # rows a forward pass


def is_network(model: Any) -> bool:
    """A torch module or a Keras model; asks only libraries already imported (an object of theirs
    cannot exist otherwise)."""
    torch = sys.modules.get("torch")
    return (torch is not None and isinstance(model, torch.nn.Module)) or is_keras(model)


def is_keras(model: Any) -> bool:
    keras = sys.modules.get("keras")
    layer = getattr(keras, "Layer", None) if keras is not None else None
    return layer is not None and isinstance(model, layer)


class Network:
    """Runs a network on numpy rows: as a torch module when it is one (a Keras model is, on the
    torch backend), else through Keras' ``predict``."""

    def __init__(self, model: Any):
        self.model = model
        self.keras = is_keras(model)
        torch = sys.modules.get("torch")
        self.torch = torch is not None and isinstance(model, torch.nn.Module)
        self.device, self.dtype = None, None
        if self.torch:
            params = [p for p in model.parameters() if p.is_floating_point()]
            self.device = params[0].device if params else torch.device("cpu")
            self.dtype = params[0].dtype if params else torch.float32

    def tensor(self, arr: np.ndarray):
        import torch

        t = torch.as_tensor(arr if arr.flags.writeable else arr.copy())  # whole numbers stay whole: embedding codes
        return t.to(self.device, dtype=None if not t.is_floating_point() else self.dtype)

    def forward(self, t):
        """The network's output for a batch, as rows x outputs."""
        y = self.model(t, training=False) if self.keras else self.model(t)
        if not hasattr(y, "reshape"):
            raise BadInput(f"the network returns a {type(y).__name__}: explain a module that returns one tensor")
        return y.reshape(y.shape[0], -1)

    def outputs(self, arr: np.ndarray) -> np.ndarray:
        if not self.torch:
            return np.asarray(self.model.predict(arr, verbose=0), dtype=float).reshape(len(arr), -1)
        import torch

        with evaluation(self.model), torch.no_grad():
            parts = [self.forward(self.tensor(arr[i:i + BATCH])).detach().cpu().double().numpy()
                     for i in range(0, len(arr), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, 1))

    def module(self):
        """The network as a torch module whose output is rows x outputs, as SHAP's explainers want;
        the network is its child, so DeepExplainer's hooks reach its layers."""
        import torch

        outer = self

        class Outputs(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = outer.model

            def forward(self, x):
                return outer.forward(x)

        return Outputs()

    def ends_in_sigmoid(self) -> bool:
        """The last operation is a sigmoid: one output is then the probability of class 1."""
        return nets.ends_in_sigmoid(self.model)


@contextmanager
def evaluation(model):
    """*model* in evaluation mode, its modules' modes and parameters' gradients as they were after
    (the explainers switch to eval and clear gradients)."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.grad) for p in model.parameters()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, g in grads:
            p.grad = g


# -- rows -----------------------------------------------------------------------------------------------
def as_rows(X: Any, columns: list[str] | None = None) -> tuple[np.ndarray, list[str], list[str] | None]:
    """*X* (array, tensor, pandas or polars frame) as a numpy array of rows, its feature names and
    its index labels (a frame's), a frame's columns in the order of *columns* when given."""
    import pandas as pd

    from .signature import as_pandas

    X = as_pandas(X)
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        if columns and set(columns) <= {str(c) for c in X.columns}:
            X = X.rename(columns=str)[columns]
        from .explain_model import numeric

        text = [str(c) for c, t in X.dtypes.items() if not numeric(t)]
        if text:
            raise BadInput(f"a network takes numbers: encode column(s) {', '.join(text[:10])} first")
        arr = X.to_numpy()
        return _numbers(arr), [str(c) for c in X.columns], [str(i) for i in X.index]
    if hasattr(X, "detach"):  # a torch tensor
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X)
    except Exception:
        raise BadInput(f"cannot explain a {type(X).__name__}: give an array, a tensor or a DataFrame") from None
    if arr.ndim < 2:
        raise BadInput(f"X should have a row per sample (rows x features, or rows x image); got shape {arr.shape}")
    return _numbers(arr), feature_names(arr.shape[1:]), None


def _numbers(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    try:
        return arr.astype(np.float64) if arr.dtype.kind != "f" else arr
    except (TypeError, ValueError):
        raise BadInput("a network takes numbers: X holds values that are not") from None


# -- outputs --------------------------------------------------------------------------------------------
def read_outputs(net: Network, out: np.ndarray) -> dict[str, Any]:
    """What the network's outputs are: classes, the measure the values are in, and the predictions
    of each row (the Explanation's ``predicted``/``proba`` or ``prediction``)."""
    names = getattr(net.model, "classes_", None)
    said = nets.read_task(out, net.ends_in_sigmoid())
    if said["task"] == "regression":
        return {"classes": None, "output": "prediction", "prediction": out[:, 0] if out.shape[1] == 1 else out}
    k = len(said["classes"])
    classes = list(names) if names is not None and len(names) == k else said["classes"]
    proba = nets.probabilities(out, said)
    if said["outputs"] == "probability":
        return {"classes": classes, "output": f"probability of class {classes[1]}",
                "predicted": nets.top_class(out, said), "proba": proba}
    return {"classes": classes, "output": "probability" if said["outputs"] == "probabilities" else "logit",
            "predicted": nets.top_class(out, said), "proba": proba}


def network_digest(model: Any) -> str | None:
    """A digest of the network's class, architecture and weights (only to recognise it again)."""
    from blake3 import blake3

    h = blake3()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    try:
        if is_keras(model):
            h.update(model.to_json().encode())
            weights = model.get_weights()
        else:
            h.update(repr(model).encode())
            weights = [t.detach().cpu().float().numpy() for t in model.state_dict().values()]
        for w in weights:
            h.update(str(w.shape).encode())
            h.update(np.ascontiguousarray(w).tobytes())
    except Exception:  # a network we cannot read: no digest, so no cache (explained afresh each time)
        return None
    return h.hexdigest()


# -- the explainers -------------------------------------------------------------------------------------
def network_values(net: Network, X: np.ndarray, bg: np.ndarray, out: np.ndarray, say, progress: bool,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """SHAP values of the rows *X* (rows x features x outputs), their base values (rows x
    outputs), the explainer's name and notes; the explainers tried in the module's order."""
    try:
        import shap
    except ImportError:
        raise BadInput("SHAP explanations need the shap package: pip install shap") from None
    n, k = len(X), out.shape[1]
    tol = TOLERANCE * max(1.0, float(np.abs(out).max()) if out.size else 1.0)
    notes: list[str] = []

    def gap(values, base) -> float:
        return float(np.abs(values.sum(axis=1) + base - out).max())

    state = np.random.get_state()  # SHAP's explainers seed numpy's global generator: the user's goes on
    try:
        if net.torch:
            with evaluation(net.model):
                module = net.module()
                Xt, bgt = net.tensor(X), net.tensor(bg)
                try:
                    values, base, unknown = _deep(shap, module, Xt, bgt, n, k, say, progress)
                    err = gap(values, base)
                    if err <= tol:
                        notes.append(f"additivity holds: SHAP values + E[f(x)] = f(x) within {err:.2g} (max over "
                                     f"{n:,} rows x {k} output{'s' if k > 1 else ''}; allowed {tol:.2g})")
                        return values, base, "DeepExplainer (DeepLIFT, additive)", notes
                    why = (f"DeepLIFT has no rule for {', '.join(sorted(unknown))}" if unknown else
                           "Keras layers are no torch modules its rules can hook" if net.keras else
                           "an operation outside DeepLIFT's rules (a function called in forward rather than a layer)")
                    notes.append(f"DeepExplainer's values missed the output by up to {err:.3g} (allowed {tol:.2g}): "
                                 f"{why}; expected gradients instead")
                except (MlopsError, KeyboardInterrupt):
                    raise
                except Exception as e:
                    notes.append(f"DeepExplainer could not run: {first_line(e, 200)}")
                try:
                    values, base = _gradient(shap, module, Xt, bgt, net, bg, n, k, say, progress, seed)
                    notes.append(f"expected gradients approximate f(x) - E[f(x)]: off by up to {gap(values, base):.3g} "
                                 f"on these rows ({GRADIENT_SAMPLES} samples a row)")
                    return values, base, "GradientExplainer (expected gradients)", notes
                except (MlopsError, KeyboardInterrupt):
                    raise
                except Exception as e:
                    notes.append(f"GradientExplainer could not run: {first_line(e, 200)}")
        else:
            notes.append("the gradient explainers run through PyTorch: this Keras model runs on another backend "
                         "(KERAS_BACKEND=torch would allow them)")
        values, base = _agnostic(shap, net, X, bg, n, k, say, progress, seed)
    finally:
        np.random.set_state(state)
    notes.append(f"model-agnostic: SHAP values + E[f(x)] = f(x) within {gap(values, base):.2g}; features masked "
                 f"with {min(len(bg), AGNOSTIC_BACKGROUND)} of the background's rows")
    return values, base, "PermutationExplainer (model-agnostic)", notes


def _deep(shap, module, Xt, bgt, n, k, say, progress):
    unknown: set[str] = set()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        explainer = shap.DeepExplainer(module, bgt)
        parts = _in_chunks(lambda i, j: explainer.shap_values(Xt[i:j], check_additivity=False), n, "DeepExplainer",
                           say, progress)
    for w in seen:
        text = str(w.message)
        if text.startswith("unrecognized nn.Module"):
            unknown.add(text.split(":", 1)[1].strip())
    values = np.concatenate([np.asarray(p).reshape(len(p), -1, k) for p in parts])
    base = np.tile(np.asarray(explainer.expected_value, dtype=float).reshape(1, k), (n, 1))
    return values, base, unknown


def _gradient(shap, module, Xt, bgt, net, bg, n, k, say, progress, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.GradientExplainer(module, bgt)
        parts = _in_chunks(lambda i, j: explainer.shap_values(Xt[i:j], nsamples=GRADIENT_SAMPLES, rseed=seed + i),
                           n, "GradientExplainer", say, progress)
    values = np.concatenate([np.asarray(p).reshape(len(p), -1, k) for p in parts])
    base = np.tile(net.outputs(bg).mean(axis=0, keepdims=True), (n, 1))  # E[f(x)] over the background
    return values, base


def _agnostic(shap, net, X, bg, n, k, say, progress, seed):
    flat = X.reshape(n, -1)
    if len(bg) > AGNOSTIC_BACKGROUND:
        bg = bg[np.sort(np.random.default_rng(0).choice(len(bg), AGNOSTIC_BACKGROUND, replace=False))]
    masker = shap.maskers.Independent(bg.reshape(len(bg), -1).astype(float), max_samples=len(bg))
    explainer = shap.PermutationExplainer(NetworkPredictor(net, X.shape[1:], X.dtype).raw, masker, seed=seed)
    evals = max(500, 2 * flat.shape[1] + 1)
    parts = _in_chunks(lambda i, j: explainer(flat[i:j].astype(float), max_evals=evals, silent=True), n,
                       "PermutationExplainer", say, progress)
    values = np.concatenate([np.asarray(p.values).reshape(len(p.values), -1, k) for p in parts])
    base = np.concatenate([np.asarray(p.base_values, dtype=float).reshape(len(p.values), k) for p in parts])
    return values, base


def _in_chunks(run, n: int, name: str, say, progress: bool) -> list:
    """``run(i, j)`` over rows i..j in chunks of ``CHUNK``; a progress bar when the first chunk says
    the rest takes more than about a second."""
    t0 = time.perf_counter()
    parts = [run(0, min(n, CHUNK))]
    if n <= CHUNK:
        return parts
    estimate = (time.perf_counter() - t0) / CHUNK * (n - CHUNK)
    bar = None
    if estimate > 1.0:
        say(f"SHAP {name}: {n:,} rows, about {estimate:.0f} s")
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=CHUNK, unit="row", desc="SHAP", disable=not progress, leave=False)
    try:
        for i in range(CHUNK, n, CHUNK):
            parts.append(run(i, min(n, i + CHUNK)))
            if bar is not None:
                bar.update(min(n, i + CHUNK) - i)
    finally:
        if bar is not None:
            bar.close()
    return parts


# -- LIME -----------------------------------------------------------------------------------------------
class NetworkPredictor:
    """The network as LIME (and the model-agnostic explainer) call a model on rows of the explained
    table: ``predict``."""

    def __init__(self, net: Network, shape: tuple, dtype):
        self.net, self.shape, self.dtype = net, shape, dtype

    def raw(self, X) -> np.ndarray:
        """The outputs for flattened rows; whole numbers (codes) stay whole after masking or sampling."""
        a = np.asarray(X, dtype=float)
        a = np.rint(a).astype(self.dtype) if np.issubdtype(self.dtype, np.integer) else a.astype(self.dtype)
        return self.net.outputs(a.reshape(len(a), *self.shape))

    def predict(self, X) -> np.ndarray:
        return self.raw(X)[:, 0]


class NetworkClassifier(NetworkPredictor):
    """... and ``predict_proba`` and ``classes_`` for a classifier (softmax of logits)."""

    def __init__(self, net: Network, shape: tuple, dtype, classes: list):
        super().__init__(net, shape, dtype)
        self.classes_ = np.asarray(classes, dtype=object)

    def predict_proba(self, X) -> np.ndarray:
        return read_outputs(self.net, self.raw(X))["proba"]

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# -- the verb -------------------------------------------------------------------------------------------
def explain_network(model: Any, X: Any, *, method: str, rows: int, row: int | None, background: Any, class_: Any,
                    y: Any, seed: int, cache: bool, progress: bool, out, store, model_version, model_digest,
                    data_version) -> Explanation:
    """:func:`mlops_jupyter.models.explain.explain` for a network (its arguments are checked and
    the model and data refs resolved there); see the module docstring."""
    import json

    import pandas as pd

    from . import explain_store
    from .explain_lime import training_sample
    from .explain_model import frame_digest, labels_of

    net = Network(model)
    arr, features, index = as_rows(X)
    total = len(arr)
    if total == 0:
        raise BadInput("X has no rows to explain")
    Xe = arr[:rows]
    row = 0 if row is None else row
    if not 0 <= row < len(Xe):
        raise BadInput(f"--row {row} is outside the {len(Xe):,} explained rows (0..{len(Xe) - 1})")
    labels = labels_of(y, total, len(Xe))
    if method == "lime" and arr.ndim != 2:
        raise BadInput("LIME perturbs the columns of a table: explain a network on images with method shap")
    given = background is not None
    if given:
        bg, _, _ = as_rows(background, features if index is not None else None)
        if bg.shape[1:] != arr.shape[1:]:
            raise BadInput(f"--background rows are of shape {bg.shape[1:]}, X's of {arr.shape[1:]}")
        if len(bg) == 0:
            raise BadInput("--background has no rows")
    pool = bg if given else arr  # the explainers' cost grows with it: at most BACKGROUND rows, drawn with seed 0
    bg = (pool if len(pool) <= BACKGROUND else
          pool[np.sort(np.random.default_rng(0).choice(len(pool), BACKGROUND, replace=False))]).astype(arr.dtype)
    try:
        outputs = net.outputs(Xe)
    except (MlopsError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise BadInput(f"the network cannot run on X: {first_line(e, 200)}") from None
    said = read_outputs(net, outputs)
    classes = said["classes"]
    start = None
    if class_ is not None:
        known = [str(c) for c in classes or []]
        if str(class_) not in known:
            raise BadInput(f"--class {class_!r} is not one of the network's classes"
                           + (f": {', '.join(known)}" if known else " (it has one output: not a classifier)"))
        start = known.index(str(class_))
    frame = pd.DataFrame(Xe.reshape(len(Xe), -1), columns=features)
    options = {"method": method, "rows": len(Xe), "row": row, "class": None if class_ is None else str(class_),
               "background": frame_digest(pd.DataFrame(bg.reshape(len(bg), -1))), "seed": int(seed), "v": 2,
               "network": 1}
    model_digest = model_digest or network_digest(model)
    data_digest = frame_digest(frame)
    table = arr.ndim == 2  # LIME perturbs a table's columns; a picture's pixels one by one say little
    predictor = None if not table else (NetworkClassifier(net, arr.shape[1:], arr.dtype, classes) if classes else
                                        NetworkPredictor(net, arr.shape[1:], arr.dtype))
    key = None
    if model_digest:
        from ..store.blobs import hash_bytes

        key = hash_bytes(json.dumps([model_digest, data_digest, options], sort_keys=True).encode())
    fields = explain_store.load(store, key) if key and cache else None
    if fields is not None:
        ex = Explanation(**fields)
        ex.labels = labels if labels is not None else ex.labels
    else:
        say = out or (lambda s: None)
        if total > len(Xe):
            say(f"explaining the first {len(Xe):,} of {total:,} rows (--rows changes this)")
        if method == "shap":
            values, base, name, notes = network_values(net, Xe, bg, outputs, say, progress)
            notes.append(f"background: {len(bg):,} " + (f"of the {len(pool):,} rows of --background" if given
                                                         else f"rows sampled from X's {total:,} (seed 0)"))
            if values.shape[2] == 1:
                values, base = values[:, :, 0], base[:, 0]
            ex = Explanation("shap", name, features, frame, values, base, classes, said["output"], notes)
        else:
            ex = Explanation("lime", "LimeTabularExplainer", features, frame, None, None, classes,
                             "probability" if classes else "prediction")
        ex.row, ex.key, ex.seed, ex.labels = row, key, int(seed), labels
        ex.index = index[:len(Xe)] if index is not None else [str(i) for i in range(len(Xe))]
        ex.predicted, ex.proba, ex.prediction = said.get("predicted"), said.get("proba"), said.get("prediction")
    ex.model, ex.start_class, ex.data_version = predictor, start, data_version
    ex.model_version = model_version.ref if model_version else None
    if table:
        ex.lime_training = training_sample(pd.DataFrame(pool.reshape(-1, len(features)),
                                                        columns=features), ex.seed)
    if fields is None:
        if method == "lime":
            ex.lime_row(row)
        if key is not None:
            explain_store.save(store, ex, model_digest, data_digest, options, model_version)
    return ex
