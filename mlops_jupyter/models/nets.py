"""What PyTorch and Keras models share once saved: tensor signatures, and a predict face.

A neural network takes tensors, not a table. Its signature (``"type": "tensors"``) records each
input's name, shape (the first axis, the batch, left free) and dtype, how the model is called
(positional tensors, keywords, or one dict), and what its first output means, read off the example:

- ``(n, k)`` with k >= 2: a classifier; ``"outputs": "probabilities"`` when every row is already a
  probability distribution, else ``"logits"`` (probabilities are their softmax);
- ``(n,)`` or ``(n, 1)``: a regressor, or a binary classifier (``"outputs": "probability"``, the
  probability of class 1) when the network ends in a sigmoid.

What the outputs cannot tell, the user says with ``task=``: ``"regression"`` for a network with
several outputs that are not class scores, ``"classification"`` for one output that is the logit of
class 1 (a network trained with ``BCEWithLogitsLoss``: ``"outputs": "logit"``, probabilities are its
sigmoid). The explainers read outputs by the same rules (:func:`read_task`).

:class:`NetPredictor` gives a network the face the server, the explainers and evaluation use
(``predict`` / ``predict_proba`` on numpy arrays, or on a dict of them for several inputs), over a
function the format supplies that maps numpy inputs to the numpy first output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..exceptions import BadInput

EXAMPLE_ROWS_KEPT = 256  # rows of the example stored with the model (checks of ONNX and int8 forms)
EXAMPLE_VALUES_IN_SIGNATURE = 4096  # the signature's JSON example only when this small


@dataclass
class Example:
    """The example as the model is called with it: numpy arrays by input name, and the call style.

    *call*: ``"args"`` (model(*tensors)), ``"kwargs"`` (model(**tensors)) or ``"dict"`` (model(dict))."""

    arrays: dict[str, Any]
    call: str

    @property
    def rows(self) -> int:
        return len(next(iter(self.arrays.values())))

    def head(self, n: int) -> "Example":
        return Example({k: v[:n] for k, v in self.arrays.items()}, self.call)


def as_numpy(x: Any, what: str):
    """*x* (a numpy array, a torch tensor, a DataFrame, nested lists) as a numpy array."""
    import numpy as np

    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    elif hasattr(x, "to_numpy"):
        x = x.to_numpy()
    try:
        arr = np.asarray(x)
    except Exception:
        raise BadInput(f"{what} should be an array or a tensor; got a {type(x).__name__}") from None
    if arr.dtype == object or arr.ndim == 0:
        raise BadInput(f"{what} should be an array or a tensor with a batch axis; got a {type(x).__name__}")
    return arr


def example_of(example: Any, input_names: list[str] | None = None) -> Example:
    """The user's example (an array, a tensor, a tuple of them, or a dict) as an :class:`Example`.

    *input_names*: the parameter names of the model's ``forward``/``call``, for positional inputs."""
    if example is None:
        raise BadInput("a neural network is registered with an input example (--example X_val[:32], "
                       "example=...): it is traced on it, and its outputs are checked against it")
    if isinstance(example, dict):
        if not example:
            raise BadInput("the example dict is empty")
        arrays = {str(k): as_numpy(v, f"example[{k!r}]") for k, v in example.items()}
        names = set(input_names or [])
        call = "kwargs" if names and set(arrays) <= names else "dict"
    elif isinstance(example, (tuple, list)) and example and all(hasattr(v, "shape") for v in example):
        names = list(input_names or [])
        arrays = {(names[i] if i < len(names) else f"input_{i}"): as_numpy(v, f"example[{i}]")
                  for i, v in enumerate(example)}
        call = "args"
    else:
        name = (input_names or ["x"])[0]
        arrays = {name: as_numpy(example, "the example")}
        call = "args"
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        raise BadInput(f"the example's inputs have different numbers of rows: {sorted(sizes)}")
    if sizes.pop() < 1:
        raise BadInput("the example has no rows")
    return Example({k: v[:EXAMPLE_ROWS_KEPT] for k, v in arrays.items()}, call)


def read_outputs(out: Any) -> Any:
    """The model's first output as a numpy array (a tuple/list/dict of outputs: the first one)."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return as_numpy(out, "the model's output")


def tensor_signature(ex: Example, output: Any, sigmoid: bool = False, task: str | None = None) -> dict:
    """The ``tensors`` signature of a model called as *ex* that answered *output* (numpy); *sigmoid*:
    the network ends in one; *task*: what the user said the outputs are (else read off them)."""
    import numpy as np

    inputs = [{"name": k, "shape": [None, *map(int, v.shape[1:])], "dtype": str(v.dtype)} for k, v in ex.arrays.items()]
    sig: dict = {"type": "tensors", "inputs": inputs, "call": ex.call,
                 "output": {"shape": [None, *map(int, output.shape[1:])], "dtype": str(output.dtype)}}
    sig.update(read_task(output, sigmoid, task))
    values = sum(int(np.prod(v.shape[1:], dtype=np.int64)) for v in ex.arrays.values())
    if values * min(ex.rows, 5) <= EXAMPLE_VALUES_IN_SIGNATURE:
        small = ex.head(5)
        sig["example"] = {k: v.tolist() for k, v in small.arrays.items()}
    return sig


TASKS = ("classification", "regression")
SINGLE = ("probability", "logit")  # one output: class 1's probability, or its logit


def read_task(output: Any, sigmoid: bool = False, task: str | None = None) -> dict:
    """``task``, ``outputs`` and ``classes`` of a network whose first output on the example is *output*.

    Raises:
        BadInput: a *task* that is not one, or classification of outputs that cannot be class scores."""
    import numpy as np

    if task is not None and task not in TASKS:
        raise BadInput(f"task {task!r} is not one of {', '.join(TASKS)}")
    rows = np.asarray(output, dtype=np.float64)
    rows = rows.reshape(len(rows), -1) if rows.ndim <= 2 else rows
    k = rows.shape[1] if rows.ndim == 2 else 0
    if task == "regression" or (task is None and (k == 0 or (k == 1 and not sigmoid))):
        return {"task": "regression"}
    if k == 0:
        raise BadInput(f"outputs of shape {list(output.shape[1:])} per row are not class scores: a classifier "
                       "answers one score per class (or one for class 1)")
    if k == 1:
        unit = bool(np.all((rows >= 0) & (rows <= 1)))
        if task is None and not unit:  # a sigmoid that does not end the output after all
            return {"task": "regression"}
        return {"task": "classification", "outputs": "probability" if sigmoid and unit else "logit",
                "classes": [0, 1]}
    is_proba = bool((rows >= -1e-6).all() and (rows <= 1 + 1e-6).all() and np.allclose(rows.sum(axis=1), 1, atol=1e-4))
    return {"task": "classification", "outputs": "probabilities" if is_proba else "logits", "classes": list(range(k))}


def with_task(sig: dict, task: str) -> dict:
    """*sig* (a ``tensors`` signature) read again as *task* says, on its stored output meaning."""
    import numpy as np

    if sig.get("type") != "tensors":
        raise BadInput("task= is for neural networks: scikit-learn, XGBoost and LightGBM models say what they are")
    if task not in TASKS:
        raise BadInput(f"task {task!r} is not one of {', '.join(TASKS)}")
    if sig.get("task") == task:
        return sig
    shape = [1, *[d or 1 for d in sig["output"]["shape"][1:]]]
    read = read_task(np.zeros(shape), sig.get("outputs") == "probability", task)
    out = {k: v for k, v in sig.items() if k not in ("task", "outputs", "classes")}
    out.update(read)
    return out


def ends_in_sigmoid(model: Any) -> bool:
    """The network's last operation is a sigmoid (a Keras model, a torch module or an fx graph)."""
    if "keras" in type(model).__module__.split(".")[0]:
        layers = getattr(model, "layers", None) or [model]
        return getattr(getattr(layers[-1], "activation", None), "__name__", "") == "sigmoid"
    graph = getattr(model, "graph", None)
    if graph is not None and hasattr(graph, "nodes"):  # a torch.fx GraphModule: the node feeding the output
        out = [n for n in graph.nodes if n.op == "output"]
        last = out[0].args[0] if out else None
        if isinstance(last, (tuple, list)):
            last = last[0] if last else None
        if getattr(last, "op", None) == "call_module":
            return type(model.get_submodule(last.target)).__name__ == "Sigmoid"
        return "sigmoid" in str(getattr(last, "target", ""))
    modules = getattr(model, "modules", None)
    if modules is None:
        return False
    leaves = [x for x in modules() if not list(x.children())]
    return bool(leaves) and type(leaves[-1]).__name__ == "Sigmoid"


def inputs_from(sig: dict, X: Any) -> dict[str, Any]:
    """*X* (an array for a one-input model, or a dict by input name) as arrays in the signature's dtypes.

    A wrong shape or a missing input is one BadInput line naming the input and the shape expected."""

    specs = sig["inputs"]
    if not isinstance(X, dict):
        if len(specs) != 1:
            raise BadInput(f"the model takes {len(specs)} inputs ({', '.join(s['name'] for s in specs)}): "
                           "give them by name")
        X = {specs[0]["name"]: X}
    missing = [s["name"] for s in specs if s["name"] not in X]
    if missing:
        raise BadInput(f"missing input(s) {', '.join(missing)}; the model takes "
                       f"{', '.join(s['name'] for s in specs)}")
    unknown = [k for k in X if k not in {s["name"] for s in specs}]
    if unknown:
        raise BadInput(f"unknown input(s) {', '.join(map(str, unknown))}; the model takes "
                       f"{', '.join(s['name'] for s in specs)}")
    out = {}
    rows = {}
    for s in specs:
        arr = as_numpy(X[s["name"]], f"input {s['name']}")
        want = s["shape"]
        if arr.ndim != len(want) or any(w is not None and w != a for w, a in zip(want, arr.shape)):
            raise BadInput(f"input {s['name']} has shape {shape_text(arr.shape)}; the model expects "
                           f"{shape_text(want)}")
        try:
            out[s["name"]] = arr.astype(s["dtype"], copy=False)
        except (TypeError, ValueError):
            raise BadInput(f"input {s['name']} of type {arr.dtype} cannot be read as {s['dtype']}") from None
        rows[s["name"]] = len(arr)
    if len(set(rows.values())) > 1:
        raise BadInput("the inputs have different numbers of rows: "
                       + ", ".join(f"{k} {n}" for k, n in rows.items()))
    return out


def shape_text(shape) -> str:
    return "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"


def describe(sig: dict) -> str:
    parts = [f"{s['name']} {shape_text(s['shape'])} {s['dtype']}" for s in sig.get("inputs", [])]
    out = sig.get("output")
    tail = f" -> {shape_text(out['shape'])} {out['dtype']}" if out else ""
    return "tensors " + ", ".join(parts) + tail


def example_arrays(sig: dict | None) -> dict[str, Any] | None:
    """The signature's stored example rows as arrays by input name, or None."""
    import numpy as np

    if not sig or not isinstance(sig.get("example"), dict):
        return None
    dtypes = {s["name"]: s["dtype"] for s in sig.get("inputs", [])}
    return {k: np.asarray(v, dtype=dtypes.get(k)) for k, v in sig["example"].items()}


class NetPredictor:
    """``predict`` / ``predict_proba`` for a network, over *forward* (arrays by name -> first output).

    Classifiers predict the class with the largest output; their probabilities are the outputs
    themselves when the model ends in a softmax, else the softmax of its logits."""

    def __init__(self, forward: Callable[[dict], Any], signature: dict, module: Any = None):
        self.forward = forward
        self.signature = signature
        self.module = module  # the network itself (explainers use it)
        self.task = signature.get("task", "regression")
        if self.task == "classification":
            import numpy as np

            self.classes_ = np.asarray(signature.get("classes") or range(signature["output"]["shape"][1]))

    def outputs(self, X: Any):
        return self.forward(inputs_from(self.signature, X))

    def predict(self, X: Any):

        y = self.outputs(X)
        if self.task == "classification":
            return self.classes_[top_class(y, self.signature)]
        return y.reshape(len(y), -1)[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y

    def predict_proba(self, X: Any):
        if self.task != "classification":
            raise AttributeError("a regressor has no probabilities")
        return probabilities(self.outputs(X), self.signature)

    def __call__(self, X: Any):
        return self.outputs(X)


def probabilities(y: Any, sig: dict):
    """Class probabilities from a classifier's outputs (softmax of logits; probabilities as they are)."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    if sig.get("outputs") in SINGLE:
        p = y.reshape(len(y))
        if sig["outputs"] == "logit":
            p = 1.0 / (1.0 + np.exp(-p))
        return np.stack([1.0 - p, p], axis=1)
    if sig.get("outputs") == "probabilities":
        return y
    z = np.exp(y - y.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def top_class(y: Any, sig: dict):
    """Each row's predicted class position from a classifier's outputs *y*."""
    import numpy as np

    y = np.asarray(y)
    if sig.get("outputs") in SINGLE:
        return (y.reshape(len(y)) >= (0.5 if sig["outputs"] == "probability" else 0.0)).astype(np.int64)
    return np.argmax(y, axis=1)

