
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main

from .conftest import run_cli


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
    (["frobnicate"], "invalid choice"),
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
