"""Values typed on a command line: literals, ``NAME=VALUE`` pairs, and argparse's ``type=`` checks."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ..exceptions import BadInput


def parse_literal(text: str) -> Any:
    """``0.1`` -> float, ``3`` -> int, ``true`` -> True, ``[1,2]`` -> list, else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if low in ("nan", "inf", "-inf", "+inf"):
        return float(low)
    import ast  # here, not at the top: `mlops --help` has no literal to read

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def key_values(items: list[str] | None, what: str) -> dict[str, str]:
    """``["lr=0.1", "name=a=b"]`` -> ``{"lr": "0.1", "name": "a=b"}``; *what* names the option in errors.

    Raises:
        BadInput: an item without ``=`` or without a name.
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{what} {item!r} is not of the form NAME=VALUE")
        out[key.strip()] = value
    return out


def metric_values(items: list[str]) -> dict[str, float]:
    """``["loss=0.3"]`` -> ``{"loss": 0.3}``.

    Raises:
        BadInput: not NAME=VALUE, or a value that is not a number.
    """
    out = {}
    for key, value in key_values(items, "metric").items():
        v = parse_literal(value)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadInput(f"metric {key!r} must be a number, got {value!r}")
        out[key] = float(v)
    return out


# argparse `type=` checks: each raises ArgumentTypeError, whose message argparse shows as it is.
def whole_number(text: str) -> int:
    """An int."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    """An int of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return n


def nonnegative_int(text: str) -> int:
    """An int of at least 0."""
    n = whole_number(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return n


def _float(text: str, ok: Callable[[float], bool], needs: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not ok(x):
        raise argparse.ArgumentTypeError(f"{text!r} {needs}")
    return x


def share(text: str) -> float:
    """A float between 0 and 1."""
    return _float(text, lambda x: 0 <= x <= 1, "should be between 0 and 1")


def positive_float(text: str) -> float:
    """A float above 0."""
    return _float(text, lambda x: x > 0, "must be above 0")
