"""The terminal face: `mlops ...` in a process of its own or through main()."""
import subprocess

import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main

from .conftest import PY, python_env, run_cli


def cli(*args, cwd=None):
    return run_cli(*args, cwd=cwd)


def test_init_creates_project(tmp_path):
    (tmp_path / ".git").mkdir()
    r = cli("init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".mlops" / "mlops.db").exists()
    assert ".mlops/" in (tmp_path / ".gitignore").read_text()


@pytest.mark.backends
def test_runs_ls_show_rm_gc_fsck(project, capsys):
    with mj.start_run("alpha", params={"lr": 0.1}) as r:
        r.log_metric("acc", 0.91)
    with mj.start_run("beta", params={"lr": 0.2}) as r2:
        r2.log_metric("acc", 0.5)
    assert main(["runs", "ls"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "beta" in out and "0.91" in out
    assert main(["runs", "--where", "metrics.acc > 0.9"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "beta" not in out
    assert main(["runs", "ls", "--sort", "-metrics.acc", "--last", "1"]) == 0
    assert "alpha" in capsys.readouterr().out
    assert main(["show", "alpha"]) == 0
    out = capsys.readouterr().out
    assert "lr = 0.1" in out and "acc = 0.91" in out
    assert main(["compare", "alpha", "beta"]) == 0
    assert "* lr" in capsys.readouterr().out
    assert main(["runs", "rm", "beta"]) == 0
    assert main(["gc"]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["fsck"]) == 0
    assert [n for n in mj.runs()["name"]] == ["alpha"]


@pytest.mark.parametrize("args,message", [
    (["frobnicate"], "unknown command"),
    (["runs", "ls", "--last", "x"], "not a whole number"),
    (["runs", "--where", "metrics.acc >"], "expected"),
    (["show", "missing"], "no run 'missing'"),
    (["track", "start", "x"], "inside a notebook"),
    (["log", "a=1"], "inside a notebook"),
    (["runs", "rm"], "required"),
])
def test_bad_input_exit_code_2_one_line(project, args, message):
    r = cli(*args, cwd=project)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_fsck_exit_code_reports_corruption(project):
    import os

    with mj.start_run("x") as run:
        run.log_dict({"a": 1}, "d.json")
    rec = mj.get_run("x")
    digest = next(a["digest"] for a in rec.artifacts if a["path"] == "d.json")
    from mlops_jupyter.store import open_store

    p = open_store().blobs.path(digest)
    os.chmod(p, 0o644)
    open(p, "w").write("corrupt")
    r = cli("fsck", cwd=project)
    assert r.returncode == 1 and "corrupted" in r.stdout and "d.json" in r.stdout


def test_help_and_version():
    r = cli("help")
    assert r.returncode == 0 and "runs" in r.stdout and "track" in r.stdout
    r = cli("runs", "ls", "--help")
    assert r.returncode == 0 and "--where" in r.stdout
    r = cli("version")
    assert r.returncode == 0 and r.stdout.startswith("mlops-jupyter ")


LISTS_WITHOUT_PANDAS = """
import sys
from mlops_jupyter.cli import main
for argv in (["runs", "ls"], ["data", "ls"], ["data", "ls", "train"], ["model", "ls"], ["model", "ls", "churn"],
             ["--help"], ["help"]):
    assert main(argv) == 0, argv
    heavy = sorted(m for m in ("pandas", "numpy", "pyarrow", "sklearn") if m in sys.modules)
    assert not heavy, (argv, heavy)
"""


def test_listing_in_a_terminal_needs_no_pandas(project):
    """`mlops runs ls`, `data ls` and `model ls` answer from plain rows: a terminal waits for no
    pandas import (a notebook still gets DataFrames)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    for i in range(3):
        with mj.start_run(f"r{i}", params={f"p{k}": k for k in range(8)}) as run:
            run.log_metrics({"acc": 0.5 + i / 10, "loss": 1.0 / (i + 1)})
    X = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) % 2})
    mj.data.add(X, name="train")
    mj.models.register(LogisticRegression().fit(X, X["b"]), name="churn", example=X.head(3), alias="staging")
    r = subprocess.run([PY, "-c", LISTS_WITHOUT_PANDAS], cwd=project, env=python_env(), capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "r2" in out and "params.p0" in out and "params.p5" in out and "params.p6" not in out
    assert "(2 more params not shown: mlops runs show RUN has them all)" in out
    assert "train" in out and "KiB" in out  # sizes for people, not bytes
    assert "churn@v1" in out and "staging" in out
    assert isinstance(mj.runs(), pd.DataFrame) and isinstance(mj.models.ls(), pd.DataFrame)
    assert str(mj.data.datasets()["created"].dtype).startswith("datetime64")


def test_quick_listings_read_what_the_store_reads(project):
    """store.quickread's SQL gives the rows the store's own queries give, on one store."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from mlops_jupyter.data import listing as data_listing
    from mlops_jupyter.models import listing as model_listing
    from mlops_jupyter.store import open_store, quickread
    from mlops_jupyter.store import schema as S
    from mlops_jupyter.tracking.query import search_runs

    assert quickread.SCHEMA_VERSION == S.SCHEMA_VERSION, "a migration: check store/quickread.py's queries"
    for i in range(4):
        with mj.start_run(f"r{i}", params={"lr": 0.1 * i, "model": ["rf", {"depth": i}]}, tags={"team": "a"}) as run:
            for step in range(3):
                run.log_metrics({"acc": 0.5 + i / 10 + step / 100, "loss": 1.0 / (i + step + 1)}, step=step)
    X = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 2})
    mj.data.add(X, name="train", message="first")
    mj.data.add(X.assign(c=1), name="train")
    mj.data.add(X, name="eval")
    clf = LogisticRegression().fit(X, X["b"])
    mj.models.register(clf, name="churn", example=X.head(3), alias="staging")
    mj.models.register(clf, name="churn", example=X.head(3), alias="production")
    mj.models.register(clf, name="other", example=X.head(3))
    store = open_store()
    url = store.settings.store_url
    assert quickread.runs(url) == search_runs(store)
    assert quickread.runs(url, limit=2, user="nobody") == search_runs(store, limit=2, user="nobody") == []
    assert quickread.runs(url, limit=2) == search_runs(store, limit=2)
    assert [data_listing.dataset_record(r) for r in quickread.datasets(url)] == mj.data.dataset_records()
    assert [data_listing.version_record(r) for r in quickread.dataset_versions(url, "train")] == \
        mj.data.version_records("train")
    assert [model_listing.model_record(r, al) for r, al in quickread.models(url)] == mj.models.model_records()
    assert [model_listing.version_record(r, al) for r, al in quickread.model_versions(url, "churn")] == \
        mj.models.version_records("churn")
    # what it is not sure of goes the usual way
    assert quickread.dataset_versions(url, "../etc") is None and quickread.model_versions(url, "nope") is None
    assert quickread.runs("postgresql+psycopg://u@127.0.0.1/x") is None


def test_quick_listing_leaves_a_dead_run_to_the_store(project):
    """A run whose process died shows as crashed in `mlops runs ls` (the usual way marks it)."""
    r = subprocess.run([PY, "-c", "import os, mlops_jupyter as mj\nmj.start_run('doomed')\nos._exit(9)"],
                       cwd=project, env=python_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 9
    from mlops_jupyter.store import close_store, quickread
    from mlops_jupyter.config import settings

    close_store()
    assert quickread.runs(settings().store_url) is None  # a run to mark crashed: not for the quick way
    out = run_cli("runs", "ls", cwd=project)
    assert out.returncode == 0 and "crashed" in out.stdout, out.stdout + out.stderr
    assert [row["status"] for row in quickread.runs(settings().store_url)] == ["crashed"]
