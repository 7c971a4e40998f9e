"""A job's parameters as papermill sees them, on papermill's own test notebooks: inferred with
papermill's inspection when promoted, kept in job.toml, listed by `job show`, and given to
`mlops job run` as papermill's CLI gives them (-p, -r, -f, -y), checked before any kernel starts."""

import os
import shutil

import nbformat
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main
from mlops_jupyter.jobs.params import Parameter
from mlops_jupyter.jobs.spec import JobSpec

from .conftest import run_cli


@pytest.fixture
def papermill_notebooks():
    import papermill

    return os.path.join(os.path.dirname(papermill.__file__), "tests", "notebooks")


def promote(project, papermill_notebooks, notebook, name, capsys):
    shutil.copy(os.path.join(papermill_notebooks, notebook), project / notebook)
    assert main(["promote", notebook, "--name", name]) == 0
    return capsys.readouterr().out, JobSpec.from_toml(project / "jobs" / name / "job.toml")


def table(spec):
    return {n: (p.type, p.default, p.expression, p.help) for n, p in spec.parameters.items()}


def test_promote_simple_execute_takes_a_none_default(project, papermill_notebooks, capsys):
    out, spec = promote(project, papermill_notebooks, "simple_execute.ipynb", "simple", capsys)
    assert table(spec) == {"msg": ("any", None, None, "")}
    assert "msg defaults to None: it takes any value" in out
    toml = (project / "jobs" / "simple" / "job.toml").read_text()
    assert 'msg = { type = "any" }' in toml  # no default key: TOML has no null
    nb = nbformat.read(str(project / "jobs" / "simple" / "notebook.ipynb"), 4)
    assert nb.cells[0].source == "msg = None" and nb.cells[0].metadata.tags == ["parameters"]  # left as written


def test_promote_complex_parameters_as_papermill_infers_them(project, papermill_notebooks, capsys):
    out, spec = promote(project, papermill_notebooks, "complex_parameters.ipynb", "complex", capsys)
    assert list(spec.parameters) == ["msg", "a", "b", "c", "d"]
    assert table(spec) == {
        "msg": ("any", None, None, ""),
        "a": ("float", 2.25, None, "Variable a"),  # annotation; help from the comment
        "b": ("list", ["Hello", "World"], None, "Nice list"),  # spread over lines, `# type: List[str]`
        "c": ("any", None, None, ""),  # `c: "NoneType" = None`
        "d": ("any", None, "a == 3", ""),  # an expression: papermill overrides it, no literal default
    }
    assert "parameters cell (read by papermill's inspection): msg, a, b, c, d" in out
    assert "d's default is an expression the notebook evaluates (a == 3)" in out
    assert "line 14 of the parameters cell is not Python (= 2)" in out and "executions fail" in out
    capsys.readouterr()
    assert main(["job", "show", "complex"]) == 0
    show = capsys.readouterr().out
    for line in ["msg: any = None", "a: float = 2.25  # Variable a", "b: list = ['Hello', 'World']  # Nice list",
                 "c: any = None", "d: any = a == 3  (an expression the notebook evaluates)"]:
        assert f"    {line}\n" in show, show


def test_job_toml_round_trips_every_kind_of_parameter(project):
    params = {p.name: p for p in [
        Parameter("n", "int", 3, "trees"), Parameter("lr", "float", float("inf")), Parameter("on", "bool", False),
        Parameter("who", "str", 'a "quoted"\nline\x7f é', "with = and # inside"), Parameter("msg", "any"),
        Parameter("typed_none", "int"), Parameter("cols", "list", ["a", 1, 2.5, [True]]),
        Parameter("opts", "dict", {"max depth": 3, "nested": {"k": "v"}}), Parameter("d", "any", None, "", "a == 3"),
    ]}
    spec = JobSpec("j", params, folder=project / "jobs" / "j")
    spec.folder.mkdir(parents=True)
    (spec.folder / "job.toml").write_text(spec.to_toml())
    back = JobSpec.from_toml(spec.folder / "job.toml")
    assert back.parameters == params
    assert back.check_params({"typed_none": None, "n": 4}) == {"typed_none": None, "n": 4}  # None passes: its default
    with pytest.raises(mj.BadInput, match="parameter n takes a whole number; got None"):
        back.check_params({"n": None})


def test_job_toml_of_earlier_versions_still_reads(project):
    folder = project / "jobs" / "old"
    folder.mkdir(parents=True)
    (folder / "job.toml").write_text('name = "old"\n[parameters]\nC = { type = "float", default = 1.0 }\n'
                                     'max_iter = { type = "int", default = 200 }\nfail = { type = "bool", default = '
                                     'false }\n[smoke]\nmax_iter = 20\n')
    spec = JobSpec.from_toml(folder / "job.toml")
    assert table(spec) == {"C": ("float", 1.0, None, ""), "max_iter": ("int", 200, None, ""),
                           "fail": ("bool", False, None, "")}
    (folder / "job.toml").write_text('name = "old"\n[parameters]\nC = { type = "complex", default = 1.0 }\n')
    with pytest.raises(mj.BadInput, match="parameter C needs"):
        JobSpec.from_toml(folder / "job.toml")


@pytest.mark.parametrize("text, value", [("True", True), ("False", False), ("None", None), ("3", 3), ("-2", -2),
                                         ("2.5", 2.5), ("1e-3", 0.001), ("hello", "hello"), ("[1, 2]", "[1, 2]"),
                                         ("true", "true")])
def test_p_reads_values_as_papermills_cli(text, value):
    from papermill.cli import _resolve_type

    assert Parameter("x").parse(text) == value == _resolve_type(text)


def test_p_reads_by_the_parameters_type():
    assert Parameter("s", "str", "a").parse("3") == "3"  # text stays text
    assert Parameter("s", "str").parse("None") is None  # its default is None
    assert Parameter("f", "float", 1.0).parse("3") == 3.0 and isinstance(Parameter("f", "float", 1.0).parse("3"), float)
    assert Parameter("b", "bool", True).parse("false") is False
    assert Parameter("l", "list", []).parse('["a", 1]') == ["a", 1] == Parameter("l", "list", []).parse("['a', 1]")
    assert Parameter("m", "dict", {}).parse('{"k": true}') == {"k": True}
    for p, text, msg in [(Parameter("n", "int", 1), "2.5", "whole number"), (Parameter("n", "int", 1), "None", "whole"),
                         (Parameter("l", "list", []), "x", "a list"), (Parameter("b", "bool", True), "1", "true or")]:
        with pytest.raises(mj.BadInput, match=msg):
            p.parse(text)
    assert Parameter("s", "str", "").raw("3") == "3" and Parameter("x").raw("None") == "None"
    with pytest.raises(mj.BadInput, match="-r passes text as it is"):
        Parameter("n", "int", 1).raw("3")


def test_bad_values_are_one_line_before_any_kernel(project, papermill_notebooks, capsys):
    promote(project, papermill_notebooks, "complex_parameters.ipynb", "complex", capsys)
    (project / "bad.yaml").write_text("a: [1\n")
    (project / "list.yaml").write_text("- 1\n- 2\n")
    (project / "typed.yaml").write_text("a: text\n")
    n = len(mj.runs())
    for args, msg in [
        (["-p", "nope", "1"], "job complex has no parameter 'nope'"),
        (["-p", "aa", "1"], "did you mean 'a'?"),
        (["-p", "a", "abc"], "parameter a takes a number; got 'abc'"),
        (["-r", "a", "3"], "-r passes text as it is (use -p a 3)"),
        (["-p", "b", "x"], "parameter b takes a list"),
        (["-p", "msg", "1", "-r", "msg", "2"], "parameter msg is given twice"),
        (["-f", "missing.yaml"], "-f missing.yaml: no such file"),
        (["-f", "bad.yaml"], "-f bad.yaml is not valid YAML"),
        (["-f", "list.yaml"], "-f list.yaml holds list [1, 2], not NAME: VALUE pairs"),
        (["-f", "typed.yaml"], "-f typed.yaml: parameter a takes a number; got 'text'"),
        (["-y", "{nope: 1}"], "-y: job complex has no parameter 'nope'"),
        (["-y", "a: ["], "-y is not valid YAML"),
    ]:
        assert main(["job", "run", "complex", *args]) == 2, args
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, (args, err)
    assert len(mj.runs()) == n  # no execution started


def test_retrain_grid_takes_the_new_types(project, papermill_notebooks, capsys):
    from mlops_jupyter.jobs.runner import parse_grid

    _, spec = promote(project, papermill_notebooks, "complex_parameters.ipynb", "complex", capsys)
    assert parse_grid(spec, ["msg=1,x,None", "a=1,2.5"]) == [
        {"msg": 1, "a": 1.0}, {"msg": 1, "a": 2.5}, {"msg": "x", "a": 1.0}, {"msg": "x", "a": 2.5},
        {"msg": None, "a": 1.0}, {"msg": None, "a": 2.5}]
    assert parse_grid(spec, {"b": [["x"], ["y", "z"]]}) == [{"b": ["x"]}, {"b": ["y", "z"]}]  # job.toml's grid
    with pytest.raises(mj.BadInput, match="--grid: parameter a takes a number"):
        parse_grid(spec, ["a=1,x"])
    with pytest.raises(mj.BadInput, match="grid: parameter b takes a list"):
        parse_grid(spec, {"b": ["x"]})


def test_promote_refuses_a_default_its_annotation_refuses(project, capsys):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell('n: int = "ten"  # trees', metadata={"tags": ["parameters"]})]
    nbformat.write(nb, str(project / "nb.ipynb"))
    assert main(["promote", "nb.ipynb", "--name", "j"]) == 2
    err = capsys.readouterr().err
    assert "annotates n as int" in err and "takes a whole number; got 'ten'" in err


def test_first_cell_literals_become_parameters_with_none_lists_and_help(project, capsys):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("%load_ext mlops_jupyter\nlimit = None\ncols = ['a', 'b']  # columns\n"
                                          "rate: float = 1\nnow = time.time()"),
                nbformat.v4.new_code_cell("print(limit, cols, rate)")]
    nbformat.write(nb, str(project / "nb.ipynb"))
    assert main(["promote", "nb.ipynb", "--name", "j"]) == 0
    assert "limit, cols, rate became parameters" in capsys.readouterr().out
    spec = JobSpec.from_toml(project / "jobs" / "j" / "job.toml")
    assert table(spec) == {"limit": ("any", None, None, ""), "cols": ("list", ["a", "b"], None, "columns"),
                           "rate": ("float", 1.0, None, "")}
    cells = nbformat.read(str(project / "jobs" / "j" / "notebook.ipynb"), 4).cells
    assert cells[0].source.splitlines()[1:] == ["limit = None", 'cols = ["a", "b"]  # columns', "rate: float = 1.0"]
    assert cells[1].source == "%load_ext mlops_jupyter\nnow = time.time()"


def executed(run_id):
    return nbformat.reads(mj.get_run(run_id).artifact_bytes("executed.ipynb").decode(), 4)


def injected(nb):
    return next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))


@pytest.mark.slow
def test_job_run_passes_p_r_and_f_values_into_the_kernel(project, papermill_notebooks, capsys):
    _, spec = promote(project, papermill_notebooks, "simple_execute.ipynb", "simple", capsys)
    (project / "params.yaml").write_text("msg: [from, yaml]\n")
    for args, value, printed in [(["-p", "msg", "42"], 42, "42"), (["-r", "msg", "42"], "42", "42"),
                                 (["-f", "params.yaml"], ["from", "yaml"], "['from', 'yaml']"),
                                 (["-f", "params.yaml", "-p", "msg", "None"], None, "None")]:
        r = run_cli("job", "run", "simple", *args, cwd=project, timeout=600)
        assert r.returncode == 0, r.stderr
        run = mj.runs(where="tags.`mlops.job` = 'simple'").iloc[0]
        assert run["status"] == "finished", args
        nb = executed(run["run_id"])
        assert f"msg = {value!r}".replace("'", '"') in injected(nb), (args, injected(nb))
        out = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert out.strip() == printed, (args, out)
