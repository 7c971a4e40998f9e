"""The terminal face: `mlops ...` in a process of its own or through main()."""
import re
import subprocess
import time

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
    (["data", "show", "nosuch"], "no dataset 'nosuch'"),
    (["data", "ls", "../etc"], "not allowed"),
    (["model", "history", "nosuch"], "no model 'nosuch'"),
    (["model", "ls", "nosuch"], "no model 'nosuch'"),
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
    header = next(line for line in out.splitlines() if line.startswith("run "))
    assert "r2" in out and " p0 " in header and " p5 " in header and "p6" not in header
    assert "2 more columns (2 params) not shown: params.p6, params.p7; mlops runs show RUN has them all" in out
    assert "train" in out and " kB " in out  # sizes for people, not bytes
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


HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
FINE_TIME = re.compile(r"\d{2}:\d{2}:\d{2}[.,]\d|\+00:00|\bUTC\b")  # nanoseconds, a UTC offset
ANSI = "\x1b["


def _listing_project(project):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    with mj.start_run("alpha", params={"lr": 0.1}) as r:
        r.log_metric("acc", 0.91)
    X = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) % 2})
    mj.data.add(X, name="train", message="the october export")
    clf = LogisticRegression().fit(X, X["b"])
    mj.models.register(clf, name="churn", example=X.head(3), alias="production")
    mj.models.register(clf, name="churn", example=X.head(3), alias="staging-candidate-for-review")
    return mj.data.get("train")


def test_listings_in_a_terminal_are_for_people(project):
    """`runs ls`, `data ls`, `model ls`, `model history` through a pipe: local times to the minute,
    sizes in kB, 8-character ids, `production→v1` whole; plain text (no colours, no box drawing)."""
    v = _listing_project(project)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created))
    outs = {}
    for args in (("runs", "ls"), ("data", "ls"), ("data", "ls", "train"), ("model", "ls"), ("model", "ls", "churn"),
                 ("model", "history", "churn")):
        r = cli(*args, cwd=project)
        assert r.returncode == 0, r.stderr
        outs[args] = r.stdout
        assert not HEX_ID.search(r.stdout) and not FINE_TIME.search(r.stdout), r.stdout
        assert ANSI not in r.stdout and not set("─│┃━┏") & set(r.stdout), r.stdout
    assert when in outs[("data", "ls")] and " kB " in outs[("data", "ls")] and "the october export" in outs[("data", "ls")]
    run_id = mj.get_run("alpha").run_id
    assert run_id[:8] in outs[("runs", "ls")] and run_id[:9] not in outs[("runs", "ls")]
    assert "production→v1" in outs[("model", "ls")] and "staging-candidate-for-review→v2" in outs[("model", "ls")]
    assert "— → v1" in outs[("model", "history", "churn")]
    # a narrow terminal: cells wrap between items, never inside one
    r = run_cli("model", "ls", cwd=project, env=python_env(COLUMNS="70"))
    assert r.returncode == 0, r.stderr
    assert all(len(line) <= 70 for line in r.stdout.splitlines()), r.stdout
    assert "production→v1" in r.stdout and "staging-candidate-for-review→v2" in r.stdout, r.stdout


def test_data_add_says_one_line_and_show_has_the_statistics(project):
    (project / "t.csv").write_text("a,b\n1,x\n2,\n3,y\n")
    r = cli("data", "add", "t.csv", "--name", "t", cwd=project)
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    assert re.fullmatch(r"added t@v1: 1 file, \d+ B in \d+\.\ds \(statistics: data show t@v1\)", line), line
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0], "y": [0.123456789, 2.0, 3.0, 1e-7], "z": ["a", "a", "b", None]})
    mj.data.add(frame, name="frame")
    r = cli("data", "show", "frame", cwd=project)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("frame@v1  table, 4 rows × 3 columns, ") and "nulls" not in out
    rows = {line.split()[0]: line for line in out.splitlines()[out.splitlines().index(next(
        line for line in out.splitlines() if line.startswith("column"))) + 1:]}
    assert "1 (25%)" in rows["x"] and "0 (0%)" in rows["y"] and "1 (25%)" in rows["z"]
    assert "2.667" in rows["x"] and "1.281" in rows["y"] and "1.000e-07" in rows["y"]  # 4 significant digits
    assert "a (2), b (1)" in rows["z"]
    r = cli("data", "show", "frame@v7", cwd=project)
    assert r.returncode == 2 and r.stderr.strip() == "mlops: no version 'frame@v7': frame has v1..v1"
