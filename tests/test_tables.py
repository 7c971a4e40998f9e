"""Tables for people in a notebook: the listings (`data ls`, `model ls`, `model history`, `runs`)
drawn with local times, sizes, short ids and whole alias tokens, still DataFrames for code, and
kept when the notebook is saved without widget state (as JupyterLab saves it)."""
import re
import time

import nbformat
import pandas as pd
import pytest

import mlops_jupyter as mj

from .conftest import run_cell
from .test_notebook import make_nb

HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
FINE_TIME = re.compile(r"\d{2}:\d{2}:\d{2}[.,]\d|\+00:00")  # nanoseconds, a UTC offset
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def seed():
    """Three runs with more params than a table shows, a dataset, a model with two aliases."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": np.arange(500.0), "b": np.arange(500.0) % 2})
    for i in range(3):
        with mj.start_run(f"trial-{i}", params={f"p{k:02d}": k * i for k in range(12)}) as r:
            r.log_metrics({"acc": 0.5 + i / 10, "loss": 1 / (i + 1)})
            if i == 2:  # the version records the run that made it
                v = mj.data.add(X, name="train", message="the october export")
    clf = LogisticRegression().fit(X, X["b"])
    mj.models.register(clf, name="churn", example=X.head(3), alias="production")
    mj.models.register(clf, name="churn", example=X.head(3), alias="staging")
    return v


def test_listings_in_a_notebook_are_dataframes_drawn_for_people(ip, capsys):
    v = seed()
    df = ip.run_line_magic("mlops", "model ls")
    assert isinstance(df, pd.DataFrame) and list(df["name"]) == ["churn"] and len(df) == 1
    assert type(df[df["name"] == "churn"]) is pd.DataFrame  # derived frames are plain again
    data, _ = ip.display_formatter.format(df)
    html, text = data["text/html"], data["text/plain"]
    assert '<span class="mlops-tok">production→v1</span>' in html and "production→v1" in text
    assert text.startswith("Models · 1 model\n") and not HEX_ID.search(html + text)

    frame = ip.run_line_magic("mlops", "data ls")  # a value, as `model ls` is
    assert str(frame["created"].dtype).startswith("datetime64")  # the raw data is kept for code
    run_id = frame["run_id"].iloc[0]
    assert len(run_id) == 32
    data, _ = ip.display_formatter.format(frame)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created))
    for shown in data.values():
        assert when in shown and f"{v.size / 1000:.1f} kB" in shown and run_id[:8] in shown
        assert run_id[:9] not in shown and not FINE_TIME.search(shown) and not HEX_ID.search(shown)

    moves = ip.run_line_magic("mlops", "model history churn")
    assert list(moves["to"]) == ["v1", "v2"]
    html = ip.display_formatter.format(moves)[0]["text/html"]
    assert "Alias moves of churn · 2 moves" in html and "— → v2" in html and not FINE_TIME.search(html)

    capsys.readouterr()
    ip.user_ns["extra"] = pd.DataFrame({"x": [1.0, None, 3.0]})
    r = run_cell(ip, "%mlops data add extra")
    assert r.success and r.result.ref == "extra@v1"  # the version, for `v = %mlops data add extra`
    # and no card: one line (a terminal shell also prints its empty "Out[n]:" prompt)
    (line,) = [x for x in capsys.readouterr().out.splitlines() if not x.startswith("Out[")]
    assert re.fullmatch(r"added extra@v1: 3 rows × 1 column, [\d.]+ kB in \d+\.\ds \(statistics: data show extra@v1\)",
                        line), line
    run_cell(ip, "_")  # the same version shown again, on purpose: now its card
    assert "extra@v1" in capsys.readouterr().out
    shown = ip.run_line_magic("mlops", "data show extra")._repr_html_()
    assert ">missing</th>" in shown and "1 (33%)" in shown and "nulls" not in shown


@pytest.mark.parametrize("line,message", [
    ("data show nosuch", "no dataset 'nosuch'"),
    ("model history nosuch", "no model 'nosuch'"),
    ("data ls a/b", "not allowed"),
])
def test_listing_bad_input_is_one_line(ip, line, message):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as e:
        ip.run_line_magic("mlops", line)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_notebook_saved_without_widget_state_keeps_its_tables(project):
    """In a real kernel: `%mlops runs` goes out as the widget with the table as HTML and one line of
    text; the listings as HTML and text. Saved without widget state and exported by nbconvert, the
    tables are what shows."""
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    seed()
    path = make_nb(project / "tables.ipynb", "%load_ext mlops_jupyter", "%mlops runs", "%mlops data ls",
                   "%mlops model ls", "%mlops model history churn",
                   "df = %mlops runs\nprint(type(df).__name__, len(df[df['metrics.acc'] > 0.55]))")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    (runs,) = nb.cells[1].outputs
    assert WIDGET_MIME in runs["data"] and runs["data"]["text/plain"] == "runs table: 1–3 of 3 runs"
    assert 'colspan="8">params</th>' in runs["data"]["text/html"]
    assert "4 more columns (4 params) not shown" in runs["data"]["text/html"]
    for cell in nb.cells[2:5]:
        (out,) = cell.outputs
        assert out["output_type"] == "execute_result" and set(out["data"]) == {"text/html", "text/plain"}
        assert not HEX_ID.search(out["data"]["text/html"]) and not FINE_TIME.search(out["data"]["text/html"])
    assert '<span class="mlops-tok">production→v1</span>' in nb.cells[3].outputs[0]["data"]["text/html"]
    assert nb.cells[5].outputs[0]["text"] == "RunsFrame 2\n"  # `df = %mlops runs` is a DataFrame to filter

    nb.metadata.pop("widgets", None)  # JupyterLab saves no widget state
    page, _ = HTMLExporter().from_notebook_node(nb)
    for expected in ("trial-0", "trial-2", "Datasets · 1 dataset", "production→v1", "Alias moves of churn"):
        assert expected in page, expected
    assert "VBox(" not in page and "runs table: 1–3" not in page  # the HTML, not the text line
