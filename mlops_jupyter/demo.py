"""``mlops demo``: run the training notebook headlessly and track it into ``.mlops/``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

DEMO_NOTEBOOK = "retraining.ipynb"


def demo_notebook() -> Path:
    """The demo notebook: shipped in the wheel, or in the source tree's notebooks/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples" / DEMO_NOTEBOOK, here.parent / "notebooks" / DEMO_NOTEBOOK):
        if candidate.is_file():
            return candidate
    from .exceptions import NotFound

    raise NotFound(f"the demo notebook {DEMO_NOTEBOOK} is not installed with this package")


def run_demo(folder: str = "mlops-demo", out: Callable[[str], None] = print):
    from .config import init_project, settings
    from .jobs import execute_notebook
    from .store import close_store, open_store

    target = Path(folder).resolve()
    target.mkdir(parents=True, exist_ok=True)
    nb = target / DEMO_NOTEBOOK
    shutil.copyfile(demo_notebook(), nb)
    root = init_project(target)
    out(f"running {nb} headlessly (papermill) in {target} ...")
    close_store()
    execute_notebook(nb, target / "retraining.out.ipynb", cwd=target)
    from .cli import render_runs
    from .tracking.query import runs_frame, search_runs

    df = runs_frame(search_runs(open_store(settings(root))))

    out(render_runs(df))
    out(f"\ntracked {len(df)} runs into {root / '.mlops'}\n"
        f"look at them: cd {target} && mlops runs ls   (or mlops show last)\n"
        f"in JupyterLab: open {nb.name} there and run %load_ext mlops_jupyter then %mlops runs\n"
        f"executed notebook: {target / 'retraining.out.ipynb'}")
    return None
