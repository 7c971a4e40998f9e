import math

import pytest

import mlops_jupyter as mj
from mlops_jupyter.exceptions import BadInput


@pytest.fixture
def three_runs(store):
    ids = {}
    for name, lr, acc, model in (("a", 0.1, 0.7, "rf"), ("b", 0.01, 0.9, "lr"), ("c", 0.001, 0.85, "rf")):
        with mj.start_run(name, params={"lr": lr, "model": model}, tags={"team": "fraud" if name != "c" else "x"}) as r:
            r.log_metric("acc", 0.1)
            r.log_metric("acc", acc)  # the last value counts
            if name == "b":
                r.log_metric("val-loss", 0.2)
        ids[name] = r.run_id
    with pytest.raises(RuntimeError):
        with mj.start_run("d", params={"lr": 0.5}):
            raise RuntimeError
    return ids


def test_runs_frame_has_mlflow_columns(three_runs):
    df = mj.runs()
    assert list(df["name"]) == ["d", "c", "b", "a"]  # newest first
    for col in ("run_id", "name", "status", "start_time", "end_time", "params.lr", "params.model",
                "metrics.acc", "tags.team"):
        assert col in df.columns
    assert set(df["status"]) == {"finished", "failed"}
    assert str(df["start_time"].dtype).startswith("datetime64") and str(df["start_time"].dt.tz) == "UTC"
    assert df.set_index("name").loc["b", "metrics.acc"] == 0.9
    assert math.isnan(df.set_index("name").loc["d", "metrics.acc"])


@pytest.mark.parametrize("expr,expected", [
    ("metrics.acc > 0.8", {"b", "c"}),
    ("metrics.acc > 0.8 and params.model = 'rf'", {"c"}),
    ("params.lr <= 0.01", {"b", "c"}),
    ("params.model == \"rf\" or status = 'failed'", {"a", "c", "d"}),
    ("tags.team != 'fraud'", {"c"}),
    ("status in ('failed', 'crashed')", {"d"}),
    ("name like 'b%'", {"b"}),
    ("not (metrics.acc > 0.8)", {"a", "d"}),  # d has no acc at all
    ("metrics.`val-loss` < 0.5", {"b"}),
    ("metrics.acc is null", {"d"}),
    ("tags.team is not null and params.lr in (0.1, 0.001)", {"a", "c"}),
    ("start_time > '2000-01-01'", {"a", "b", "c", "d"}),
    ("attributes.status = 'finished' and metrics.acc >= 0.9", {"b"}),
])
def test_where(three_runs, expr, expected):
    assert set(mj.runs(where=expr)["name"]) == expected


def test_order_by_and_limit(three_runs):
    assert list(mj.runs(where="metrics.acc > 0", order_by="-metrics.acc")["name"]) == ["b", "c", "a"]
    assert list(mj.runs(where="metrics.acc > 0", order_by="metrics.acc asc")["name"]) == ["a", "c", "b"]
    assert list(mj.runs(order_by="params.lr")["name"]) == ["c", "b", "a", "d"]
    assert list(mj.runs(order_by="-metrics.acc", limit=2)["name"]) == ["b", "c"]
    assert list(mj.runs(order_by="name desc")["name"]) == ["d", "c", "b", "a"]


@pytest.mark.parametrize("expr,message", [
    ("metrics.acc >", "expected"),
    ("metrics.acc > 'high'", "number"),
    ("bogus = 1", "unknown field"),
    ("metrics.acc > 0.5 and", "expected"),
    ("metrics.acc ~ 3", "cannot read"),
    ("(metrics.acc > 1", r"expected \) at the end"),
    ("start_time > 'yesterday'", "not a time"),
])
def test_bad_filters_say_what_is_wrong(three_runs, expr, message):
    with pytest.raises(BadInput, match=message):
        mj.runs(where=expr)


def test_bad_sort(three_runs):
    with pytest.raises(BadInput, match="cannot sort"):
        mj.runs(order_by="nonsense")
    with pytest.raises(BadInput, match="cannot sort"):
        mj.runs(order_by="metrics.acc sideways")


def test_resolve_refs(three_runs, store):
    rid = three_runs["b"]
    assert mj.get_run(rid).name == "b"
    assert mj.get_run(rid[:8]).name == "b"
    assert mj.get_run("b").run_id == rid
    assert mj.get_run("last").name == "d"
    with pytest.raises(mj.NotFound):
        mj.get_run("no-such-run")


def test_compare(three_runs):
    from mlops_jupyter.widgets.runs_view import compare_charts

    comp = mj.compare(["a", "b", "c"])
    rows = {k: (vals, differs) for k, vals, differs in comp.param_rows}
    assert rows["lr"][1] is True and rows["lr"][0] == [0.1, 0.01, 0.001]
    html = comp._repr_html_()
    assert 'class="diff"' in html  # the params that differ, highlighted
    # acc has a curve (logged twice), val-loss none (once): curves, parallel coordinates, scatter
    charts = compare_charts(comp)
    assert [c.spec["usermeta"]["mlops"]["kind"] for c in charts] == ["metrics", "parallel", "scatter"]
    assert charts[0].spec["usermeta"]["mlops"]["keys"] == ["acc"] and html.count("<svg") == 3
    assert comp.metric_keys == ["acc", "val-loss"]
    assert comp.frame().shape[1] == 3
    with pytest.raises(BadInput):
        mj.compare(["a"])
