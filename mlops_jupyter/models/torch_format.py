"""PyTorch models, saved as an exported program plus safetensors weights: loading runs nothing from the file.

``torch.export`` traces the module on the registration example into a graph of ATen operators, with
the batch axis left free. The version's bytes are a zip of:

- ``program.json``: the graph, as torch's own serializer writes it (a JSON description of
  operators by name; reading it imports no class and unpickles nothing);
- ``weights.safetensors`` / ``constants.safetensors``: parameters, buffers and lifted constants;
- ``example.safetensors``: up to 256 rows of the example (what an ONNX or int8 form is checked on).

``torch.export.save`` is not used: its archive keeps the example inputs as a ``torch.save`` pickle,
and ``torch.export.load`` falls back to ``weights_only=False`` for them. Loading returns the
program's module (``ExportedProgram.module()``), called exactly like the original, in a process
where the model's class does not exist. A program saved on a GPU is read onto the CPU when no GPU
is there (its device annotations are rewritten before the graph is built, as ``map_location`` does
for ``torch.load``).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from typing import Any

from ..exceptions import BadInput
from . import nets
from ..exceptions import first_line
from .flavors import Library, ModelFormat, Saved, qualname, version_of

FILES = ("program.json", "weights.safetensors", "constants.safetensors", "example.safetensors")


class TorchFormat(ModelFormat):
    """``torch.nn.Module`` as an exported program and safetensors weights (no pickle anywhere)."""

    library = "torch"
    file_name = "model.pt2.zip"

    def detect(self, model: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def save(self, model: Any, library: Library, allow_pickle: bool = False, example: Any = None) -> Saved:
        import torch

        ex = nets.example_of(example, forward_names(model))
        device = module_device(model)
        try:
            ep, output = export(model, ex, device, allow_pickle)
        except BadInput:
            if not allow_pickle:
                raise
            from .flavors import model_formats

            return model_formats.get("pickle").save(model, library, allow_pickle)  # as the user allowed
        sig = nets.tensor_signature(ex, output, sigmoid=nets.ends_in_sigmoid(model))
        constants = {}
        for k, v in ep.constants.items():
            if not isinstance(v, torch.Tensor):
                raise BadInput(f"the exported {type(model).__name__} holds a {type(v).__name__} constant ({k}), "
                               "which safetensors cannot store; pass --pickle (pickle=True) to store it as a pickle")
            constants[k] = v
        from torch._export.serde import serialize as serde

        art = serde.serialize(ep, serialize_state_dict=False, serialize_constants=False,
                              serialize_example_inputs=False)
        data = zip_bytes({"program.json": art.exported_program,
                          "weights.safetensors": tensors_bytes(ep.state_dict, parameters=ep.graph_signature.parameters),
                          "constants.safetensors": tensors_bytes(constants),
                          "example.safetensors": tensors_bytes({k: torch.from_numpy(v.copy())
                                                                for k, v in ex.arrays.items()})})
        lib = Library("torch", version_of("torch"), qualname(model))
        saved = lib.saved(data, "torch", extra={"device": str(device), "call": ex.call,
                                                "inputs": list(ex.arrays)})
        saved.signature = sig
        return saved

    def load(self, data: bytes, trusted: list[str], extra: dict, allow_pickle: bool = False,
             label: str = "this model") -> Any:
        import torch
        from torch._export.serde import serialize as serde

        files = read_zip(data, label)
        program = files["program.json"]
        if not torch.cuda.is_available():
            program = on_cpu(program)
        art = serde.SerializedArtifact(program, load_weights(files["weights.safetensors"]),
                                       load_tensors(files["constants.safetensors"]), b"")
        try:
            ep = serde.deserialize(art)
        except Exception as e:
            raise BadInput(f"torch {torch.__version__} cannot read the program of {label} "
                           f"(saved with torch {extra.get('torch', '?')}): {first_line(e)}") from None
        module = ep.module()
        module.mlops_program = ep  # torch.onnx.export takes the program itself
        module.mlops_example = {k: v.numpy() for k, v in load_tensors(files["example.safetensors"]).items()}
        return module

    def predictor(self, model: Any, signature: dict | None) -> nets.NetPredictor:
        return nets.NetPredictor(forward_function(model, signature), signature or {}, module=model)


# -- saving ----------------------------------------------------------------------------------------
def forward_names(model: Any) -> list[str]:
    """The names of the module's ``forward`` parameters (what inputs are called in the signature)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def module_device(model: Any):
    import torch

    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def call_args(ex: nets.Example, tensors: dict) -> tuple[tuple, dict]:
    """(args, kwargs) calling a model the way the example was given."""
    if ex.call == "kwargs":
        return (), tensors
    if ex.call == "dict":
        return (tensors,), {}
    return tuple(tensors.values()), {}


def export(model: Any, ex: nets.Example, device, allow_pickle: bool):
    """The exported program (batch axis free) and the original's output on the example (numpy)."""
    import torch

    traced = ex if ex.rows >= 2 else nets.Example({k: v.repeat(2, axis=0) for k, v in ex.arrays.items()}, ex.call)
    tensors = {k: torch.from_numpy(v.copy()).to(device) for k, v in traced.arrays.items()}
    args, kwargs = call_args(traced, tensors)
    batch = torch.export.Dim("batch")
    free = {k: {0: batch} for k in tensors}
    dynamic = (free if ex.call == "kwargs" else ({k: free[k] for k in tensors},) if ex.call == "dict"
               else tuple(free.values()))
    was_training = model.training
    model.eval()  # dropout off, batch norm on running statistics: the graph is the inference graph
    try:
        with torch.no_grad():
            want = nets.read_outputs(model(*args, **kwargs))
            try:
                ep = torch.export.export(model, args, kwargs or None, dynamic_shapes=dynamic, strict=False)
            except Exception as e:
                hint = ("pass --pickle (pickle=True) to store it as a pickle, which runs code when it is loaded"
                        if not allow_pickle else "")
                raise BadInput(f"torch.export cannot export this {type(model).__name__}: {first_line(e)}"
                               f"{'; ' + hint if hint else ''}") from None
            try:
                got = nets.read_outputs(ep.module()(*args, **kwargs))
            except Exception as e:  # exported, but the program cannot run (a submodule named like a GraphModule attribute)
                raise BadInput(f"the exported {type(model).__name__} cannot run: {first_line(e)}; pass --pickle "
                               "(pickle=True) to store it as a pickle") from None
    finally:
        model.train(was_training)
    import numpy as np

    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        raise BadInput(f"the exported {type(model).__name__} does not answer as the module does on the example "
                       f"(largest difference {float(np.abs(got - want).max()):.3g}); pass --pickle to store it as is")
    return ep, want[: ex.rows]


def tensors_bytes(tensors: dict, parameters: list[str] | None = None) -> bytes:
    """safetensors bytes; *parameters* (which entries are parameters, not buffers) in its metadata."""
    from safetensors.torch import save

    meta = {"parameters": json.dumps(list(parameters))} if parameters is not None else None
    # own contiguous copies: safetensors refuses tensors sharing memory (tied weights, views)
    return save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=meta)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


# -- loading ---------------------------------------------------------------------------------------
def read_zip(data: bytes, label: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            missing = [f for f in FILES if f not in names]
            if missing:
                raise BadInput(f"{label} is not a saved PyTorch program: {', '.join(missing)} missing")
            return {f: z.read(f) for f in FILES}
    except zipfile.BadZipFile:
        raise BadInput(f"{label} is not a saved PyTorch program (not a zip file)") from None


def load_tensors(data: bytes) -> dict:
    from safetensors.torch import load

    return load(data)  # always onto the CPU


def load_weights(data: bytes) -> dict:
    """The state dict, with the entries the program takes as parameters made ``nn.Parameter`` again."""
    import torch

    tensors = load_tensors(data)
    # the safetensors header: 8 bytes of length (little-endian), then JSON with "__metadata__"
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
    params = set(json.loads(meta.get("parameters", "[]")))
    return {k: torch.nn.Parameter(v, requires_grad=False) if k in params else v for k, v in tensors.items()}


def on_cpu(program: bytes) -> bytes:
    """The serialized program with every device annotation (tensor metadata, ``device=`` arguments) on the CPU."""
    if b'"cuda"' not in program and b'"mps"' not in program and b'"xpu"' not in program:
        return program
    doc = json.loads(program)

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("device", "as_device") and isinstance(v, dict) and v.get("type") not in (None, "cpu", "meta"):
                    node[k] = {"type": "cpu", "index": None}
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return json.dumps(doc).encode()


def forward_function(module: Any, signature: dict | None):
    """arrays by input name -> the first output as numpy, calling *module* as it was exported."""
    import numpy as np
    import torch

    sig = signature or {}
    call = sig.get("call", "args")
    names = [s["name"] for s in sig.get("inputs", [])]

    def forward(arrays: dict):
        # a read-only array (a column of a pandas 3 frame, copy-on-write) is copied: torch writes through views
        tensors = {n: torch.from_numpy(np.require(arrays[n], requirements="W")) for n in names}
        args, kwargs = call_args(nets.Example(tensors, call), tensors)
        with torch.inference_mode():
            return nets.read_outputs(module(*args, **kwargs))

    return forward



FORMAT = TorchFormat()  # what models.flavors.model_formats registers as "torch"
