"""The Jupyter server extension behind the JupyterLab panel (routes under ``/mlops/api/``).

Enabled when the package is installed (``etc/jupyter/jupyter_server_config.d/mlops_jupyter.json``);
the panel itself is the prebuilt lab extension shipped in the wheel."""

from __future__ import annotations


def _load_jupyter_server_extension(serverapp) -> None:
    import os

    from ..config import find_root
    from . import api, handlers

    root = os.path.abspath(os.path.expanduser(serverapp.root_dir))
    api.ROOT = root
    if not os.environ.get("MLOPS_HOME"):
        from .. import config

        config.DEFAULT_START = root  # this server process only: kernels find their own project
    handlers.setup(serverapp.web_app)
    serverapp.log.info("mlops-jupyter: panel routes at %smlops/api/ (project at %s)",
                       serverapp.web_app.settings["base_url"], find_root(root) or root)
