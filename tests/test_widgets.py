"""The notebook views, built for real (ipywidgets works without a front end attached)."""


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
    assert t.where.continuous_update is False and t.sort.continuous_update is False  # applied when complete
    body = t.body.value
    t.where.value = "metrics.acc >"
    # a bad filter is said under the box, not raised; the last good filter's table stays
    assert "expected" in t.error.value and "showing metrics.acc &gt;= 0.55" in t.error.value
    assert t.body.value == body and "of 5 runs" in t.status.value
    t.where.value = "metrics.acc >= 0.58"
    assert t.error.value == "" and "of 2 runs" in t.status.value
    assert "metrics.acc" in t.sort.options


def test_runs_table_columns_are_chosen_and_the_rest_counted(store):
    from mlops_jupyter.widgets.views import RunsTable

    with mj.start_run("wide", params={f"p{k:02d}": k for k in range(12)}) as r:
        r.log_metrics({f"m{k:02d}": k / 10 for k in range(10)})
    t = RunsTable(store)
    head = t.body.value.split("</thead>")[0]
    assert 'colspan="8">params</th>' in head and 'colspan="8">metrics</th>' in head  # a two-level header
    assert "p07" in head and "p08" not in head and "m07" in head and "m08" not in head
    assert "6 more columns (4 params, 2 metrics) not shown" in t.body.value
    assert len(t.columns.options) == 22 and t.pick.description == "columns (16/22)"
    t.columns.value = ("params.p11", "metrics.m09")
    head = t.body.value.split("</thead>")[0]
    assert "p11" in head and "m09" in head and "p00" not in head and "m00" not in head
    assert "20 more columns (11 params, 9 metrics) not shown" in t.body.value
    t.where.value = "name = 'wide'"  # the choice outlives a new query
    assert "p11" in t.body.value.split("</thead>")[0] and t.pick.description == "columns (2/22)"


def test_runs_table_display_keeps_a_static_copy_up_to_date(store, ip):
    """Shown through saved.display_view: the bundle carries the table as HTML and one line of text
    (not the widget's repr), and a new filter replaces both."""
    from IPython.utils.capture import capture_output

    from mlops_jupyter.widgets.saved import WIDGET_MIME
    from mlops_jupyter.widgets.views import RunsTable

    for name, acc in (("zebra", 0.2), ("quokka", 0.9)):
        with mj.start_run(name) as r:
            r.log_metric("acc", acc)
    t = RunsTable(store)
    with capture_output() as out:
        t.show()
        t.where.value = "metrics.acc > 0.5"
    first, last = out.outputs[0].data, out.outputs[-1].data
    assert WIDGET_MIME in first and first["text/plain"] == "runs table: 1–2 of 2 runs"
    assert "zebra" in first["text/html"] and "quokka" in first["text/html"]
    assert WIDGET_MIME in last and last["text/plain"] == "runs table: 1–1 of 1 runs where metrics.acc > 0.5"
    assert "quokka" in last["text/html"] and "zebra" not in last["text/html"]
    assert "filter metrics.acc &gt; 0.5" in last["text/html"]


def test_runs_frame_display_falls_back_outside_a_kernel(store, capsys):
    with mj.start_run("x"):
        pass
    df = mj.runs()
    assert type(df).__name__ == "RunsFrame"
    assert type(df[df.status == "finished"]).__name__ == "DataFrame"  # derived frames are plain
    df._ipython_display_()
    out = capsys.readouterr().out
    header, row = out.splitlines()[-2:]
    assert header.split() == ["run", "name", "status", "started"]
    assert row.split()[:3] == [df.run_id[0][:8], "x", "finished"] and ":" in row and "+00:00" not in row
