import subprocess

from .conftest import PY, python_env

HEAVY = ["pandas", "sqlalchemy", "ipywidgets", "papermill", "sklearn", "shap", "lime", "wandb", "pyarrow",
         "matplotlib", "blake3", "fsspec"]


def test_import_and_load_ext_stay_light(tmp_path):
    code = (
        "import sys, mlops_jupyter\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "before = set(sys.modules)\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'mlops_jupyter')\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=python_env(),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"heavy modules imported at load: {r.stdout}"
    assert not (tmp_path / ".mlops").exists()  # loading the extension writes nothing


def test_public_api():
    import mlops_jupyter as mj

    for name in ("start_run", "log", "log_param", "log_metric", "runs", "get_run", "compare", "active_run",
                 "load_ipython_extension"):
        assert callable(getattr(mj, name))
    assert set(mj.__all__) >= {"start_run", "runs", "log"}


def test_a_plain_pickled_model_never_imports_scikit_learn(project):
    """Registering and loading a model of no library we know costs no scikit-learn import (seconds of
    CPU in a fresh process): an estimator's class would have imported it already."""
    code = (
        "import sys, mlops_jupyter as mj\n"
        "class Rule:\n"
        "    def predict(self, X):\n"
        "        return [x > 0 for x in X]\n"
        "v = mj.models.register(Rule(), name='rule', pickle=True)\n"
        "assert v.flavor == 'pickle' and mj.models.load('rule@v1', pickle=True).predict([1, -1]) == [True, False]\n"
        "print('sklearn' in sys.modules)\n"
    )
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=project, env=python_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False", "scikit-learn imported for a plain pickled model"
