import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mj

from .conftest import run_cell, untitled_notebook


@pytest.mark.backends
def test_track_start_log_stop_captures_cells(ip, capsys):
    r1 = run_cell(ip, "%mlops track start baseline --param lr=0.1 --param layers=[64,32] --tag team=fraud")
    assert r1.success
    run = mj.active_run()
    assert run.name == "baseline"
    run_cell(ip, "x = 21 * 2")
    run_cell(ip, "%mlops log loss=0.31 acc=0.88 --step 3")
    bad = run_cell(ip, "raise ValueError('oops')")
    assert not bad.success
    assert mj.active_run() is run  # a failing cell does not end a line-magic run
    run_cell(ip, "%mlops track stop")
    assert mj.active_run() is None
    rec = mj.get_run(run.run_id)
    assert rec.status == "finished"
    assert rec.params == {"lr": 0.1, "layers": [64, 32]} and rec.tags == {"team": "fraud"}
    assert rec.metrics == {"loss": 0.31, "acc": 0.88}
    assert rec.history()["loss"] == [(3, 0.31)]
    cells = rec.cells()
    assert [c["source"] for c in cells] == [
        "%mlops track start baseline --param lr=0.1 --param layers=[64,32] --tag team=fraud",
        "x = 21 * 2", "%mlops log loss=0.31 acc=0.88 --step 3", "raise ValueError('oops')",
        "%mlops track stop"]
    assert [c["status"] for c in cells] == ["ok", "ok", "ok", "error", "ok"]
    counts = [c["execution_count"] for c in cells]
    assert counts == sorted(counts) and len(set(counts)) == 5
    assert "ValueError: oops" in cells[3]["error"]
    assert "started" in capsys.readouterr().out


def test_cell_magic_finishes_fails_and_kills(ip):
    ok = run_cell(ip, "%%mlops track whole --param lr=0.2\nimport mlops_jupyter as mj\nmj.log(acc=0.5)\n6 * 7")
    assert ok.success and ok.result == 42  # the last expression is the cell's value
    rec = mj.get_run("whole")
    assert rec.status == "finished" and rec.metrics == {"acc": 0.5} and rec.params == {"lr": 0.2}
    assert rec.cells()[0]["source"].startswith("%%mlops track whole")

    failed = run_cell(ip, "%%mlops track broken\nmj.log(acc=0.1)\n1 / 0")
    assert not failed.success and isinstance(failed.error_in_exec, ZeroDivisionError)  # re-raised as usual
    rec = mj.get_run("broken")
    assert rec.status == "failed" and "ZeroDivisionError" in rec.row["error"]
    assert mj.active_run() is None  # never left "active" after a failed cell

    killed = run_cell(ip, "%%mlops track interrupted\nraise KeyboardInterrupt")
    assert not killed.success
    assert mj.get_run("interrupted").status == "killed"


def test_cell_magic_runs_nested_magics(ip):
    r = run_cell(ip, "%%mlops track outer\n%mlops log a=1\nb = 2")
    assert r.success and mj.get_run("outer").metrics == {"a": 1.0}
    assert ip.user_ns["b"] == 2


def test_start_while_active_nests(ip):
    run_cell(ip, "%mlops track start parent")
    run_cell(ip, "%mlops track start child")
    child = mj.active_run()
    assert child.name == "child" and child.parent_id is not None
    run_cell(ip, "%mlops track stop")
    assert mj.active_run().name == "parent"
    run_cell(ip, "%mlops track stop")
    assert mj.active_run() is None


@pytest.mark.backends
def test_runs_show_compare_watch(ip):
    run_cell(ip, "import mlops_jupyter as mj")
    for i in range(3):
        run_cell(ip, f"%%mlops track r{i} --param i={i}\nfor s in range(5): mj.log(loss=1/(s+1+{i}), step=s)")
    df = ip.run_line_magic("mlops", "runs --last 2 --sort -params.i")
    assert list(df["name"]) == ["r2", "r1"]
    df2 = ip.run_line_magic("mlops", "runs ls --where \"params.i >= 1\" --sort params.i")
    assert list(df2["name"]) == ["r1", "r2"]
    import pandas as pd

    assert isinstance(df, pd.DataFrame)
    rec = ip.run_line_magic("mlops", "show r1")
    html = rec._repr_html_()
    assert "r1" in html and "mark-line" in html and "Captured cells" in html  # the curves, as SVG
    comp = ip.run_line_magic("mlops", "compare r0 r1 r2")
    page = comp._repr_html_()
    assert page.count("<svg") == 3 and "best 0.1429" in page  # curves (best marked), parallel, scatter
    ip.run_line_magic("mlops", "watch r1")  # in a terminal shell: one line of text


@pytest.mark.parametrize("line,message", [
    ("frobnicate", "unknown command 'frobnicate'; `%mlops help` lists the commands"),
    ("rnus", "mlops: unknown command 'rnus'; did you mean `runs`?"),
    ("runs lss", "mlops runs: unknown subcommand 'lss'; did you mean `runs ls`?"),
    ("model regster x --name m", "did you mean `model register`?"),
    ("help rnus", "unknown command 'rnus'; did you mean `runs`?"),
    ("track stop --status finishd", "invalid choice: 'finishd'; did you mean `finished`?"),
    ("track", "required"),
    ("track start x --parm lr=1", "unrecognized arguments: --parm"),
    ("runs --last zero", "is not a whole number"),
    ("runs --last 0", "must be at least 1"),
    ("track stop", "no active run"),
    ("log acc=high", "must be a number"),
    ("log acc", "NAME=VALUE"),
    ("show nope", "no run 'nope'"),
    ("runs --where \"metrics.acc >\"", "expected"),
    ("compare onlyone", "at least two"),
    ("track start x --param 'unterminated", "cannot split"),
    ("demo", "terminal"),
])
def test_bad_input_is_one_usage_line(ip, line, message):
    with pytest.raises(UsageError) as e:
        ip.run_line_magic("mlops", line)
    text = str(e.value)
    assert message in text
    assert "\n" not in text and "Traceback" not in text


def test_bad_input_in_a_cell_shows_no_traceback(ip, capsys):
    r = run_cell(ip, "%mlops track start x --bogus")
    assert not r.success
    out = capsys.readouterr()
    text = out.out + out.err
    assert "UsageError" in text and "Traceback" not in text


def test_help_and_usage(ip, capsys):
    ip.run_line_magic("mlops", "")
    ip.run_line_magic("mlops", "help")
    ip.run_line_magic("mlops", "help track")
    ip.run_line_magic("mlops", "track start --help")
    out = capsys.readouterr().out
    assert "usage: %mlops" in out and "track" in out and "--param" in out
    ip.run_cell("%mlops?")
    assert "%mlops track start NAME" in capsys.readouterr().out
    ip.run_cell("%mlops track?")
    out = capsys.readouterr().out
    assert "usage: %mlops track" in out and "Object `track` not found" not in out
    ip.run_cell("%mlops runs ls?")
    assert "--where" in capsys.readouterr().out


def test_cell_magic_other_commands_refused(ip):
    with pytest.raises(UsageError, match="with `track` only"):
        ip.run_cell_magic("mlops", "runs", "x = 1")


def test_magic_and_cli_share_the_grammar(ip, capsys):
    from mlops_jupyter import commands

    for argv in (["runs", "ls", "--last", "3"], ["runs", "--last", "3"], ["compare", "a", "b"],
                 ["track", "start", "n", "--param", "a=1"], ["gc", "--dry-run"]):
        assert commands.parse(argv).command == argv[0]
    ip.run_line_magic("mlops", "init")
    assert ".mlops" in capsys.readouterr().out


def test_papermill_parameters_are_recorded(ip):
    run_cell(ip, "# Parameters\nn_estimators = 300\nname = 'x'\n")
    run_cell(ip, "%%mlops track pm\npass")
    rec = mj.get_run("pm")
    assert rec.params == {"papermill.n_estimators": 300, "papermill.name": "x"}


def test_secret_in_cell_source_is_redacted(ip):
    run_cell(ip, "%mlops track start sec --param api_token=abc123")
    run_cell(ip, 'OPENAI_API_KEY = "sk-verysecret"\nconfig = {"password": "hunter2"}')
    run_cell(ip, "%mlops track stop")
    rec = mj.get_run("sec")
    sources = "\n".join(c["source"] for c in rec.cells())
    assert "sk-verysecret" not in sources and "hunter2" not in sources and "abc123" not in sources
    assert rec.params["api_token"] == "***REDACTED***"


# -- bad input starts nothing; a run started for the user is announced once ----------------------------
@pytest.fixture
def untitled(project, monkeypatch):
    """The kernel of a notebook JupyterLab just created: JPY_SESSION_NAME names Untitled.ipynb."""
    path = project / "Untitled.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    return path


@pytest.mark.parametrize("line,message", [
    ("log loss=abc", "metric 'loss' must be a number, got 'abc'"),
    ("log loss=0.1 acc=high", "metric 'acc' must be a number"),
    ("log loss=0.1 --step x", "is not a whole number"),
    ("log loss", "NAME=VALUE"),
    ("param =1", "NAME=VALUE"),
    ("tag team", "NAME=VALUE"),
    ("artifact missing.txt", "no such file or folder"),
])
def test_bad_log_input_starts_no_run(ip, untitled, line, message):
    with pytest.raises(UsageError) as e:
        ip.run_line_magic("mlops", line)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert mj.active_run() is None
    assert mj.runs().empty  # no 'Untitled' left running


def test_bad_value_with_an_active_run_logs_nothing(ip):
    run_cell(ip, "%mlops track start half")
    with pytest.raises(UsageError, match="'b' must be a number"):
        ip.run_line_magic("mlops", "log a=1 b=x")
    run_cell(ip, "%mlops track stop")
    assert mj.get_run("half").metrics == {}  # not a=1 without b


def test_implicit_run_is_announced_once(ip, untitled, capsys):
    run_cell(ip, "%mlops log loss=0.5")
    first = capsys.readouterr().out
    run_cell(ip, "%mlops log loss=0.4")
    run_cell(ip, "import mlops_jupyter as mj\nmj.log(loss=0.3)")
    later = capsys.readouterr().out
    run = mj.active_run()
    assert run.name == "Untitled"
    lines = [line for line in first.splitlines() if "started" in line]
    assert lines == [f"mlops: no run was active, so run 'Untitled' ({run.run_id[:8]}) was started to hold what "
                     "you log; end it with %mlops track stop"]
    assert "started" not in later
    run_cell(ip, "%mlops track stop")
    assert mj.get_run(run.run_id).history()["loss"] == [(0, 0.5), (1, 0.4), (2, 0.3)]


def test_fluent_log_in_a_shell_is_announced_in_the_cell_output(ip, untitled, capsys):
    run_cell(ip, "import mlops_jupyter as mj\nmj.log(acc=0.9)\nmj.log(acc=0.95)")
    out = capsys.readouterr()
    assert out.out.count("was started to hold what you log") == 1 and "%mlops track stop" in out.out
    assert "started" not in out.err


def test_unsaved_notebook_says_what_was_captured_instead(ip, untitled, capsys):
    untitled_notebook(untitled.parent)  # what JupyterLab's launcher writes before anything is saved
    run_cell(ip, "%mlops track start")
    run_cell(ip, "x = 21 * 2")
    run_cell(ip, "%mlops log acc=0.9")
    run = mj.active_run()
    capsys.readouterr()
    run_cell(ip, "%mlops track stop")
    out = capsys.readouterr().out
    assert (f"mlops: Untitled.ipynb was never saved (the file on disk has no cells): run 'Untitled' keeps no "
            f"notebook snapshot; its 4 executed cells are recorded instead (%mlops show {run.run_id[:8]})") in out
    rec = mj.get_run(run.run_id)
    assert not any(a["kind"] == "notebook" for a in rec.artifacts)
    assert [c["source"] for c in rec.cells()][1:3] == ["x = 21 * 2", "%mlops log acc=0.9"]
