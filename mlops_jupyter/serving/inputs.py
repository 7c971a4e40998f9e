"""Request bodies -> a DataFrame (or a network's arrays) checked against the model's signature.

Accepted forms (all JSON):
- records: ``[{"age": 31, ...}, ...]`` (or one object)
- columns: ``{"columns": [...], "data": [[...], ...]}``
- MLflow's ``{"dataframe_split": {"columns": [...], "data": [...]}}``,
  ``{"dataframe_records": [...]}`` and ``{"inputs": ...}`` (records, columns dict or rows)
- for networks (``"type": "tensors"`` signatures), tensors with the batch first: MLflow's
  ``{"inputs": [[...], ...]}`` (one input) and ``{"inputs": {"image": [...], "meta": [...]}}``
  (by input name), TF-serving's ``{"instances": [...]}`` (one row each; for several inputs each
  row an object by input name), and the forms above with input names as columns
Any of the object forms may carry ``"key"`` (A/B stickiness) and ``"proba": true``.

:func:`parse` does not know the model: a body that could be tensors keeps them raw
(:attr:`Parsed.tensors`) beside the table read from it, and :func:`to_frame` reads whichever the
signature asks for. A body that is no table is refused only when a model that takes a table gets it.
"""

from __future__ import annotations

import functools

import math
from dataclasses import dataclass
from typing import Any


class InputError(ValueError):
    """A request the server refuses with a 4xx; *status* and a message naming the problem."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass
class Parsed:
    columns: list[str]  # for a network: its input names, once read (the prediction log's columns)
    rows: list[list[Any]]  # for a network: none (its rows are in ``arrays``)
    key: str | None = None
    proba: bool = False
    tensors: Any = None  # the raw "inputs" / "instances" value, read with a network's signature
    tensor_key: str = ""  # which of the two it came as (named in messages)
    problem: str | None = None  # why the body is no table: raised when a model that takes one gets it
    arrays: dict[str, Any] | None = None  # a network's inputs as it takes them (logged as raw bytes)


def _rows_from_records(records: list) -> tuple[list[str], list[list]]:
    if not records:
        raise InputError("no rows to predict", 422)
    if not all(isinstance(r, dict) for r in records):
        raise InputError("records must be JSON objects, one per row", 422)
    cols: list[str] = list(records[0])
    seen = set(cols)
    for r in records[1:]:
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols, [[r.get(c) for c in cols] for r in records]


def _rows_from_split(obj: dict) -> tuple[list[str], list[list]]:
    cols, data = obj.get("columns"), obj.get("data")
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise InputError("'columns' must be a list of column names", 422)
    if not isinstance(data, list) or not data:
        raise InputError("'data' must be a non-empty list of rows", 422)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(cols):
            raise InputError(f"row {i} of 'data' should be a list of {len(cols)} values", 422)
    return cols, data


def parse(body: Any) -> Parsed:
    key = proba = None
    tensors, tensor_key, problem = None, "", None
    if isinstance(body, dict):
        key = body.get("key")
        proba = body.get("proba")
        if "dataframe_split" in body:
            cols, rows = _rows_from_split(_obj(body["dataframe_split"], "dataframe_split"))
        elif "dataframe_records" in body:
            cols, rows = _rows_from_records(_list(body["dataframe_records"], "dataframe_records"))
        elif "inputs" in body or "instances" in body:
            tensor_key = "inputs" if "inputs" in body else "instances"
            tensors = body[tensor_key]
            try:
                cols, rows = _table_of(tensors, tensor_key)
            except InputError as e:  # tensors, perhaps: refused later if the model takes a table
                cols, rows, problem = [], [], str(e)
        elif "columns" in body and "data" in body:
            cols, rows = _rows_from_split(body)
        elif "records" in body:
            cols, rows = _rows_from_records(_list(body["records"], "records"))
        else:
            extra = {"key", "proba"}
            record = {k: v for k, v in body.items() if k not in extra}
            if not record:
                raise InputError("no input: send records, {columns, data}, MLflow's dataframe_split / "
                                 "dataframe_records / inputs, or instances", 422)
            cols, rows = _rows_from_records([record])
    elif isinstance(body, list):
        cols, rows = _rows_from_records(body)
    else:
        raise InputError("the body should be a JSON object or a list of records", 422)
    if key is not None and not isinstance(key, (str, int)):
        raise InputError("'key' should be a string", 422)
    return Parsed(cols, rows, str(key) if key is not None else None, bool(proba), tensors, tensor_key, problem)


def _table_of(value: Any, name: str) -> tuple[list[str], list[list]]:
    """``inputs`` / ``instances`` read as a table: records, or (``inputs``) columns as lists."""
    if name == "inputs" and isinstance(value, dict):  # columns as lists
        cols = list(value)
        vals = [v if isinstance(v, list) else [v] for v in value.values()]
        if not vals or len({len(v) for v in vals}) != 1:
            raise InputError("'inputs' columns must be lists of the same length", 422)
        return cols, [list(r) for r in zip(*vals)]
    return _rows_from_records(_list(value, name))


def _obj(v, name):
    if not isinstance(v, dict):
        raise InputError(f"'{name}' should be an object", 422)
    return v


def _list(v, name):
    if isinstance(v, dict):
        v = [v]
    if not isinstance(v, list):
        raise InputError(f"'{name}' should be a list of records", 422)
    return v


_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float", "O": "str", "U": "str", "S": "str"}


def to_frame(p: Parsed, signature: dict | None):
    """A DataFrame in the signature's column order and dtypes; 422 naming the first problem."""
    if signature and signature.get("type") == "tensors":
        return to_tensors(p, signature)
    if p.problem is not None:
        raise InputError(p.problem, 422)
    import numpy as np
    import pandas as pd

    if signature and signature.get("type") == "dataframe":
        want = [c["name"] for c in signature["columns"]]
        dtypes = {c["name"]: c["dtype"] for c in signature["columns"]}
        have = set(p.columns)
        missing = [c for c in want if c not in have]
        if missing:
            raise InputError(f"missing column(s): {', '.join(missing[:10])}", 422)
        extra = [c for c in p.columns if c not in dtypes]
        if extra:
            raise InputError(f"unknown column(s): {', '.join(extra[:10])}", 422)
        idx = {c: i for i, c in enumerate(p.columns)}
        data = {}
        for c in want:
            j = idx[c]
            col = [r[j] for r in p.rows]
            data[c] = _column(c, col, dtypes[c], np)
        return pd.DataFrame(data, columns=want)
    if signature and signature.get("type") == "ndarray":
        shape = signature.get("shape") or []
        width = shape[1] if len(shape) > 1 else None
        try:
            arr = np.asarray(p.rows, dtype=signature.get("dtype") or float)
        except (TypeError, ValueError) as e:
            raise InputError(f"values do not fit {signature.get('dtype')}: {e}", 422) from None
        if width is not None and arr.shape[1] != width:
            raise InputError(f"each row should have {width} values; got {arr.shape[1]}", 422)
        _finite(arr, "input")
        return arr
    return pd.DataFrame(p.rows, columns=p.columns)


def to_matrix(p: Parsed, signature: dict):
    """A float64 matrix in the signature's column order, for models served on arrays.

    Same checks and messages as :func:`to_frame` (which it falls back to for the message when a
    value is not a number), at a fraction of the cost: one pass over the values, one array."""
    import numpy as np

    if p.problem is not None:
        raise InputError(p.problem, 422)
    cols = signature["columns"]
    if p.columns != [c["name"] for c in cols]:
        want = [c["name"] for c in cols]
        have = set(p.columns)
        missing = [c for c in want if c not in have]
        if missing:
            raise InputError(f"missing column(s): {', '.join(missing[:10])}", 422)
        extra = [c for c in p.columns if c not in set(want)]
        if extra:
            raise InputError(f"unknown column(s): {', '.join(extra[:10])}", 422)
        order = [p.columns.index(c) for c in want]
        rows = [[r[j] for j in order] for r in p.rows]
    else:
        rows = p.rows
    number = (int, float)
    if not all(type(v) in number for r in rows for v in r):  # bool, str, None, lists: say which
        to_frame(p, signature)
        raise InputError("expected numbers only", 422)  # pragma: no cover - to_frame names the value
    arr = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(arr).all():
        to_frame(p, signature)
        raise InputError("NaN or infinity is not allowed", 422)  # pragma: no cover
    ints = int_columns(tuple(c["dtype"] for c in cols))
    if ints and (np.mod(arr[:, ints], 1) != 0).any():
        to_frame(p, signature)
    return arr


@functools.lru_cache(maxsize=64)
def int_columns(dtypes: tuple[str, ...]) -> list[int]:
    """Positions of the integer columns (asked on every request: numpy's dtype parsing, once per signature)."""
    import numpy as np

    return [j for j, d in enumerate(dtypes) if np.dtype(d).kind in "iu"]


def _column(name: str, values: list, dtype: str, np):
    kind = np.dtype(dtype).kind if dtype not in ("category", "string", "str") and not dtype.startswith(
        ("string", "category")) else "O"
    want = _KINDS.get(kind, "str")
    if want in ("int", "float"):
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if v is None:
                    raise InputError(f"column {name!r}, row {i}: null where a number is expected", 422)
                raise InputError(f"column {name!r}, row {i}: expected a number, got {type(v).__name__}", 422)
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"column {name!r}, row {i}: {v} is not allowed", 422)
            if want == "int" and isinstance(v, float) and not v.is_integer():
                raise InputError(f"column {name!r}, row {i}: expected an integer, got {v}", 422)
        return np.asarray(values, dtype=dtype)
    if want == "bool":
        for i, v in enumerate(values):
            if not isinstance(v, bool):
                raise InputError(f"column {name!r}, row {i}: expected true or false, got {type(v).__name__}", 422)
        return np.asarray(values, dtype=bool)
    for i, v in enumerate(values):
        if v is not None and not isinstance(v, str):
            raise InputError(f"column {name!r}, row {i}: expected a string, got {type(v).__name__}", 422)
    return values


def _finite(arr, what: str) -> None:
    import numpy as np

    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{what} holds NaN or infinity", 422)


# -- networks: tensors by input name ---------------------------------------------------------------
def to_tensors(p: Parsed, signature: dict):
    """The request's tensors as the network takes them: one array (one input) or a dict of arrays by name.

    Sets ``p.columns`` (the input names) and ``p.arrays`` (the checked arrays by name) for the
    prediction log. 422 naming the input and the shape the model expects."""
    specs = {s["name"]: s for s in signature["inputs"]}
    named = _named_tensors(p, specs)
    unknown = [str(n) for n in named if n not in specs]  # first: a misspelt name is unknown, not the other missing
    if unknown:
        raise InputError(f"unknown input {', '.join(unknown[:10])}; the model takes {_takes(specs)}", 422)
    missing = [n for n in specs if n not in named]
    if missing:
        raise InputError(f"missing input {', '.join(missing)}; the model takes {_takes(specs)}", 422)
    arrays = {n: _array(n, named[n], specs[n]) for n in specs}
    sizes = {n: len(a) for n, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise InputError("the inputs have different numbers of rows ("
                         + ", ".join(f"{n} {k}" for n, k in sizes.items()) + "): one row per example in each", 422)
    n = next(iter(sizes.values()))
    if n == 0:
        raise InputError("no rows to predict", 422)
    from ..exceptions import BadInput
    from ..models.nets import inputs_from

    try:
        arrays = inputs_from(signature, arrays)
    except BadInput as e:
        raise InputError(str(e), 422) from None
    names = list(specs)
    p.columns, p.rows, p.arrays = names, [], arrays
    return arrays[names[0]] if len(arrays) == 1 else arrays


def _named_tensors(p: Parsed, specs: dict) -> dict:
    """The request's nested lists by input name (not yet checked)."""
    value, key = p.tensors, p.tensor_key
    if not key:  # records / columns forms: the columns are input names
        return {c: [r[j] for r in p.rows] for j, c in enumerate(p.columns)}
    if isinstance(value, dict):
        if key == "instances":  # one instance, as an object by input name
            return {k: [v] for k, v in value.items()}
        return value
    if not isinstance(value, list):
        raise InputError(f"'{key}' should be a list of rows (batch first) or an object of tensors by input name; "
                         f"the model takes {_takes(specs)}", 422)
    if value and all(isinstance(row, dict) for row in value):  # instances as objects by input name
        names = list(dict.fromkeys(k for row in value for k in row))
        for i, row in enumerate(value):
            lacking = [k for k in names if k not in row]
            if lacking:
                raise InputError(f"row {i} of '{key}' has no input {lacking[0]}; the model takes {_takes(specs)}", 422)
        return {k: [row[k] for row in value] for k in names}
    if len(specs) != 1:
        raise InputError(f"the model takes {len(specs)} inputs, {_takes(specs)}: give them by name, "
                         f'{{"{key}": {{"{next(iter(specs))}": [...], ...}}}}', 422)
    return {next(iter(specs)): value}


def _array(name: str, value: Any, spec: dict):
    """*value* (nested lists from JSON) as a numpy array, refusing what JSON lets through and numpy
    would quietly turn into numbers or objects: ragged lists, strings, null, true/false, NaN/infinity."""
    import numpy as np

    from ..models.nets import shape_text

    expects = f"the model expects {shape_text(spec['shape'])} {spec['dtype']}"
    if not isinstance(value, list):
        raise InputError(f"input {name} should be a list with one entry per row; {expects}", 422)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise InputError(f"input {name} is ragged (its nested lists differ in length); {expects}", 422) from None
    want = np.dtype(spec["dtype"]).kind
    kind = arr.dtype.kind
    if kind in "US":
        raise InputError(f"input {name} holds strings where numbers are expected; {expects}", 422)
    if kind == "O":
        raise InputError(f"input {name} {_odd_value(value)}; {expects}", 422)
    if kind == "b" and want != "b":
        raise InputError(f"input {name} holds true/false where numbers are expected; {expects}", 422)
    if kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"input {name} holds NaN or infinity; {expects}", 422)
    if kind == "f" and want in "iu" and (np.mod(arr, 1) != 0).any():
        bad = arr[np.mod(arr, 1) != 0].flat[0]
        raise InputError(f"input {name} holds {bad:g} where an integer is expected; {expects}", 422)
    return arr


def _odd_value(value: Any) -> str:
    """What makes nested lists no array of numbers: null, an object, or rows of different lengths."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None:
            return "holds null where a number is expected"
        if isinstance(v, dict):
            return "holds an object where a number is expected"
        if isinstance(v, str):
            return "holds strings where numbers are expected"
        if isinstance(v, int) and not -2 ** 63 <= v < 2 ** 64:
            return f"holds {v}, too large for a number the model takes"
        if isinstance(v, list):
            stack.extend(v)
    return "is ragged (its nested lists differ in length)"


def _takes(specs: dict) -> str:
    from ..models.nets import shape_text

    return ", ".join(f"{n} {shape_text(s['shape'])} {s['dtype']}" for n, s in specs.items())
