"""A job's search space, as ``mlops tune --space`` writes it, checked against the job's parameters
before any kernel starts, and turned into Optuna's distributions.

    n_estimators=int:20:400   lr=float:0.001:0.3:log   max_depth=int:2:8   criterion=cat:gini,entropy
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..exceptions import BadInput

FORMS = "NAME=int:LOW:HIGH[:log], NAME=float:LOW:HIGH[:log] or NAME=cat:A,B,..."
# which --space kinds a job parameter of each type takes (job.toml's types)
TAKES = {"int": ("int", "cat"), "float": ("float", "int", "cat"), "str": ("cat",), "bool": ("cat",),
         "any": ("int", "float", "cat"), "list": (), "dict": ()}


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str  # int | float | cat
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def distribution(self):
        import optuna.distributions as D

        if self.kind == "int":
            return D.IntDistribution(int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return D.FloatDistribution(float(self.low), float(self.high), log=self.log)
        return D.CategoricalDistribution(list(self.choices))

    def describe(self) -> str:
        if self.kind == "cat":
            return f"{self.name}=cat:{','.join(map(str, self.choices))}"
        return f"{self.name}={self.kind}:{self.low:g}:{self.high:g}{':log' if self.log else ''}"


def parse_space(spec, items: list[str] | dict[str, Any]) -> dict[str, Dimension]:
    """``["lr=float:0.001:0.3:log", ...]`` (or job.toml's ``{name: "float:0.001:0.3:log"}``) for job
    *spec*: each name a parameter of the job, each kind one its type takes, bounds in order, a log
    scale only over positive bounds. One line of BadInput for the first thing wrong."""
    pairs = list(items.items()) if isinstance(items, dict) else [_split(item) for item in items or []]
    if not pairs:
        raise BadInput(f"--space needs at least one parameter: {FORMS}")
    dims: dict[str, Dimension] = {}
    for name, text in pairs:
        p = spec.parameter(name, "--space: ")
        if name in dims:
            raise BadInput(f"--space names {name} twice")
        dim = _dimension(name, str(text), p)
        if dim.kind not in TAKES.get(p.type, ()):
            raise BadInput(f"--space: {name} is a {p.type} parameter in job.toml; {dim.kind}: does not fit it"
                           + (f" (use {' or '.join(k + ':' for k in TAKES[p.type])})" if TAKES.get(p.type) else ""))
        dims[name] = dim
    return dims


def _split(item: str) -> tuple[str, str]:
    name, sep, text = str(item).partition("=")
    if not sep or not name.strip() or not text.strip():
        raise BadInput(f"--space takes {FORMS}; got {item!r}")
    return name.strip(), text.strip()


def _number(text: str, kind: str, name: str, which: str) -> float:
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise BadInput(f"--space: {name}'s {which} bound {text!r} is not {'a whole number' if kind == 'int' else 'a number'}") from None


def _dimension(name: str, text: str, p) -> Dimension:
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind in ("int", "float"):
        parts = rest.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip().lower() != "log"):
            raise BadInput(f"--space: {name}={text}: {kind} takes {kind}:LOW:HIGH or {kind}:LOW:HIGH:log")
        low, high = _number(parts[0].strip(), kind, name, "low"), _number(parts[1].strip(), kind, name, "high")
        log = len(parts) == 3
        if low >= high:
            raise BadInput(f"--space: {name}: the low bound {low:g} is not below the high bound {high:g}")
        if log and low <= 0:
            raise BadInput(f"--space: {name}: a log scale needs bounds above 0, got {low:g}")
        return Dimension(name, kind, low, high, log)
    if kind == "cat":
        values = [v.strip() for v in rest.split(",") if v.strip()]
        if len(values) < 2:
            raise BadInput(f"--space: {name}=cat: needs two or more values, e.g. {name}=cat:a,b")
        choices = tuple(p.parse(v, "--space: ") for v in values)
        if len(set(map(repr, choices))) != len(choices):
            raise BadInput(f"--space: {name}=cat: lists a value twice")
        return Dimension(name, "cat", choices=choices)
    raise BadInput(f"--space: {name}={text}: the kind is int, float or cat ({FORMS})")
