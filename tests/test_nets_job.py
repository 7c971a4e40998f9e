"""A notebook that trains a small PyTorch model, promoted to a job: run through a real kernel,
retrained through kernels, its network registered without pickle, torch pinned for its image."""

import json

import nbformat
import numpy as np
import pytest

import mlops_jupyter as mj
from mlops_jupyter.cli import main

from .conftest import run_cli

pytest.importorskip("torch")

TRAIN = [
    nbformat.v4.new_markdown_cell("# Train a small network"),
    nbformat.v4.new_code_cell("%load_ext mlops_jupyter\nlr = 0.05\nepochs = 30"),
    nbformat.v4.new_code_cell(
        "import numpy as np\nimport torch\nimport mlops_jupyter as mj\n"
        "rng = np.random.default_rng(0)\nX = rng.normal(size=(600, 12)).astype('float32')\n"
        "y = ((X[:, 0] + X[:, 1] * X[:, 2]) > 0).astype('int64')\n"
        "X_train, X_val, y_train, y_val = X[:450], X[450:], y[:450], y[450:]"),
    nbformat.v4.new_code_cell(
        "torch.manual_seed(0)\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))\n"
        "    def forward(self, x):\n"
        "        return self.body(x)\n"
        "net = Net()\nopt = torch.optim.Adam(net.parameters(), lr=lr)\n"
        "for epoch in range(epochs):\n"
        "    opt.zero_grad()\n"
        "    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X_train)), torch.from_numpy(y_train))\n"
        "    loss.backward(); opt.step()\n"
        "    mj.log(loss=float(loss), step=epoch)\n"
        "net.eval()\n"
        "with torch.no_grad():\n"
        "    acc = float((net(torch.from_numpy(X_val)).argmax(1).numpy() == y_val).mean())\n"
        "mj.log(acc=acc)"),
    nbformat.v4.new_code_cell("%mlops model register net --name digits --example X_val[:32] --alias production"),
]


def write_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.from_dict(json.loads(json.dumps(c))) for c in TRAIN]
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_pytorch_notebook_promoted_runs_and_retrains_through_kernels(project, capsys):
    import torch

    write_notebook(project / "train.ipynb")
    assert main(["promote", "train.ipynb", "--name", "digits-job", "--model", "digits", "--metric", "acc"]) == 0
    job = project / "jobs" / "digits-job"
    reqs = (job / "requirements.txt").read_text().splitlines()
    assert f"torch=={torch.__version__.split('+')[0]}" in [r.split("#")[0].strip() for r in reqs]
    assert "numpy" in " ".join(reqs)
    capsys.readouterr()

    r = run_cli("job", "run", "digits-job", "-p", "epochs", "5", cwd=project, timeout=600)
    assert r.returncode == 0, r.stderr
    v1 = mj.models.get("digits@production")
    assert v1.version == 1 and v1.flavor == "torch" and v1.run_id and v1.metrics["acc"] > 0.4

    assert main(["retrain", "digits-job", "--grid", "lr=0.01,0.1", "epochs=40", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 execution(s) on 2 local workers" in out
    best = mj.models.get("digits@production")
    assert best.flavor == "torch" and best.metrics["acc"] >= v1.metrics["acc"]
    assert ("is now digits@production" in out) == (best.version != 1)
    batch = mj.runs(where="name = 'retrain digits-job'").iloc[0]
    children = mj.runs(where=f"parent_id = '{batch['run_id']}'")
    assert len(children) == 2 and set(children["status"]) == {"finished"}
    history = mj.get_run(children.iloc[0]["run_id"]).history("loss")["loss"]
    assert [step for step, _ in history] == list(range(40))  # the loss per epoch, logged inside the kernel

    net = mj.models.load("digits@production")  # the network, without the notebook's class
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 12)).astype("float32")
    y = ((X[:, 0] + X[:, 1] * X[:, 2]) > 0).astype("int64")
    with torch.no_grad():
        acc = float((net(torch.from_numpy(X[450:])).argmax(1).numpy() == y[450:]).mean())
    assert acc == pytest.approx(best.metrics["acc"], abs=1e-9)
