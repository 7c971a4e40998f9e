"""Charts drawn without a browser: SVG and PNG by vl-convert (Vega and Vega-Lite compiled into a
Rust library with its own JavaScript engine), for saved notebooks, files and the terminal.

The first drawing of a process starts that engine (about a second); :func:`warm` does it on a
background thread when the notebook extension loads, so the first chart a user shows does not
wait for it.
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..exceptions import BadInput
from .spec import HOVER

VL_VERSION = "5.20"  # the Vega-Lite that JupyterLab 4 renders; vl-convert draws the same one

_lock = threading.Lock()


def static_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """*spec* without what only the interactive chart needs: hover layers, input bindings,
    scale-bound zoom. The picture is the same."""
    out = copy.deepcopy(spec)
    _strip(out)
    return out


def _strip(node: Any) -> None:
    if isinstance(node, dict):
        for key in ("layer", "concat", "hconcat", "vconcat"):
            if isinstance(node.get(key), list):
                node[key] = [c for c in node[key] if not (isinstance(c, dict) and c.get("name") == HOVER)]
        if isinstance(node.get("params"), list):
            kept = []
            for p in node["params"]:
                if "select" in p and p.get("bind") == "scales":
                    continue
                if "select" in p and isinstance(p["select"], dict) and p["select"].get("nearest"):
                    continue
                if "bind" in p:  # an input: keep its value, drop the control
                    p = {k: v for k, v in p.items() if k != "bind"}
                kept.append(p)
            if kept:
                node["params"] = kept
            else:
                del node["params"]
        for v in node.values():
            _strip(v)
    elif isinstance(node, list):
        for v in node:
            _strip(v)


def _vlc():
    try:
        import vl_convert
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise BadInput("drawing a chart offline needs vl-convert-python: pip install vl-convert-python") from e
    return vl_convert


def to_svg(spec: dict[str, Any]) -> str:
    vlc = _vlc()
    with _lock:  # one drawing at a time: vl-convert keeps one engine per process
        return vlc.vegalite_to_svg(static_spec(spec), vl_version=VL_VERSION)


def to_png(spec: dict[str, Any], scale: float = 2.0) -> bytes:
    vlc = _vlc()
    with _lock:
        return vlc.vegalite_to_png(static_spec(spec), vl_version=VL_VERSION, scale=scale)


def to_html(spec: dict[str, Any]) -> str:
    vlc = _vlc()
    with _lock:
        return vlc.vegalite_to_html(spec, vl_version=VL_VERSION, bundle=True)


def save(spec: dict[str, Any], path) -> str:
    """Write *spec* drawn as the file's suffix says (``.svg``, ``.png``, ``.json``, ``.html``),
    through a temporary file renamed into place."""
    import json

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        data = to_svg(spec).encode()
    elif suffix == ".png":
        data = to_png(spec)
    elif suffix == ".json":
        data = json.dumps(spec, indent=1, allow_nan=False).encode()
    elif suffix in (".html", ".htm"):
        data = to_html(spec).encode()
    else:
        raise BadInput(f"a chart is saved as .svg, .png, .json or .html, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


_warmed = threading.Event()


def warm() -> None:
    """Start vl-convert's engine on a daemon thread (once per process)."""
    if _warmed.is_set():
        return
    _warmed.set()

    def run() -> None:
        try:
            to_svg({"mark": "point", "data": {"values": [{"x": 0}]}, "encoding": {"x": {"field": "x", "type": "quantitative"}}})
        except Exception:  # warming is an optimisation; a real drawing reports the problem
            pass

    threading.Thread(target=run, name="mlops-chart-warm", daemon=True).start()
