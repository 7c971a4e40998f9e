"""Searching runs: a small filter language compiled to SQL, and the runs DataFrame.

    metrics.acc > 0.8 and params.lr <= 0.1 and tags.team = 'fraud'
    status in ('failed', 'crashed') or name like 'base%'
    metrics.`val-loss` < 0.3 and start_time > '2026-01-01'

Fields: ``metrics.K`` (last value), ``params.K``, ``tags.K`` and the run attributes
(``run_id name status start_time end_time parent_id notebook user``, also written
``attributes.X`` as in MLflow). Operators: ``= == != < <= > >= like ilike in``,
``is null``, ``is not null``; ``and``, ``or``, ``not`` and parentheses.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import rendering
from ..exceptions import BadInput
from ..store import schema as S

ATTRIBUTES = {
    "run_id": S.runs.c.run_id, "id": S.runs.c.run_id, "name": S.runs.c.name,
    "status": S.runs.c.status, "start_time": S.runs.c.start_time, "end_time": S.runs.c.end_time,
    "parent_id": S.runs.c.parent_id, "notebook": S.runs.c.notebook, "user": S.runs.c.username,
    "host": S.runs.c.host,
}
_TIME_FIELDS = {"start_time", "end_time"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)(?![\w.]))
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<field>(?:metrics|params|tags|attributes)\.(?:`[^`]+`|[\w.\-]+)|[A-Za-z_]\w*)
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)
_WORDS = {"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false"}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise BadInput(f"cannot read the filter at position {pos + 1}: {text[pos:pos + 20]!r}")
            kind = m.lastgroup
            val = m.group(kind)
            if kind == "field" and val.lower() in _WORDS:
                kind, val = "word", val.lower()
            if kind != "ws":
                self.toks.append((kind, val, pos))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, val: str | None = None):
        t = self.peek()
        if t is None or (kind and t[0] != kind) or (val and t[1] != val):
            where = f"at position {t[2] + 1} ({t[1]!r})" if t else "at the end"
            want = val or kind or "more"
            raise BadInput(f"filter {self.text!r}: expected {want} {where}")
        self.i += 1
        return t

    def accept(self, kind: str, val: str | None = None) -> bool:
        t = self.peek()
        if t and t[0] == kind and (val is None or t[1] == val):
            self.i += 1
            return True
        return False

    def parse(self):
        if not self.toks:
            return None
        expr = self.or_()
        if self.peek() is not None:
            t = self.peek()
            raise BadInput(f"filter {self.text!r}: unexpected {t[1]!r} at position {t[2] + 1}")
        return expr

    def or_(self):
        parts = [self.and_()]
        while self.accept("word", "or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    def and_(self):
        parts = [self.not_()]
        while self.accept("word", "and"):
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def not_(self):
        if self.accept("word", "not"):
            return sa.not_(self.not_())
        if self.accept("punct", "("):
            e = self.or_()
            self.take("punct", ")")
            return e
        return self.comparison()

    def value(self):
        t = self.take()
        kind, val, pos = t
        if kind == "num":
            return float(val) if any(c in val.lower() for c in ".eni") else int(val)
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", val[1:-1])
        if kind == "word" and val in ("true", "false"):
            return val == "true"
        raise BadInput(f"filter {self.text!r}: expected a value at position {pos + 1}, got {val!r}")

    def comparison(self):
        kind, field, pos = self.take("field")
        if self.accept("word", "is"):
            negate = self.accept("word", "not")
            self.take("word", "null")
            return _compile(field, "isnotnull" if negate else "isnull", None, self.text)
        if self.accept("word", "not"):
            self.take("word", "in")
            return sa.not_(self._in(field))
        if self.accept("word", "in"):
            return self._in(field)
        t = self.peek()
        if t and t[0] == "word" and t[1] in ("like", "ilike"):
            self.i += 1
            return _compile(field, t[1], self.value(), self.text)
        op = self.take("op")[1]
        return _compile(field, {"==": "=", "<>": "!="}.get(op, op), self.value(), self.text)

    def _in(self, field):
        self.take("punct", "(")
        vals = [self.value()]
        while self.accept("punct", ","):
            vals.append(self.value())
        self.take("punct", ")")
        return _compile(field, "in", vals, self.text)


def _split_field(field: str) -> tuple[str, str]:
    if "." in field:
        scope, _, key = field.partition(".")
        if key.startswith("`") and key.endswith("`"):
            key = key[1:-1]
        return scope, key
    return "attributes", field


def _to_time(v: Any, text: str) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    try:
        dt = datetime.fromisoformat(str(v))
    except ValueError:
        raise BadInput(f"filter {text!r}: {v!r} is not a time (use ISO format, e.g. '2026-01-31 12:00')") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time, as people type it
    return dt.timestamp()


def _apply(col, op: str, v: Any):
    if op == "=":
        return col == v
    if op == "!=":
        return col != v
    if op == "<":
        return col < v
    if op == "<=":
        return col <= v
    if op == ">":
        return col > v
    if op == ">=":
        return col >= v
    if op == "like":
        return col.like(str(v))
    if op == "ilike":
        return col.ilike(str(v))
    if op == "in":
        return col.in_(v)
    if op == "isnull":
        return col.is_(None)
    if op == "isnotnull":
        return col.is_not(None)
    raise BadInput(f"unknown operator {op!r}")  # pragma: no cover


def _compile(field: str, op: str, v: Any, text: str):
    scope, key = _split_field(field)
    runs = S.runs
    if scope == "attributes":
        if key not in ATTRIBUTES:
            raise BadInput(f"filter {text!r}: unknown field {field!r}; use metrics.X, params.X, tags.X "
                           f"or one of {', '.join(sorted(ATTRIBUTES))}")
        col = ATTRIBUTES[key]
        if key in _TIME_FIELDS and op not in ("isnull", "isnotnull"):
            v = [_to_time(x, text) for x in v] if op == "in" else _to_time(v, text)
        return _apply(col, op, v)
    if scope == "metrics":
        if op in ("like", "ilike"):
            raise BadInput(f"filter {text!r}: metrics are numbers; LIKE does not apply")
        m = S.latest_metrics
        if op == "isnull":
            return ~sa.exists().where(m.c.run_id == runs.c.run_id, m.c.key == key)
        if op == "isnotnull":
            return sa.exists().where(m.c.run_id == runs.c.run_id, m.c.key == key)
        if op == "in":
            bad = [x for x in v if not isinstance(x, (int, float))]
        else:
            bad = [] if isinstance(v, (int, float)) else [v]
        if bad:
            raise BadInput(f"filter {text!r}: metrics.{key} is compared with a number, not {bad[0]!r}")
        return sa.exists().where(m.c.run_id == runs.c.run_id, m.c.key == key, _apply(m.c.value, op, v))
    if scope in ("params", "tags"):
        t = S.params if scope == "params" else S.tags
        if op == "isnull":
            return ~sa.exists().where(t.c.run_id == runs.c.run_id, t.c.key == key)
        if op == "isnotnull":
            return sa.exists().where(t.c.run_id == runs.c.run_id, t.c.key == key)
        if scope == "params":
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool) or (
                op == "in" and all(isinstance(x, (int, float)) for x in v))
            col = t.c.num if numeric else t.c.text
            if not numeric:
                v = [str(x) for x in v] if op == "in" else (str(v).lower() if isinstance(v, bool) else str(v))
        else:
            col = t.c.value
            v = [str(x) for x in v] if op == "in" else str(v)
        return sa.exists().where(t.c.run_id == runs.c.run_id, t.c.key == key, _apply(col, op, v))
    raise BadInput(f"filter {text!r}: unknown field {field!r}")


def compile_where(text: str | None):
    """Compile a filter expression into a SQLAlchemy clause (None for no filter)."""
    if text is None or not str(text).strip():
        return None
    return _Parser(str(text)).parse()


def compile_order(spec: str | list[str] | None) -> list:
    """``-metrics.acc``, ``metrics.acc desc``, ``start_time``; several separated by commas."""
    if not spec:
        return [S.runs.c.start_time.desc()]
    items = spec if isinstance(spec, list) else [s for s in str(spec).split(",")]
    out = []
    for raw in items:
        s = raw.strip()
        if not s:
            continue
        desc = False
        if s.startswith("-"):
            desc, s = True, s[1:].strip()
        elif s.startswith("+"):
            s = s[1:].strip()
        words = s.split()
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            desc, s = words[1].lower() == "desc", words[0]
        elif len(words) != 1:
            raise BadInput(f"cannot sort by {raw.strip()!r}; write e.g. '-metrics.acc' or 'metrics.acc desc'")
        scope, key = _split_field(s)
        if scope == "attributes":
            if key not in ATTRIBUTES:
                raise BadInput(f"cannot sort by {s!r}: unknown field; use metrics.X, params.X, tags.X "
                               f"or one of {', '.join(sorted(ATTRIBUTES))}")
            col = ATTRIBUTES[key]
        elif scope == "metrics":
            m = S.latest_metrics
            col = sa.select(m.c.value).where(m.c.run_id == S.runs.c.run_id, m.c.key == key).scalar_subquery()
        elif scope == "params":
            p = S.params
            num = sa.select(p.c.num).where(p.c.run_id == S.runs.c.run_id, p.c.key == key).scalar_subquery()
            txt = sa.select(p.c.text).where(p.c.run_id == S.runs.c.run_id, p.c.key == key).scalar_subquery()
            out += [num.desc().nulls_last() if desc else num.asc().nulls_last(),
                    txt.desc().nulls_last() if desc else txt.asc().nulls_last()]
            continue
        elif scope == "tags":
            t = S.tags
            col = sa.select(t.c.value).where(t.c.run_id == S.runs.c.run_id, t.c.key == key).scalar_subquery()
        else:
            raise BadInput(f"cannot sort by {s!r}")
        out.append(col.desc().nulls_last() if desc else col.asc().nulls_last())
    out.append(S.runs.c.start_time.desc())
    return out


def search_runs(store, where: str | None = None, order_by: str | None = None, limit: int | None = None,
                offset: int = 0, user: str | None = None) -> list[dict]:
    """Runs as dicts with ``params``, ``metrics`` (last values) and ``tags`` filled in; *user*: only
    that user's runs (the OS user, or the JupyterHub user, that started them)."""
    if limit is not None and limit < 0:
        raise BadInput(f"limit must be positive, got {limit}")
    store.meta.reap_crashed()  # a process that died since the store was opened shows as crashed
    cond = compile_where(where)
    if user is not None:
        mine = S.runs.c.username == user
        cond = mine if cond is None else sa.and_(cond, mine)
    rows = store.meta.select_runs(cond, compile_order(order_by), limit, offset)
    ids = [r["run_id"] for r in rows]
    params = store.meta.params_of(ids)
    latest = store.meta.latest_metrics(ids)
    tags = store.meta.tags_of(ids)
    for r in rows:
        r["params"] = params[r["run_id"]]
        r["metrics"] = {k: v[0] for k, v in latest[r["run_id"]].items()}
        r["tags"] = tags[r["run_id"]]
    return rows


def runs_frame(rows: list[dict]):
    """MLflow's ``search_runs`` layout: run_id, name, status, times, params.X, metrics.X, tags.X."""
    import pandas as pd

    base_cols = ["run_id", "name", "status", "start_time", "end_time", "parent_id", "notebook", "user"]
    records = []
    pkeys: dict[str, None] = {}
    mkeys: dict[str, None] = {}
    tkeys: dict[str, None] = {}
    for r in rows:
        rec = {c: r.get("username" if c == "user" else c) for c in base_cols}
        for k, v in r["params"].items():
            pkeys[k] = None
            rec[f"params.{k}"] = v
        for k, v in r["metrics"].items():
            mkeys[k] = None
            rec[f"metrics.{k}"] = v
        for k, v in r["tags"].items():
            tkeys[k] = None
            rec[f"tags.{k}"] = v
        records.append(rec)
    cols = (base_cols + [f"params.{k}" for k in sorted(pkeys)] + [f"metrics.{k}" for k in sorted(mkeys)]
            + [f"tags.{k}" for k in sorted(tkeys)])
    df = _runs_frame_class()(pd.DataFrame.from_records(records, columns=cols))
    for c in ("start_time", "end_time"):
        df[c] = pd.to_datetime(df[c], unit="s", utc=True)
    for k in mkeys:
        df[f"metrics.{k}"] = df[f"metrics.{k}"].astype("float64")
    return df


def runs(where: str | None = None, order_by: str | None = None, limit: int | None = None,
         user: str | None = None):
    """Runs of the project as a pandas DataFrame, one row per run (MLflow's column names).

    Args:
        where: filter, e.g. ``"metrics.acc > 0.8 and params.model = 'rf'"``.
        order_by: e.g. ``"-metrics.acc"``; default newest first.
        limit: at most this many rows.
        user: only the runs this user started (OS user, or the JupyterHub user).
    """
    from ..store import open_store
    from .run import settle

    settle()  # fits still being autologged: their runs as they will be
    df = runs_frame(search_runs(open_store(), where, order_by, limit, user=user))
    df.attrs["mlops_query"] = {"where": where, "order_by": order_by, "limit": limit, "user": user}
    return df


_RUNS_FRAME: list = []


def _runs_frame_class():
    """A DataFrame that a face may show as the interactive runs table in a notebook (rendering
    ``INTERACTIVE``); it keeps the query in ``attrs["mlops_query"]``.

    Derived frames (``df[df.status == "failed"]``) are plain DataFrames again.
    """
    if _RUNS_FRAME:
        return _RUNS_FRAME[0]
    import pandas as pd

    class RunsFrame(pd.DataFrame):
        @property
        def _constructor(self):
            return pd.DataFrame

        def _ipython_display_(self):
            rendering.show(self)

    RunsFrame.__qualname__ = "RunsFrame"  # registered as mlops_jupyter.tracking.query.RunsFrame
    _RUNS_FRAME.append(RunsFrame)
    return RunsFrame


class RunRecord:
    """Everything stored about one run: attributes, params, metrics, artifacts, cells."""

    def __init__(self, store, row: dict):
        self.store = store
        self.row = row
        self.run_id: str = row["run_id"]
        self.name: str = row["name"]
        self.status: str = row["status"]
        meta = store.meta
        self.params: dict = meta.params_of([self.run_id])[self.run_id]
        self.tags: dict = meta.tags_of([self.run_id])[self.run_id]
        latest = meta.latest_metrics([self.run_id])[self.run_id]
        self.metrics: dict = {k: v[0] for k, v in latest.items()}
        self.metric_counts: dict = {k: v[2] for k, v in latest.items()}
        self.artifacts: list[dict] = meta.artifacts(self.run_id)
        self.children: list[str] = meta.children(self.run_id)
        import json

        self.env: dict = json.loads(row["env"]) if row.get("env") else {}
        self.chart_options: dict = {}  # x, log_y: how a face draws this run's curves

    def history(self, key: str | None = None) -> dict[str, list[tuple[int, float]]]:
        """Metric series: key -> [(step, value), ...]."""
        out: dict[str, list[tuple[int, float]]] = {}
        for k, step, value, _ts in self.store.meta.metric_history(self.run_id, key):
            out.setdefault(k, []).append((step, value))
        return out

    def cells(self) -> list[dict]:
        return self.store.meta.cells(self.run_id)

    def chart(self, keys: list[str] | None = None, x: str = "step", log_y: bool = False):
        """The run's metric curves as a :class:`~mlops_jupyter.charts.Chart` (x: ``step``,
        ``time`` or ``relative``)."""
        from .pictures import runs_chart

        return runs_chart([self], keys, x=x, log_y=log_y)

    def artifact_bytes(self, path: str) -> bytes:
        for a in self.artifacts:
            if a["path"] == path:
                return self.store.blobs.get_bytes(a["digest"])
        from ..exceptions import NotFound

        raise NotFound(f"run {self.run_id[:8]} has no artifact {path!r}")

    def logged_models(self) -> list[dict]:
        """The models this run logged (``<folder>/model.json``, as autologging writes them): each
        with its ``ref`` (``runs:/<id>/<folder>``) for ``mj.models.load``."""
        import json

        out = []
        for a in self.artifacts:
            if a["path"].endswith("/model.json") and a["path"].count("/") == 1:
                try:
                    info = json.loads(self.store.blobs.get_bytes(a["digest"]))
                except Exception:  # a damaged file is fsck's to report, not the run view's
                    continue
                folder = a["path"].split("/")[0]
                out.append(dict(info, folder=folder, ref=f"runs:/{self.run_id}/{folder}"))
        return out

    def importance_chart(self):
        """The bar chart of ``feature_importance.json`` (what autologging records for trees and
        boosters), drawn from its figures; None when the run has none."""
        import json

        if not any(a["path"] == "feature_importance.json" for a in self.artifacts):
            return None
        from ..charts.explain import global_importance

        fi = json.loads(self.artifact_bytes("feature_importance.json"))
        rows = fi.get("features") or []
        if not rows:
            return None
        return global_importance([r["feature"] for r in rows], [r["importance"] for r in rows],
                                 measure=fi.get("measure", "importance"), value_title="importance",
                                 title=f"{self.name}: feature importance")

    @property
    def duration(self) -> float | None:
        end = self.row.get("end_time")
        return None if end is None else end - self.row["start_time"]

    def to_dict(self) -> dict:
        return dict(self.row, params=self.params, metrics=self.metrics, tags=self.tags,
                    artifacts=self.artifacts, children=self.children, env=self.env)

    def __repr__(self) -> str:
        return f"<RunRecord {self.name!r} {self.run_id[:8]} {self.status}>"

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def _ipython_display_(self) -> None:
        rendering.show(self)


def get_run(ref: str):
    """One run by id, id prefix, name (the latest with that name) or ``last``."""
    from ..store import open_store
    from .run import settle

    settle()
    store = open_store()
    return RunRecord(store, store.meta.run_row(store.meta.resolve(ref)))


class Comparison:
    """Runs side by side: which params differ, and their metric series."""

    def __init__(self, records: list[RunRecord]):
        self.runs = records
        keys = sorted({k for r in records for k in r.params})
        self.param_rows = []
        for k in keys:
            vals = [r.params.get(k, None) for r in records]
            present = [r.params.get(k, _MISSING) for r in records]
            differs = len({repr(v) for v in present}) > 1
            self.param_rows.append((k, vals, differs))
        self.metric_keys = sorted({k for r in records for k in r.metrics})
        self.chart_options: dict = {}  # x, log_y, metric: how a face draws the comparison

    def frame(self):
        import pandas as pd

        data = {f"{r.name} ({r.run_id[:8]})": {**{f"params.{k}": r.params.get(k) for k, _, _ in self.param_rows},
                                                **{f"metrics.{k}": r.metrics.get(k) for k in self.metric_keys}}
                for r in self.runs}
        return pd.DataFrame(data)

    def chart(self, keys: list[str] | None = None, x: str = "step", log_y: bool = False):
        """The runs' metric curves, one colour per run, the best last value of each marked."""
        from .pictures import runs_chart

        return runs_chart(self.runs, keys, x=x, log_y=log_y)

    def parallel(self, metric: str | None = None):
        """Parallel coordinates over the params that differ and *metric* (default: the metric
        most runs have)."""
        from .pictures import parallel

        return parallel(self.runs, metric)

    def scatter(self, metric: str | None = None):
        """*metric* against each param that differs."""
        from .pictures import scatter

        return scatter(self.runs, metric)

    def _repr_html_(self) -> str:
        return rendering.render(self, rendering.HTML)

    def _ipython_display_(self) -> None:
        rendering.show(self)


_MISSING = object()


def compare(refs: list[str]) -> Comparison:
    if len(refs) < 2:
        from ..exceptions import BadInput

        raise BadInput("compare needs at least two runs")
    from ..store import open_store

    store = open_store()
    ids = [store.meta.resolve(r) for r in refs]
    return Comparison([RunRecord(store, store.meta.run_row(i)) for i in ids])
