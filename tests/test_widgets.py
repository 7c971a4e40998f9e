"""The notebook views, built for real (ipywidgets works without a front end attached)."""

import pytest

import mlops_jupyter as mj
from mlops_jupyter.widgets.charts import sparkline


def test_sparkline_glyph():
    assert sparkline([1, 2, 3]).startswith("<svg") and sparkline([1]) == ""
    spiky = [0.0] * 10_000
    spiky[5000] = 9.0
    svg = sparkline(spiky)
    assert svg.count(",") <= 70 and ",1.0 " in svg  # thinned to about 60 points, the spike kept at the top


def test_runs_table_filters_sorts_and_pages(store):
    for i in range(60):
        with mj.start_run(f"r{i:02d}", params={"i": i}) as r:
            r.log_metric("acc", i / 100)
    from mlops_jupyter.widgets.views import RunsTable

    t = RunsTable(store)
    assert "1–50 of 60 runs" in t.status.value and "r59" in t.body.value and "r00" not in t.body.value
    t.next.click()
    assert "51–60 of 60" in t.status.value and "r00" in t.body.value
    t.where.value = "metrics.acc >= 0.55"
    assert "of 5 runs" in t.status.value and t.page == 0
    t.sort.value = "metrics.acc"
    t.desc.value = False
    assert t.body.value.index("r55") < t.body.value.index("r59")
    t.where.value = "metrics.acc >"
    assert "expected" in t.status.value  # a bad filter is said in the widget, not raised
    assert "metrics.acc" in t.sort.options


def test_runs_frame_display_falls_back_outside_a_kernel(store, capsys):
    with mj.start_run("x"):
        pass
    df = mj.runs()
    assert type(df).__name__ == "RunsFrame"
    assert type(df[df.status == "finished"]).__name__ == "DataFrame"  # derived frames are plain
    df._ipython_display_()
    assert "x" in capsys.readouterr().out
