"""What the JupyterLab panel shows of data versions and models, as JSON-ready dicts: the lists, and
the detail views (a dataset's versions, schema and column histograms; a model's versions, aliases
and their moves, lineage and stored explanation)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..exceptions import BadInput, NotFound
from ..store.metadata import json_safe as clean
from .api import store

MAX_FILES = 200
HISTOGRAM_MAX_BYTES = 256 * 1024 * 1024  # larger table versions show their statistics without histograms
TOP_FEATURES = 15
MAX_WHOLE_RANGE = 20  # float columns holding whole numbers over a smaller range get a bar per value


# -- data ----------------------------------------------------------------------------------------------
def datasets() -> dict:
    from ..data.catalog import Catalog

    cat = Catalog(store().meta)
    return clean({"datasets": [{"name": d["name"], "latest": d["version"], "kind": d["kind"], "size": d["size"],
                                "rows": d["rows"], "created": d["created"]} for d in cat.datasets()]})


def version_number(version: Any) -> int | None:
    """A version from a query argument: ``3``, ``v3`` or nothing (the latest)."""
    if version in (None, "", "latest"):
        return None
    text = str(version).lower().removeprefix("v")
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"version is a whole number from 1 (or v3, or latest), got {version!r}")
    return int(text)


def dataset(name: str, version: Any = None) -> dict:
    """A dataset: its versions (newest first, with the runs that used or made each) and one version
    in detail (*version*, default the latest): its files or its schema with per-column statistics
    and, for a table, a small histogram of each column as a Vega-Lite spec."""
    from ..data.catalog import Catalog, check_name

    check_name(name)
    wanted = version_number(version)
    st = store()
    cat = Catalog(st.meta)
    versions = []
    for v in reversed(cat.versions(name)):
        versions.append({"ref": v.ref, "version": v.version, "kind": v.kind, "size": v.size, "rows": v.rows,
                         "files": v.n_files, "created": v.created, "message": v.message, "digest": v.digest,
                         "source": v.source, "username": v.username, "runs": cat.runs_of(v.id)})
    v = cat.get(f"{name}@v{wanted}" if wanted else name)
    columns = []
    notes = []
    summary = v.summary or {}
    pictures = histograms(st, v, notes) if summary.get("columns") else {}
    for col, s in (summary.get("columns") or {}).items():
        columns.append({"name": col, **{k: s.get(k) for k in ("dtype", "type", "kind", "nulls", "null_fraction",
                                                               "distinct", "min", "max", "mean", "std", "top")},
                        "histogram": pictures.get(col)})
    detail = {"ref": v.ref, "version": v.version, "kind": v.kind, "rows": v.rows, "size": v.size,
              "digest": v.digest, "created": v.created, "message": v.message, "source": v.source,
              "username": v.username, "columns": columns, "notes": notes,
              "files": [{"path": f["path"], "size": f["size"]} for f in v.files[:MAX_FILES]],
              "files_total": len(v.files)}
    return clean({"name": name, "versions": versions, "detail": detail})


_HISTOGRAMS: OrderedDict[str, dict] = OrderedDict()  # version digest -> column -> spec (versions never change)
_HISTOGRAMS_LOCK = threading.Lock()


def histograms(st, v, notes: list[str]) -> dict[str, dict]:
    """column -> the Vega-Lite spec of its small histogram: numeric columns counted from the stored
    table (round bin edges), categorical and boolean ones from the version's statistics."""
    from ..charts.data import column_histogram

    with _HISTOGRAMS_LOCK:
        if v.digest in _HISTOGRAMS:
            _HISTOGRAMS.move_to_end(v.digest)
            return _HISTOGRAMS[v.digest]
    cols = v.summary.get("columns", {})
    rows = v.summary.get("rows") or v.rows or 0
    out: dict[str, dict] = {}
    numeric = [c for c, s in cols.items() if s.get("kind") == "numeric" and s.get("min") is not None]
    if numeric and v.kind == "table" and v.files:
        if v.size > HISTOGRAM_MAX_BYTES:
            notes.append(f"numeric histograms are drawn for tables up to {HISTOGRAM_MAX_BYTES >> 20} MiB")
        else:
            for col, (bins, whole) in numeric_bins(st, v.files[0]["digest"], {c: cols[c] for c in numeric}).items():
                out[col] = column_histogram(col, bins=bins, whole=whole).spec
    for col, s in cols.items():
        if s.get("kind") in ("category", "bool") and s.get("top"):
            top = [(value, count) for value, count in s["top"]]
            other = max(0, rows - (s.get("nulls") or 0) - sum(c for _, c in top))
            out[col] = column_histogram(col, top=top, other=other).spec
    with _HISTOGRAMS_LOCK:
        _HISTOGRAMS[v.digest] = out
        while len(_HISTOGRAMS) > 16:
            _HISTOGRAMS.popitem(last=False)
    return out


def numeric_bins(st, digest: str, stats: dict[str, dict]) -> dict[str, tuple[list[tuple[float, float, int]], bool]]:
    """column -> (``[(low, high, rows)]`` over round edges between the column's min and max,
    whether it holds whole numbers only)."""
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..charts.data import nice_edges

    table = pq.read_table(io.BytesIO(st.blobs.get_bytes(digest)), columns=list(stats))
    out = {}
    for col, s in stats.items():
        arr = table.column(col)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        integer = pa.types.is_integer(arr.type)
        try:
            values = pc.drop_null(arr.cast(pa.float64())).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # not a plain number column after all
            continue
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        lo, hi = float(s["min"]), float(s["max"])
        whole = integer or (hi - lo < MAX_WHOLE_RANGE and bool(np.all(values == np.round(values))))
        edges = nice_edges(lo, hi, integer=whole)
        counts, _ = np.histogram(values, bins=np.asarray(edges, dtype=np.float64))
        out[col] = ([(edges[i], edges[i + 1], int(counts[i])) for i in range(len(counts))], whole)
    return out


# -- models --------------------------------------------------------------------------------------------
def models() -> dict:
    from ..models.registry import Registry

    reg = Registry(store())
    return clean({"models": [model_versions(r["name"], reg) for r in reg.model_records()]})


def model_versions(name: str, reg=None) -> dict:
    """A model's aliases and versions (newest first) with their metrics, class and data."""
    import sqlalchemy as sa

    from ..data.catalog import check_name
    from ..models.registry import Registry, version_from_row
    from ..store import schema as S

    check_name(name, "model")
    reg = reg or Registry(store())
    mv, ma, r = S.model_versions, S.model_aliases, S.runs
    with reg.meta.read() as conn:
        rows = conn.execute(sa.select(mv, r.c.name.label("run_name"))
                            .join(r, r.c.run_id == mv.c.run_id, isouter=True)
                            .where(mv.c.name == name).order_by(mv.c.version.desc())).all()
        aliases = {a.alias: a.version for a in conn.execute(sa.select(ma).where(ma.c.name == name))}
    if not rows:
        raise NotFound(f"no model {name!r} (see `mlops model ls`)")
    versions = []
    for row in rows:
        data = dict(row._mapping)
        run_name = data.pop("run_name")
        v = version_from_row(data)
        versions.append({"version": v.version, "ref": v.ref,
                         "aliases": sorted(a for a, n in aliases.items() if n == v.version),
                         "metrics": v.metrics, "run_id": v.run_id, "run_name": run_name, "created": v.created,
                         "username": v.username, "flavor": v.flavor, "library": v.library,
                         "library_version": v.library_version, "size": v.size, "message": v.message,
                         "class": (v.model_class or "").rsplit(".", 1)[-1],
                         "datasets": [d["ref"] for d in v.datasets],
                         "inputs": signature_inputs(v.signature)})
    return {"name": name, "aliases": aliases, "versions": versions}


def signature_inputs(signature: dict | None) -> list[dict]:
    """The input columns of a signature as ``[{"name", "type"}]`` (a shape for array inputs)."""
    if not signature:
        return []
    inputs = signature.get("inputs") or signature.get("columns") or []
    out = []
    if isinstance(inputs, dict):
        inputs = [{"name": k, "type": t} for k, t in inputs.items()]
    for i in inputs if isinstance(inputs, list) else []:
        if isinstance(i, dict):
            out.append({"name": str(i.get("name", "")), "type": str(i.get("type") or i.get("dtype") or "")})
    shape = signature.get("shape")
    if not out and isinstance(shape, list):
        dims = ", ".join("n" if s is None else str(s) for s in shape)
        out.append({"name": "array", "type": f"{signature.get('dtype', '')} ({dims})"})
    return out


def model(name: str, version: Any = None) -> dict:
    """A model in detail: versions, aliases and every move of them, and for one version (*version*,
    default the one holding ``production``, else the latest) its lineage and stored explanation."""
    from ..models.registry import Registry

    reg = Registry(store())
    out = model_versions(name, reg)
    wanted = version_number(version)
    known = [v["version"] for v in out["versions"]]
    if wanted is None:
        wanted = out["aliases"].get("production", known[0])
    elif wanted not in known:
        raise NotFound(f"model {name!r} has no version v{wanted} (it has v1..v{max(known)})")
    out["selected"] = wanted
    out["history"] = alias_history(reg, name)
    out["lineage"] = lineage(f"models:/{name}/{wanted}")
    out["explanation"] = explanation(reg, name, wanted)
    out["evaluations"] = [{"data": e["data"], "rows": e["rows"], "target": e["target"], "created": e["created"],
                           "by": e["options"].get("by") or [], "figures": e["figures"],
                           "baseline": e["baseline_version_id"] is not None}
                          for e in reg.get(f"{name}@v{wanted}").evaluations[:10]]
    return clean(out)


def card(name: str, version: Any = None) -> dict:
    """A version's model card as a self-contained page (*version* default: the one holding
    ``production``, else the latest), drawn by the renderer the package registers for cards."""
    from .. import rendering
    from ..governance.card import PAGE, build

    wanted = version_number(version)
    if wanted is not None:
        c = build(f"{name}@v{wanted}", store=store())
    else:
        try:
            c = build(f"{name}@production", store=store())
        except NotFound:  # no production alias: the latest (a model that does not exist is not found again)
            c = build(name, store=store())
    return {"version": c.version.ref, "html": rendering.render(c, PAGE), "seconds": c.seconds}


def alias_history(reg, name: str) -> list[dict]:
    import sqlalchemy as sa

    from ..store import schema as S

    ev = S.alias_events
    with reg.meta.read() as conn:
        rows = conn.execute(sa.select(ev).where(ev.c.name == name).order_by(ev.c.id.desc()).limit(100)).all()
    return [{"at": r.at, "alias": r.alias, "from": r.from_version, "to": r.to_version, "user": r.username}
            for r in rows]


def lineage(ref: str) -> dict:
    """Data -> run -> data and models around *ref*, as nodes and edges."""
    from ..data.graph import lineage as core_lineage

    g = core_lineage(ref)
    return {"focus": g.focus, "nodes": [{"id": nid, "kind": kind, "label": label, "status": status}
                                        for nid, (kind, label, status) in g.nodes.items()],
            "edges": [list(e) for e in g.edges]}


def explanation(reg, name: str, version: int) -> dict | None:
    """The latest explanation stored for the version: method, what it explains, the mean |SHAP| of
    its most important features, and its picture as the notebook draws it (global importance, or
    LIME's weights for a LIME explanation) as a Vega-Lite spec."""
    import sqlalchemy as sa

    from ..models.explain import Explanation
    from ..models.explain_store import load
    from ..store import schema as S

    mv, ex = S.model_versions, S.explanations
    with reg.meta.read() as conn:
        row = conn.execute(sa.select(ex.c.key, ex.c.method, ex.c.created).join(mv, mv.c.id == ex.c.model_version_id)
                           .where(mv.c.name == name, mv.c.version == version)
                           .order_by(ex.c.created.desc()).limit(1)).first()
    if row is None:
        return None
    out: dict[str, Any] = {"method": row.method, "created": row.created, "chart": None, "importance": []}
    fields = load(reg.store, row.key)
    if fields is None:
        out["notes"] = ["the stored explanation could not be read; explain the model again to store a new one"]
        return out
    e = Explanation(**fields)
    out.update(explainer=e.explainer, output=e.output, rows=e.n_rows, features=len(e.features), notes=e.notes)
    if e.values is not None:
        import numpy as np

        mean = np.abs(e.values).mean(axis=0)
        total = mean if mean.ndim == 1 else mean.sum(axis=1)
        out["importance"] = [{"feature": str(e.features[i]), "value": float(total[i])}
                             for i in np.argsort(total)[::-1][:TOP_FEATURES]]
        out["chart"] = e.chart("global").spec
    elif e.lime:
        out["chart"] = e.chart("lime", row=min(e.lime)).spec
    return out


def set_alias(name: str, alias: str, version: Any) -> dict:
    from ..models.registry import Registry

    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadInput("version should be a whole number from 1")
    v, prev = Registry(store()).set_alias(f"{name}@v{version}", alias)
    return {"name": v.name, "alias": alias, "version": v.version, "previous": prev}
