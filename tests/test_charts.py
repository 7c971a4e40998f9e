"""The chart language: every picture is a Vega-Lite 5 spec that validates, with titled axes, time
typed as time, one colour per run across a view, a log scale on demand, and no one-point chart
with a negative or empty axis; the live chart follows a run; saved notebooks keep every chart."""

import json
import math
import os
import re
import subprocess

import nbformat
import pytest

import mlops_jupyter as mj
from mlops_jupyter.charts import CHART_MIME, SVG_MIME, VEGALITE_MIME, Chart
from mlops_jupyter.charts.compare import parallel_coordinates, param_scatter
from mlops_jupyter.charts.metrics import metric_chart
from mlops_jupyter.charts.spec import HOVER, thin
from mlops_jupyter.charts.static import static_spec
from mlops_jupyter.exceptions import BadInput

from .conftest import PY, python_env

T0 = 1_764_500_000.0


@pytest.fixture(scope="module")
def validator():
    import altair
    import jsonschema

    path = os.path.join(os.path.dirname(altair.__file__), "vegalite", "v5", "schema", "vega-lite-schema.json")
    with open(path) as f:
        return jsonschema.Draft7Validator(json.load(f))


def two_runs(n=30):
    return {"run-a": {"acc": [(i, 0.94 + 0.003 * math.sin(i / 3), T0 + i) for i in range(n)],
                      "loss": [(i, 1 / (i + 1), T0 + i) for i in range(n)]},
            "run-b": {"acc": [(i, 0.93 + 0.004 * math.cos(i / 3), T0 + 2 * i) for i in range(n)],
                      "loss": [(i, 1.2 / (i + 1), T0 + 2 * i) for i in range(n)]}}


def walk(node, found=None):
    """Every dict in a spec."""
    found = [] if found is None else found
    if isinstance(node, dict):
        found.append(node)
        for v in node.values():
            walk(v, found)
    elif isinstance(node, list):
        for v in node:
            walk(v, found)
    return found


def encodings(spec, channel):
    return [d["encoding"][channel] for d in walk(spec) if isinstance(d.get("encoding"), dict)
            and channel in d["encoding"]]


RUNS = [(f"run-{i}", {"lr": 10 ** -(i + 1), "depth": 3 + i % 2, "opt": ["adam", "sgd"][i % 2]},
         {"acc": 0.8 + i / 50, "loss": 0.5 - i / 20}) for i in range(5)]

CHARTS = {
    "metrics-step": lambda: metric_chart(two_runs(), best=True),
    "metrics-time": lambda: metric_chart(two_runs(), x="time"),
    "metrics-relative-log": lambda: metric_chart(two_runs(), x="relative", log_y=True),
    "metrics-one-point": lambda: metric_chart({"r": {"acc": [(0, 0.9, T0)]}}),
    "parallel": lambda: parallel_coordinates(RUNS, "acc"),
    "scatter": lambda: param_scatter(RUNS, "loss"),
}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_every_chart_is_valid_vega_lite_5_with_titled_axes(name, validator):
    chart = CHARTS[name]()
    spec = chart.spec
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(spec)]
    assert not errors, errors
    assert spec["$schema"].endswith("/vega-lite/v5.json")
    assert spec["usermeta"]["mlops"]["kind"]
    for channel in ("x", "y"):
        for enc in encodings(spec, channel):
            if enc.get("axis", {}) is None:  # parallel coordinates: positions, not values
                continue
            assert enc.get("title"), (channel, enc)
    json.dumps(spec, allow_nan=False)  # NaN never reaches the JSON


def test_time_axes_are_typed_as_time_and_relative_time_has_a_unit():
    assert {e["type"] for e in encodings(CHARTS["metrics-time"]().spec, "x")} == {"temporal"}
    rel = encodings(CHARTS["metrics-relative-log"]().spec, "x")
    assert {e["type"] for e in rel} == {"quantitative"}
    assert all(re.fullmatch(r"relative time \((s|min|h)\)", e["title"]) for e in rel)
    hours = metric_chart({"r": {"loss": [(i, 1.0 / (i + 1), T0 + i * 3600) for i in range(10)]}}, x="relative")
    assert encodings(hours.spec, "x")[0]["title"] == "relative time (h)"
    steps = encodings(CHARTS["metrics-step"]().spec, "x")
    assert all(e["axis"]["tickMinStep"] == 1 for e in steps)  # no step 14.5


def test_a_run_keeps_one_colour_in_every_chart_of_a_view():
    for name in ("metrics-step", "parallel", "scatter"):
        scales = [e["scale"] for e in encodings(CHARTS[name]().spec, "color")]
        assert scales and all(s == scales[0] for s in scales), name
        assert len(set(scales[0]["range"])) == len(scales[0]["domain"])
    spec = CHARTS["metrics-step"]().spec
    assert spec["resolve"]["scale"]["color"] == "shared"
    legends = [e["legend"] for e in encodings(spec, "color") if e.get("legend")]
    assert legends and all(leg["orient"] == "right" for leg in legends)  # beside the data, not on it


def test_log_scale_on_demand_and_symlog_when_values_reach_zero():
    spec = metric_chart(two_runs(), log_y=True).spec
    assert {e["scale"].get("type") for e in encodings(spec, "y")} == {"log"}
    spec = metric_chart({"r": {"delta": [(i, i - 5.0, T0 + i) for i in range(10)]}}, log_y=True).spec
    assert {e["scale"].get("type") for e in encodings(spec, "y")} == {"symlog"}
    assert not any("type" in e["scale"] for e in encodings(metric_chart(two_runs()).spec, "y"))


def tick_labels(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_a_one_point_chart_has_no_negative_or_empty_axis():
    chart = CHARTS["metrics-one-point"]()
    (x,) = encodings(chart.spec, "x")[:1]
    assert x["scale"]["domain"][0] >= 0 and x["scale"]["domain"][1] > x["scale"]["domain"][0]
    y = encodings(chart.spec, "y")[0]
    lo, hi = y["scale"]["domain"]
    assert lo < 0.9 < hi and lo >= 0
    labels = tick_labels(chart.svg())
    numbers = [float(t.replace(",", "")) for t in labels if re.fullmatch(r"[-−]?[\d,.]+", t)]
    assert numbers and min(numbers) >= 0, labels
    steps = [t for t in labels if re.fullmatch(r"\d+", t)]
    assert len(steps) == len(set(steps)), labels  # no "0 0 0 1 1 1" from fractional ticks


def test_best_value_is_marked_lowest_for_a_loss_highest_for_accuracy():
    spec = metric_chart(two_runs(), best=True).spec
    bests = {d["data"]["values"][0]["label"]: d["data"]["values"][0]["run"] for d in walk(spec)
             if isinstance(d.get("data"), dict) and "values" in d["data"] and d.get("mark", {}).get("type") == "text"}
    acc_best = max(two_runs()[r]["acc"][-1][1] for r in ("run-a", "run-b"))
    assert f"best {acc_best:.4g}" in bests
    assert bests[f"best {1 / 30:.4g}"] == "run-a"  # the lower loss


def test_thinning_keeps_spikes_and_bounds_the_points():
    pts = [(i, 0.5, T0 + i) for i in range(100_000)]
    pts[54_321] = (54_321, 9.0, T0)
    kept = thin(pts, 2000)
    assert len(kept) <= 2100 and any(v == 9.0 for _, v, _ in kept)
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)
    spec = metric_chart({"r": {"loss": pts}}).spec
    sent = spec["datasets"][spec["usermeta"]["mlops"]["datasets"]["loss"]]
    assert len(sent) <= 1000 and any(p["value"] == 9.0 and p["x"] == 54_321 for p in sent)
    assert [p["x"] for p in sent] == sorted(p["x"] for p in sent) and sent[-1]["x"] == 99_999


def test_static_picture_drops_interactive_layers_but_keeps_the_data():
    spec = CHARTS["metrics-step"]().spec
    assert any(d.get("name") == HOVER for d in walk(spec))
    flat = static_spec(spec)
    assert not any(d.get("name") == HOVER for d in walk(flat))
    assert not any("bind" in d for d in walk(flat))
    assert flat["datasets"] == spec["datasets"]
    svg = Chart(spec).svg()
    assert svg.lstrip().startswith("<svg") and "acc" in svg and "run-b" in svg


def test_chart_bundle_and_save(tmp_path):
    chart = CHARTS["parallel"]()
    bundle = chart.mimebundle()
    assert set(bundle) == {VEGALITE_MIME, SVG_MIME, CHART_MIME, "text/plain"}
    assert "Chart" in bundle["text/plain"] and "acc" in bundle["text/plain"]
    for suffix in ("svg", "png", "json", "html"):
        path = chart.save(tmp_path / f"c.{suffix}")
        assert os.path.getsize(path) > 500
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "c.json").read_text()) == chart.spec
    with pytest.raises(BadInput, match=r"\.svg, \.png"):
        chart.save(tmp_path / "c.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.html", "c.json", "c.png", "c.svg"]  # no temp left


def test_bad_x_is_one_clear_error():
    with pytest.raises(BadInput, match="x is one of step, time, relative"):
        metric_chart(two_runs(), x="epoch")


@pytest.mark.backends
def test_runs_compare_through_the_store(store):
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        with mj.start_run("sweep", params={"lr": lr, "depth": 3}) as run:
            for s in range(5):
                run.log_metric("loss", (1 + i) / (s + 1), step=s)
            run.log_metric("acc", 0.9 - i / 10)
    store.writer.flush()
    from mlops_jupyter.tracking.query import compare

    comp = compare(list(mj.runs()["run_id"]))
    meta = comp.chart().spec["usermeta"]["mlops"]
    assert len(meta["runs"]) == 3 and len(set(meta["runs"])) == 3  # same name: labels told apart by id
    assert comp.parallel().spec["usermeta"]["mlops"]["dims"] == ["lr", "acc"]  # depth never varies
    assert comp.scatter("loss").spec["usermeta"]["mlops"]["metric"] == "loss"
    with pytest.raises(BadInput, match="no run has a metric 'f1'"):
        comp.parallel("f1")
    rec = comp.runs[0]
    assert rec.chart(x="time").spec["usermeta"]["mlops"]["x"] == "time"


@pytest.mark.backends
def test_live_chart_follows_the_run_and_ends_with_a_static_picture(store):
    from mlops_jupyter.widgets.live import LiveRun

    run = mj.start_run("live")
    live = LiveRun(store, run.run_id, interval=3600, display=False)  # refreshed by hand here
    for s in range(10):
        run.log_metric("loss", 1 / (s + 1), step=s)
    store.writer.flush()
    assert live.refresh() is True
    assert "running" in live.header and "loss" in live.header
    assert len(live.series["loss"]) == 10
    assert live.chart.spec["usermeta"]["mlops"]["keys"] == ["loss"]
    for s in range(10, 15):
        run.log_metric("loss", 0.01, step=s)
    run.end()
    assert live.refresh() is False  # ended: the thread stops after this
    assert len(live.series["loss"]) == 15 and "finished" in live.header
    live.finish()
    assert live.ended


def monitor_windows():
    rows = []
    for i in range(30):
        if 10 <= i < 16:  # six silent minutes
            continue
        rows.append({"start": T0 + 60 * i, "version": 1 if i < 20 else 2, "requests": 10 + i,
                     "latency_p99_ms": 5.0 + i % 3, "accuracy": 0.9})
    return rows


def test_monitor_chart_clock_time_bars_gaps_and_markers(validator):
    from mlops_jupyter.charts.monitor import monitor_chart

    cols = [("requests", "requests per window"), ("latency_p99_ms", "latency p99 (ms)"), ("accuracy", "accuracy")]
    chart = monitor_chart(monitor_windows(), cols, start=T0, end=T0 + 1800, window=60,
                          drift=[{"created": T0 + 600, "drift_share": 0.25}])
    spec = chart.spec
    assert not list(validator.iter_errors(spec))
    xs = encodings(spec, "x")
    assert xs and {e["type"] for e in xs} == {"temporal"} and all(e["title"] == "time" for e in xs)
    assert spec["resolve"]["scale"]["x"] == "shared"  # one time axis for every panel
    marks = [p["mark"] for p in spec["vconcat"]]
    assert marks[0]["type"] == "rect" and all(m["type"] == "line" and m["point"] for m in marks[1:])
    rows = spec["data"]["values"]
    silent = [r for r in rows if T0 + 600 <= r["t"] / 1000 < T0 + 960]
    assert len({r["t"] for r in silent}) == 6 and all(r["latency_p99_ms"] is None and r["r1"] == r["r0"] for r in silent)
    assert spec["usermeta"]["mlops"]["versions"] == ["v1", "v2"]
    one = monitor_chart(monitor_windows()[:1], cols, start=T0, end=T0 + 600, window=60)
    x = encodings(one.spec, "x")[0]
    assert x["scale"]["domain"] == [T0 * 1000, (T0 + 600) * 1000]  # the span asked for, not -1 min to +2 h
    lo, hi = encodings(one.spec, "y")[2]["scale"]["domain"]
    assert lo < 0.9 < hi


NOTEBOOK = [
    "%load_ext mlops_jupyter",
    "%mlops track start first --param lr=0.1 --param depth=3",
    "import time\nfor s in range(20):\n    %mlops log loss={1/(s+1)} acc={0.8+s/100} --step {s}\ntime.sleep(1.5)",
    "%mlops track stop",
    "%%mlops track second --param lr=0.01 --param depth=3\nfor s in range(20):\n"
    "    %mlops log loss={1.5/(s+1)} acc={0.82+s/110} --step {s}",
    "%mlops show last",
    "%mlops compare first second",
    "%mlops runs",
]


@pytest.mark.slow
def test_a_saved_notebook_keeps_every_chart_and_table(project):
    """Executed by a real kernel, saved without widget state (as JupyterLab saves), converted to HTML:
    the live chart, the run card, the comparison and the runs table all show as pictures and tables."""
    from .saved_views import assert_views_survive_saving, pictures_in

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, project / "views.ipynb")
    code = ("from mlops_jupyter.jobs import execute_notebook\n"
            "execute_notebook('views.ipynb', 'out.ipynb', progress=False)\n")
    r = subprocess.run([PY, "-c", code], cwd=project, capture_output=True, text=True, timeout=300, env=python_env())
    assert r.returncode == 0, r.stderr[-3000:]
    out = nbformat.read(project / "out.ipynb", as_version=4)
    cells = {c.source.splitlines()[0]: c for c in out.cells}
    # the live chart sits under the cell that started the run, and ends as the final picture
    live = cells["%mlops track start first --param lr=0.1 --param depth=3"]
    charts = [o for o in live.outputs if VEGALITE_MIME in o.get("data", {})]
    assert len(charts) == 1 and SVG_MIME in charts[0]["data"]
    final = charts[0]["data"][VEGALITE_MIME]
    loss = final["datasets"][final["usermeta"]["mlops"]["datasets"]["loss"]]
    assert [p["x"] for p in loss] == list(range(20))  # every point, to the end
    assert "finished" in "".join(str(o.get("data", {}).get("text/html", "")) for o in live.outputs)
    assert pictures_in(cells["%%mlops track second --param lr=0.01 --param depth=3"]) == ["svg"]
    assert pictures_in(cells["%mlops show last"]) == ["table", "svg"]
    assert pictures_in(cells["%mlops compare first second"]) == ["table", "svg", "svg", "svg"]
    assert "table" in pictures_in(cells["%mlops runs"])
    page = assert_views_survive_saving(out)
    assert page.count('data-mime-type="image/svg+xml"') >= 6  # nbconvert inlines each SVG as an image


@pytest.mark.backends
def test_show_and_compare_draw_with_the_options_asked(project, ip, capsys):
    from mlops_jupyter.cli import main

    for lr in (0.1, 0.01):
        with mj.start_run(f"lr{lr}", params={"lr": lr}) as run:
            for s in range(4):
                run.log_metric("loss", lr / (s + 1), step=s)
    assert main(["compare", "lr0.1", "lr0.01", "--x", "relative", "--log-y", "--chart", "cmp.svg"]) == 0
    assert "chart written to cmp.svg" in capsys.readouterr().out
    svg = (project / "cmp.svg").read_text()
    assert svg.lstrip().startswith("<svg") and "relative time (s)" in svg
    assert main(["show", "lr0.1", "--chart", "run.gif"]) == 2
    assert "saved as .svg, .png, .json or .html" in capsys.readouterr().err
    assert main(["compare", "lr0.1", "lr0.01", "--metric", "f1"]) == 2
    assert main(["show", "lr0.1", "--x", "epoch"]) == 2
    comp = ip.run_line_magic("mlops", "compare lr0.1 lr0.01 --x time --metric loss")
    from mlops_jupyter.widgets.runs_view import compare_charts

    kinds = [(c.spec["usermeta"]["mlops"]["kind"], c.spec["usermeta"]["mlops"].get("x")) for c in compare_charts(comp)]
    assert kinds == [("metrics", "time"), ("parallel", None), ("scatter", None)]


def test_each_chart_keeps_its_own_y_in_the_vega_lite_jupyterlab_ships():
    """JupyterLab 4 draws Vega-Lite 5.6, whose compiler mixed the last chart's values into every
    chart's y domain (acc drawn on trees' 0-100); the specs give each chart its own domain."""
    import vl_convert

    series = {"a": {"acc": [(i, 0.94 + i / 1000, T0 + i) for i in range(10)],
                    "trees": [(i, 10.0 * (i + 1), T0 + i) for i in range(10)]}}
    vega = vl_convert.vegalite_to_vega(metric_chart(series).spec, vl_version="5.8")  # the oldest 5.x it has
    scales = {s["name"]: s for s in vega["scales"]}
    assert scales["concat_0_y"]["domain"] == [0.94, 0.949]
    assert scales["concat_1_y"]["domain"] == [10.0, 100.0]
