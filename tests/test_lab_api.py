"""The JupyterLab panel's REST routes, through a real Jupyter server (pytest-jupyter fixtures):
every route, Jupyter's authentication on each, and bad input as a 4xx JSON body."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from tornado.httpclient import HTTPClientError

import mlops_jupyter as mj

from .test_jobs import TRAIN, write_notebook

pytest_plugins = ["pytest_jupyter.jupyter_server"]


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


@pytest.mark.backends
async def test_runs_paging_filter_sort_and_one_run(jp_fetch):
    _runs(7)
    page = await get(jp_fetch, "runs", limit="3", offset="0")
    assert page["total"] == 7 and [r["name"] for r in page["runs"]] == ["run-6", "run-5", "run-4"]
    assert page["runs"][0]["params"] == {"lr": pytest.approx(0.7), "depth": 6}
    assert page["runs"][0]["metrics"]["loss"] == pytest.approx(1 / 11)
    page = await get(jp_fetch, "runs", limit="3", offset="6")
    assert [r["name"] for r in page["runs"]] == ["run-0"]
    page = await get(jp_fetch, "runs", where="params.depth >= 5", sort="name")
    assert page["total"] == 2 and [r["name"] for r in page["runs"]] == ["run-5", "run-6"]
    one = await get(jp_fetch, "runs", page["runs"][0]["run_id"])
    assert one["name"] == "run-5" and len(one["history"]["loss"]) == 5 and "<svg" in one["html"]
    cmp = await get(jp_fetch, "compare", runs=f"{page['runs'][0]['run_id']},{page['runs'][1]['run_id']}")
    assert {p["key"] for p in cmp["params"] if p["differs"]} == {"lr", "depth"} and "<svg" in cmp["html"]
    for args, status, msg in [(("runs",), 400, "limit is 1 to 500"), (("runs", "nope"), 404, "nope"),
                              (("compare",), 400, "two runs")]:
        kw = {"limit": "0"} if args == ("runs",) else {}
        code, body = await error(jp_fetch, *args, **kw)
        assert code == status and msg in body["error"]
    code, body = await error(jp_fetch, "runs", where="metrics.loss >")
    assert code == 400 and body["error"]


async def test_a_running_run_has_a_sparkline(jp_fetch):
    run = mj.start_run("live")
    for step in range(10):
        run.log_metric("acc", step / 10, step=step)
    run.store.writer.flush()
    try:
        page = await get(jp_fetch, "runs")
        live = page["runs"][0]
        assert live["status"] == "running" and live["spark"]["key"] == "acc"
        assert live["spark"]["values"] == pytest.approx([s / 10 for s in range(10)])
    finally:
        run.end()


@pytest.mark.backends
async def test_data_models_aliases_and_jobs(jp_fetch, project):
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 4)), columns=list("abcd"))
    with mj.start_run("train") as r:
        mj.data.add(X, name="train")
        r.log_metric("auc", 0.7)
        mj.models.register(LogisticRegression().fit(X, X.a > 0), name="churn", example=X, alias="production")
    mj.models.register(LogisticRegression(C=0.1).fit(X, X.a > 0), name="churn", example=X)
    ds = await get(jp_fetch, "datasets")
    assert ds["datasets"][0]["name"] == "train" and ds["datasets"][0]["rows"] == 60
    one = await get(jp_fetch, "datasets", "train")
    assert one["versions"][0]["ref"] == "train@v1" and one["versions"][0]["runs"][0]["name"] == "train"
    ms = await get(jp_fetch, "models")
    churn = ms["models"][0]
    assert churn["aliases"] == {"production": 1} and [v["version"] for v in churn["versions"]] == [2, 1]
    assert churn["versions"][1]["metrics"]["auc"] == 0.7 and churn["versions"][1]["datasets"] == ["train@v1"]
    r = await jp_fetch("mlops", "api", "models", "churn", "aliases", "production", method="PUT",
                       body=json.dumps({"version": 2}))
    assert json.loads(r.body) == {"name": "churn", "alias": "production", "version": 2, "previous": 1}
    assert mj.models.get("churn@production").version == 2
    assert list(mj.models.history("churn")["to"])[-1] == "v2"  # the move is in the audit trail
    for body, status, msg in [({"version": 9}, 404, "v9"), ({"version": "2"}, 400, "whole number"),
                              ({}, 400, "whole number")]:
        code, err = await error(jp_fetch, "models", "churn", "aliases", "production", method="PUT",
                                body=json.dumps(body))
        assert code == status and msg in err["error"], err
    code, err = await error(jp_fetch, "models", "churn", "aliases", "production", method="PUT", body="{")
    assert code == 400
    code, err = await error(jp_fetch, "models", "nomodel")
    assert code == 404 and "nomodel" in err["error"]
    # jobs: promote through the route, then run now
    write_notebook(project / "train.ipynb", TRAIN)
    preview = await get(jp_fetch, "promote", path="train.ipynb")
    assert set(preview["parameters"]) == {"C", "max_iter", "fail"} and preview["name"] == "train"
    assert preview["models"][0]["name"] == "churn"
    r = await jp_fetch("mlops", "api", "promote", method="POST",
                       body=json.dumps({"path": "train.ipynb", "name": "churn-job", "model": "churn", "metric": "auc",
                                        "params": {"max_iter": 100}}))
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
    assert jobs["jobs"][0]["name"] == "churn-job" and jobs["jobs"][0]["last"] is None
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


async def test_every_route_needs_jupyters_authentication(jp_fetch, jp_serverapp, http_server_client):
    _runs(1)
    paths = ["runs", "runs/last", "compare?runs=a,b", "datasets", "datasets/x", "models", "models/x", "jobs",
             "promote?path=a.ipynb"]
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
