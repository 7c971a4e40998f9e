"""The JupyterLab panel's REST routes, through a real Jupyter server (pytest-jupyter fixtures):
every route, Jupyter's authentication on each, and bad input as a 4xx JSON body. The charts the
routes hand out are Vega-Lite specs checked against Vega-Lite 5's JSON schema."""

import asyncio
import json
import math
import os
import time

import numpy as np
import pandas as pd
import pytest
from tornado.httpclient import HTTPClientError

import mlops_jupyter as mj

from .test_jobs import TRAIN, write_notebook

pytest_plugins = ["pytest_jupyter.jupyter_server"]

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND"
       b"\xaeB`\x82")


@pytest.fixture(scope="module")
def validator():
    import altair
    import jsonschema

    path = os.path.join(os.path.dirname(altair.__file__), "vegalite", "v5", "schema", "vega-lite-schema.json")
    with open(path) as f:
        return jsonschema.Draft7Validator(json.load(f))


def valid(validator, spec):
    errors = sorted(validator.iter_errors(spec), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:3]]
    assert spec["$schema"].endswith("vega-lite/v5.json")
    return spec


@pytest.fixture
def jp_root_dir(project):
    return project


@pytest.fixture
def jp_server_config(monkeypatch):
    from mlops_jupyter import config

    monkeypatch.setattr(config, "DEFAULT_START", None)  # restored after the test
    return {"ServerApp": {"jpserver_extensions": {"mlops_jupyter": True}}}


async def get(jp_fetch, *path, **params):
    r = await jp_fetch("mlops", "api", *path, params=params)
    return json.loads(r.body)


async def error(jp_fetch, *path, method="GET", body=None, **params):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("mlops", "api", *path, method=method, body=body, params=params)
    return e.value.code, json.loads(e.value.response.body)


def _runs(n=3):
    for i in range(n):
        with mj.start_run(f"run-{i}", params={"lr": 0.1 * (i + 1), "depth": i}) as r:
            for step in range(5):
                r.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            r.log_metric("acc", 0.5 + i / 100)


@pytest.mark.backends
async def test_runs_paging_filter_sort_and_one_run(jp_fetch, validator):
    _runs(7)
    page = await get(jp_fetch, "runs", limit="3", offset="0")
    assert page["total"] == 7 and [r["name"] for r in page["runs"]] == ["run-6", "run-5", "run-4"]
    assert page["runs"][0]["params"] == {"lr": pytest.approx(0.7), "depth": 6}
    assert page["runs"][0]["metrics"]["loss"] == pytest.approx(1 / 11)
    # finished runs have a sparkline too: the last points of the metric logged most often
    assert page["runs"][0]["spark"] == {"key": "loss", "values": pytest.approx([1 / (s + 7) for s in range(5)])}
    page = await get(jp_fetch, "runs", limit="3", offset="6")
    assert [r["name"] for r in page["runs"]] == ["run-0"]
    page = await get(jp_fetch, "runs", where="params.depth >= 5", sort="name")
    assert page["total"] == 2 and [r["name"] for r in page["runs"]] == ["run-5", "run-6"]
    one = await get(jp_fetch, "runs", page["runs"][0]["run_id"])
    assert one["name"] == "run-5" and one["metric_points"] == {"loss": 5, "acc": 1}
    assert one["params"]["depth"] == 5 and one["cells"] == [] and one["children"] == [] and one["parent"] is None
    for args, status, msg in [(("runs",), 400, "limit is 1 to 500"), (("runs", "nope"), 404, "nope"),
                              (("compare",), 400, "two runs")]:
        kw = {"limit": "0"} if args == ("runs",) else {}
        code, body = await error(jp_fetch, *args, **kw)
        assert code == status and msg in body["error"]
    code, body = await error(jp_fetch, "runs", where="metrics.loss >")
    assert code == 400 and body["error"]


@pytest.mark.backends
async def test_the_run_chart_follows_x_and_log_y(jp_fetch, validator):
    with mj.start_run("curves") as r:
        for step in range(30):
            r.log_metric("loss", 10.0 ** (-step / 10), step=step)
            r.log_metric("acc", 0.5 + step / 100, step=step)
        r.log_metric("auc", 0.9)  # one value is no curve: left out unless asked for
    chart = await get(jp_fetch, "runs", r.run_id, "chart")
    spec = valid(validator, chart["spec"])
    meta = spec["usermeta"]["mlops"]
    assert (meta["kind"], meta["x"], meta["log_y"], meta["runs"], meta["keys"]) == (
        "metrics", "step", False, ["curves"], ["acc", "loss"])
    assert chart["x"] == "step" and chart["log_y"] is False
    chart = await get(jp_fetch, "runs", r.run_id, "chart", keys="auc")
    assert valid(validator, chart["spec"])["usermeta"]["mlops"]["keys"] == ["auc"]
    for x in ("time", "relative"):
        chart = await get(jp_fetch, "runs", r.run_id, "chart", x=x, log_y="1", keys="loss")
        spec = valid(validator, chart["spec"])
        assert spec["usermeta"]["mlops"]["x"] == x and spec["usermeta"]["mlops"]["keys"] == ["loss"]
        layer = spec["layer"][0]
        assert layer["encoding"]["y"]["scale"]["type"] == "log"
        assert layer["encoding"]["x"]["type"] == ("temporal" if x == "time" else "quantitative")
    for params, msg in [({"x": "epoch"}, "x is one of step, time, relative"), ({"log_y": "maybe"}, "log_y is 1 or 0"),
                        ({"keys": "f1"}, "no metric 'f1'")]:
        code, body = await error(jp_fetch, "runs", r.run_id, "chart", **params)
        assert code == 400 and msg in body["error"], body
    code, body = await error(jp_fetch, "runs", "nope", "chart")
    assert code == 404 and "nope" in body["error"]
    with mj.start_run("quiet") as q:
        q.log_param("a", 1)
    assert (await get(jp_fetch, "runs", q.run_id, "chart"))["spec"] is None


async def test_artifacts_download_by_their_stored_names_only(jp_fetch, project, jp_serverapp, http_server_client):
    (project / "plot.png").write_bytes(PNG)
    with mj.start_run("with-files") as r:
        r.log_artifact(project / "plot.png", name="pictures/loss curve é.png")
        r.log_text("a,b\n1,2\n", "table.csv")
        r.log_text("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg")
        r.log_text("<script>alert(1)</script>", "page.html")
    one = await get(jp_fetch, "runs", r.run_id)
    names = {a["path"]: a for a in one["artifacts"]}
    assert names["pictures/loss curve é.png"]["image"] and not names["table.csv"]["image"]
    assert names["pictures/loss curve é.png"]["size"] == len(PNG)

    async def fetch(name, **params):
        return await jp_fetch("mlops", "api", "runs", r.run_id, "artifacts", name, params=params)  # quoted there

    got = await fetch("pictures/loss curve é.png")
    assert got.body == PNG and got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"] == "inline; filename*=UTF-8''loss%20curve%20%C3%A9.png"
    assert "sandbox" in got.headers["Content-Security-Policy"] and got.headers["X-Content-Type-Options"] == "nosniff"
    got = await fetch("pictures/loss curve é.png", download="1")
    assert got.headers["Content-Disposition"].startswith("attachment;")
    got = await fetch("table.csv")
    assert got.body == b"a,b\n1,2\n" and got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert got.headers["Content-Disposition"] == "attachment; filename*=UTF-8''table.csv"
    got = await fetch("page.html")  # a page is text, never rendered on the server's origin
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8" and got.headers["Content-Disposition"].startswith(
        "attachment")
    got = await fetch("x.svg")  # previewed through <img> (no script runs there); opened alone it is sandboxed
    assert got.headers["Content-Type"] == "image/svg+xml" and "sandbox" in got.headers["Content-Security-Policy"]
    # names are looked up among the run's artifacts, never opened as paths
    (project / "secret.txt").write_text("secret")
    for name in ["../secret.txt", "../../secret.txt", "/etc/passwd", "pictures", "pictures/", "plot.png"]:
        code, body = await error(jp_fetch, "runs", r.run_id, "artifacts", name)
        assert code == 404 and "has no artifact" in body["error"], (name, body)
    code, body = await error(jp_fetch, "runs", r.run_id, "artifacts", "a\x01b")
    assert code == 400 and "control characters" in body["error"]
    code, body = await error(jp_fetch, "runs", "nope", "artifacts", "table.csv")
    assert code == 404 and "nope" in body["error"]
    code, body = await error(jp_fetch, "runs", r.run_id, "artifacts", "table.csv", download="perhaps")
    assert code == 400 and "download is 1 or 0" in body["error"]
    with pytest.raises(HTTPClientError) as e:  # Jupyter's authentication, as on every route
        await http_server_client.fetch(f"{jp_serverapp.base_url}mlops/api/runs/{r.run_id}/artifacts/table.csv",
                                       raise_error=True)
    assert e.value.code in (401, 403)


async def test_a_running_run_has_a_sparkline(jp_fetch):
    run = mj.start_run("live")
    for step in range(100):
        run.log_metric("acc", step / 100, step=step)
    run.log_metric("loss", 0.5)
    run.store.writer.flush()
    try:
        page = await get(jp_fetch, "runs")
        live = page["runs"][0]
        assert live["status"] == "running" and live["spark"]["key"] == "acc"
        assert live["spark"]["values"] == pytest.approx([s / 100 for s in range(40, 100)])  # the last 60 points
    finally:
        run.end()


async def test_compare_hands_out_curves_parallel_coordinates_and_scatter(jp_fetch, validator):
    _runs(3)
    ids = [r["run_id"] for r in (await get(jp_fetch, "runs"))["runs"]]
    cmp = await get(jp_fetch, "compare", runs=",".join(ids))
    assert [r["name"] for r in cmp["runs"]] == ["run-2", "run-1", "run-0"]
    assert {p["key"] for p in cmp["params"] if p["differs"]} == {"lr", "depth"}
    metrics = {m["key"]: m for m in cmp["metrics"]}
    assert metrics["loss"]["lower_is_better"] and metrics["loss"]["best"] == pytest.approx(1 / 7)
    assert not metrics["acc"]["lower_is_better"] and metrics["acc"]["best"] == pytest.approx(0.52)
    kinds = {name: valid(validator, spec)["usermeta"]["mlops"]["kind"] for name, spec in cmp["charts"].items()}
    assert kinds == {"curves": "metrics", "parallel": "parallel", "scatter": "scatter"}
    cmp = await get(jp_fetch, "compare", runs=",".join(ids), x="relative", log_y="true", metric="loss")
    assert cmp["charts"]["curves"]["usermeta"]["mlops"]["x"] == "relative"
    assert cmp["charts"]["parallel"]["usermeta"]["mlops"]["metric"] == "loss"
    for params, status, msg in [({"runs": ids[0]}, 400, "two runs"), ({"runs": f"{ids[0]},nope"}, 404, "nope"),
                                ({"runs": ",".join(ids), "x": "wall"}, 400, "x is one of"),
                                ({"runs": ",".join(ids), "metric": "f1"}, 400, "no run has a metric 'f1'")]:
        code, body = await error(jp_fetch, "compare", **params)
        assert code == status and msg in body["error"], body


def test_column_histograms_have_round_edges_and_valid_specs(validator):
    from mlops_jupyter.charts.data import column_histogram, nice_edges

    assert nice_edges(0.013, 0.97) == [round(0.05 * i, 2) for i in range(21)]
    assert nice_edges(0, 9, integer=True) == [i - 0.5 for i in range(11)]  # one bin per value
    assert nice_edges(-120.5, 3400) == [200.0 * i for i in range(-1, 19)]  # 3400 is in [3400, 3600)
    assert nice_edges(0.1, 0.3)[-1] == 0.31 and len(nice_edges(0.1, 0.3)) == 22
    assert nice_edges(3, 3) == [2.75, 3.25] and nice_edges(float("nan"), 1) == []
    for lo, hi in [(1e-9, 3e-9), (17, 1e7), (-5, -4.9), (0, 1)]:
        edges = nice_edges(lo, hi)
        assert edges[0] <= lo and edges[-1] > hi and len(edges) - 1 <= 21
        steps = {round(b - a, 12) for a, b in zip(edges, edges[1:])}
        assert len(steps) == 1
        step = steps.pop()
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 6) in (1, 2, 5), (lo, hi, step)
    spec = valid(validator, column_histogram("age", bins=[(0, 10, 3), (10, 20, 5)]).spec)
    assert spec["usermeta"]["mlops"] == {"kind": "histogram", "column": "age"}
    assert spec["encoding"]["x"]["title"] == "age" and spec["encoding"]["x"]["scale"]["domain"] == [0, 10 + 10]
    spec = valid(validator, column_histogram("city", top=[("Paris", 5), ("Oslo", 2)], other=4).spec)
    assert [v["value"] for v in spec["data"]["values"]] == ["Paris", "Oslo", "(other values)"]
    assert "background" not in spec and "color" not in spec["config"].get("axis", {})


@pytest.mark.backends
async def test_data_models_aliases_and_jobs(jp_fetch, project, validator):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("abcd"))
    frame = X.assign(age=rng.integers(18, 30, size=60), city=["Oslo", "Paris", "Rome"] * 20,
                     member=[True, False, True] * 20, rooms=[1.0, 2.0, 3.0, 4.0] * 15)
    frame.loc[3, "a"] = np.nan
    with mj.start_run("train") as r:
        mj.data.add(frame, name="train")
        r.log_metric("auc", 0.7)
        clf = mj.models.register(LogisticRegression().fit(X, X.a > 0), name="churn", example=X,
                                 alias="production")
    mj.data.add(frame.head(30), name="train", message="half")
    mj.models.register(LogisticRegression(C=0.1).fit(X, X.a > 0), name="churn", example=X)
    ds = await get(jp_fetch, "datasets")
    assert ds["datasets"][0]["name"] == "train" and ds["datasets"][0]["rows"] == 30
    one = await get(jp_fetch, "datasets", "train")
    assert [v["ref"] for v in one["versions"]] == ["train@v2", "train@v1"] and one["versions"][0]["message"] == "half"
    assert one["versions"][1]["runs"][0]["name"] == "train" and one["detail"]["ref"] == "train@v2"
    one = await get(jp_fetch, "datasets", "train", version="1")
    detail = one["detail"]
    assert detail["ref"] == "train@v1" and detail["rows"] == 60
    cols = {c["name"]: c for c in detail["columns"]}
    assert cols["a"]["nulls"] == 1 and cols["city"]["kind"] == "category" and cols["age"]["kind"] == "numeric"
    for name, c in cols.items():
        spec = valid(validator, c["histogram"])
        rows = spec["data"]["values"]
        assert sum(v["rows"] for v in rows) == 60 - c["nulls"], name
        if c["kind"] == "numeric":
            assert rows[0]["lo"] <= c["min"] and rows[-1]["hi"] >= c["max"]
    assert [v["rows"] for v in cols["age"]["histogram"]["data"]["values"]] == \
        [int((frame.age == v).sum()) for v in range(int(frame.age.min()), int(frame.age.max()) + 1)]
    assert [v["value"] for v in cols["city"]["histogram"]["data"]["values"]] == ["Oslo", "Paris", "Rome"]
    rooms = cols["rooms"]["histogram"]["data"]["values"]  # whole numbers stored as floats: a bar per value
    assert [(v["lo"], v["hi"], v["rows"]) for v in rooms] == [(k - 0.5, k + 0.5, 15) for k in (1, 2, 3, 4)]
    assert cols["rooms"]["histogram"]["encoding"]["x"]["axis"]["values"] == [1, 2, 3, 4]  # no tick at 1.5 rooms
    ticks = cols["age"]["histogram"]["encoding"]["x"]["axis"]["values"]
    assert ticks == list(range(ticks[0], ticks[-1] + 1, 2)) and frame.age.min() <= ticks[0] <= ticks[-1] <= frame.age.max()
    assert "values" not in cols["a"]["histogram"]["encoding"]["x"]["axis"]
    for params, path, status, msg in [({"version": "9"}, "train", 404, "train@v9"),
                                      ({"version": "x"}, "train", 400, "whole number"),
                                      ({}, "nodata", 404, "no dataset 'nodata'"),
                                      ({}, "bad name", 400, "not allowed")]:
        code, err = await error(jp_fetch, "datasets", path, **params)
        assert code == status and msg in err["error"], err
    # models: the list, and one model in detail with its lineage and stored explanation
    mj.explain(clf.load(), X, progress=False)
    ms = await get(jp_fetch, "models")
    churn = ms["models"][0]
    assert churn["aliases"] == {"production": 1} and [v["version"] for v in churn["versions"]] == [2, 1]
    assert churn["versions"][1]["metrics"]["auc"] == 0.7 and churn["versions"][1]["datasets"] == ["train@v1"]
    assert churn["versions"][1]["run_name"] == "train" and churn["versions"][0]["run_name"] is None
    m = await get(jp_fetch, "models", "churn")
    assert m["selected"] == 1  # the production version, by default
    assert [v["name"] for v in m["versions"][0]["inputs"]] == list("abcd")
    labels = {n["label"] for n in m["lineage"]["nodes"]}
    assert {"train@v1", "churn@v1"} <= labels and any(n["kind"] == "run" for n in m["lineage"]["nodes"])
    assert m["explanation"]["method"] == "shap" and m["explanation"]["rows"] == 60
    assert m["explanation"]["importance"][0]["feature"] == "a"  # the model was fit on a > 0
    chart = valid(validator, m["explanation"]["chart"])  # the picture the notebook shows
    assert chart["usermeta"]["mlops"]["kind"] == "explain.global" and chart["usermeta"]["mlops"]["features"][0] == "a"
    assert [e["alias"] for e in m["history"]] == ["production"]
    m2 = await get(jp_fetch, "models", "churn", version="v2")
    assert m2["selected"] == 2 and m2["explanation"] is None and m2["evaluations"] == []
    mj.evaluate("churn@v2", frame.assign(y=(X.a > 0)).dropna(), target="y", progress=False)
    m2 = await get(jp_fetch, "models", "churn", version="v2")
    assert m2["evaluations"][0]["rows"] == 59 and m2["evaluations"][0]["data"].startswith("a DataFrame")
    assert set(m2["evaluations"][0]["figures"]) >= {"accuracy", "roc_auc"}
    r = await jp_fetch("mlops", "api", "models", "churn", "aliases", "production", method="PUT",
                       body=json.dumps({"version": 2}))
    assert json.loads(r.body) == {"name": "churn", "alias": "production", "version": 2, "previous": 1}
    assert mj.models.get("churn@production").version == 2
    assert list(mj.models.history("churn")["to"])[-1] == "v2"  # the move is in the audit trail
    m = await get(jp_fetch, "models", "churn")
    assert m["selected"] == 2 and [(e["from"], e["to"]) for e in m["history"]] == [(1, 2), (None, 1)]
    for body, status, msg in [({"version": 9}, 404, "v9"), ({"version": "2"}, 400, "whole number"),
                              ({}, 400, "whole number")]:
        code, err = await error(jp_fetch, "models", "churn", "aliases", "production", method="PUT",
                                body=json.dumps(body))
        assert code == status and msg in err["error"], err
    code, err = await error(jp_fetch, "models", "churn", "aliases", "production", method="PUT", body="{")
    assert code == 400
    code, err = await error(jp_fetch, "models", "nomodel")
    assert code == 404 and "nomodel" in err["error"]
    code, err = await error(jp_fetch, "models", "churn", version="7")
    assert code == 404 and "no version v7" in err["error"]
    # a version's model card, as the page the panel frames (default: the production version)
    card = await get(jp_fetch, "models", "churn", "card")
    assert card["version"] == "churn@v2" and card["html"].startswith("<!doctype html>")
    assert 'data-section="Evaluation"' in card["html"] and "<script" not in card["html"]
    card = await get(jp_fetch, "models", "churn", "card", version="1")
    assert card["version"] == "churn@v1" and "SHAP" in card["html"] and "train@v1 (input)" in card["html"]
    code, err = await error(jp_fetch, "models", "churn", "card", version="9")
    assert code == 404 and "no version v9" in err["error"]
    # jobs: promote through the route, then run now
    write_notebook(project / "train.ipynb", TRAIN)
    preview = await get(jp_fetch, "promote", path="train.ipynb")
    assert set(preview["parameters"]) == {"C", "max_iter", "fail"} and preview["name"] == "train"
    assert preview["models"][0]["name"] == "churn"
    r = await jp_fetch("mlops", "api", "promote", method="POST",
                       body=json.dumps({"path": "train.ipynb", "name": "churn-job", "model": "churn", "metric": "auc",
                                        "params": {"max_iter": 100}, "retrain_when": "drift_share > 0.3"}))
    done = json.loads(r.body)
    assert r.code == 201 and done["job"] == "churn-job" and (project / "jobs" / "churn-job" / "job.toml").exists()
    assert "max_iter = { type = \"int\", default = 100 }" in (project / "jobs" / "churn-job" / "job.toml").read_text()
    for body, status, msg in [({"path": "../x.ipynb", "name": "j"}, 400, "outside the Jupyter root"),
                              ({"path": "missing.ipynb", "name": "j"}, 404, "no notebook"),
                              ({"path": "train.ipynb", "name": "bad name"}, 400, "job name"),
                              ({"path": "train.ipynb", "name": "j2", "model": "churn", "retrain_when": "acc < 1"},
                               400, "unknown figure")]:
        code, err = await error(jp_fetch, "promote", method="POST", body=json.dumps(body))
        assert code == status and msg in err["error"], err
    jobs = await get(jp_fetch, "jobs")
    listed = jobs["jobs"][0]
    assert listed["name"] == "churn-job" and listed["last"] is None and listed["rule"] == "drift_share > 0.3"
    # what Run now may do: move churn@production (now v2) if the new version's auc beats it
    assert listed["moves"] == {"model": "churn", "alias": "production", "version": 2, "metric": "auc",
                               "direction": "max", "value": None}
    job = await get(jp_fetch, "jobs", "churn-job")
    assert job["executions"] == [] and job["model"] == "churn" and job["retrain"]["retrain_when"] == "drift_share > 0.3"
    assert {p["name"]: p["default"] for p in job["parameters"]} == {"max_iter": 100}
    for name, status, msg in [("nojob", 404, "no job 'nojob'"), ("Bad Name", 400, "job name"),
                              ("..", 400, "job name")]:
        code, err = await error(jp_fetch, "jobs", name)
        assert code == status and msg in err["error"], err
        code, err = await error(jp_fetch, "jobs", name, "run", method="POST", body="")
        assert code == status and msg in err["error"], err
    r = await jp_fetch("mlops", "api", "jobs", "churn-job", "run", method="POST", body="")
    assert r.code == 202
    code, err = await error(jp_fetch, "jobs", "churn-job", "run", method="POST", body="")
    assert code == 400 and "already running" in err["error"]
    deadline = time.time() + 120
    while time.time() < deadline:
        jobs = await get(jp_fetch, "jobs")
        if jobs["jobs"][0]["running"]["status"] != "running":
            break
        time.sleep(0.5)
    assert jobs["jobs"][0]["running"]["status"] == "finished", jobs
    assert jobs["jobs"][0]["last"]["status"] == "finished"
    job = await get(jp_fetch, "jobs", "churn-job")
    (ex,) = job["executions"]
    assert ex["status"] == "finished" and ex["params"] == {} and ex["kind"] == "execution"
    assert ex["decision"] in ("promoted", "kept") and ex["challenger"] == "churn@v3" and ex["metric"] > 0.5
    assert job["moves"]["version"] == (3 if ex["decision"] == "promoted" else 2)


@pytest.mark.backends
async def test_studies_list_and_detail_while_a_search_runs_and_after(jp_fetch, validator):
    import threading

    import optuna

    gate, started = threading.Event(), threading.Event()

    def objective(trial):
        x = trial.suggest_float("x", -4, 4)
        depth = trial.suggest_int("depth", 1, 6)
        if trial.number == 3:
            raise ValueError("a failing trial")
        if trial.number == 4:
            started.set()
            assert gate.wait(60)
        for step in range(3):
            mj.log(loss=(x - 1) ** 2 + depth + 1 / (step + 1), step=step)
        if trial.number == 5:
            raise optuna.TrialPruned()
        return (x - 1) ** 2 + depth

    search = threading.Thread(target=mj.tune, args=(objective,), kwargs=dict(
        n_trials=9, direction="minimize", metric="loss", name="panel-search", seed=0, progress=False, live=False))
    search.start()
    try:
        assert started.wait(60)
        deadline = time.time() + 30
        while True:  # the trials finished so far reach the stored study from the writer's thread
            listed = await get(jp_fetch, "studies")
            (row,) = listed["studies"]
            if row["trials"] == 4 or time.time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert row["name"] == "panel-search" and row["metric"] == "loss" and row["direction"] == "min"
        assert row["running"]["name"] == "tune panel-search" and row["job"] is None
        assert row["counts"]["complete"] == 3 and row["counts"]["fail"] == 1
        during = await get(jp_fetch, "studies", "panel-search")
        assert during["running"] is True and during["best"]["number"] in (0, 1, 2)
    finally:
        gate.set()
        search.join(120)
    assert not search.is_alive()
    done = await get(jp_fetch, "studies", "panel-search")
    assert done["running"] is False and done["total"] == 9
    assert done["counts"] == {"complete": 7, "fail": 1, "pruned": 1}
    assert done["params"] == ["x", "depth"]
    best = min((t for t in done["trials"] if t["state"] == "complete"), key=lambda t: t["value"])
    assert done["best"]["number"] == best["number"] and done["best"]["value"] == best["value"]
    # each trial links to its tracked run, which holds the trial's parameters and state
    for t in done["trials"]:
        run = mj.get_run(t["run"]["run_id"])
        assert t["run"]["name"] == f"trial {t['number']}" and run.params["x"] == pytest.approx(t["params"]["x"])
        assert run.status == {"complete": "finished", "fail": "failed", "pruned": "pruned"}[t["state"]]
    assert [s["status"] for s in done["searches"]] == ["finished"]
    assert set(done["charts"]) == {"history", "parallel", "slices", "importances"}
    for spec in done["charts"].values():
        valid(validator, spec)
    assert done["charts"]["history"]["usermeta"]["mlops"]["best"] == best["value"]
    assert "PED-ANOVA" in done["importance_method"]
    listed = await get(jp_fetch, "studies")
    assert listed["studies"][0]["running"] is None and listed["studies"][0]["best"] == best["value"]
    code, body = await error(jp_fetch, "studies", "panel-serch")
    assert code == 404 and body == {"error": "no study 'panel-serch'; did you mean 'panel-search'?"}
    # a study made with Optuna's own API in the project's database shows too (no search run of ours)
    from mlops_jupyter.store import open_store
    from mlops_jupyter.tuning.study import storage_for

    own = optuna.create_study(study_name="Optuna's own", storage=storage_for(open_store()))
    own.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert {s["name"] for s in (await get(jp_fetch, "studies"))["studies"]} == {"panel-search", "Optuna's own"}
    theirs = await get(jp_fetch, "studies", "Optuna's own")  # jp_fetch escapes the path
    assert theirs["total"] == 3 and theirs["searches"] == [] and theirs["metric"] == "value"


async def test_every_route_needs_jupyters_authentication(jp_fetch, jp_serverapp, http_server_client):
    _runs(1)
    paths = ["runs", "runs/last", "runs/last/chart", "runs/last/artifacts/x.png", "compare?runs=a,b", "datasets",
             "datasets/x", "models", "models/x", "models/x/card", "jobs", "jobs/x", "promote?path=a.ipynb", "studies", "studies/x"]
    base = jp_serverapp.base_url
    for path in paths:
        with pytest.raises(HTTPClientError) as e:
            await http_server_client.fetch(f"{base}mlops/api/{path}", raise_error=True)
        assert e.value.code in (401, 403), path
    for path, method in [("models/x/aliases/production", "PUT"), ("jobs/x/run", "POST"), ("promote", "POST")]:
        with pytest.raises(HTTPClientError) as e:
            await http_server_client.fetch(f"{base}mlops/api/{path}", method=method, body="{}", raise_error=True)
        assert e.value.code in (401, 403), path
    with pytest.raises(HTTPClientError) as e:  # a wrong token is no better
        await http_server_client.fetch(f"{base}mlops/api/runs", headers={"Authorization": "token wrong"},
                                       raise_error=True)
    assert e.value.code in (401, 403)
    ok = await jp_fetch("mlops", "api", "runs")  # jp_fetch sends the server's token
    assert ok.code == 200
