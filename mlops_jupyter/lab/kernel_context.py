"""Which notebook a kernel runs, asked of the Jupyter servers on this machine.

The tracking domain does not talk to Jupyter servers: this face's
:func:`notebook_from_jupyter_sessions` is registered in ``tracking.notebook.kernel_notebook_finders``
by entry point (``mlops_jupyter.notebook_finders`` in ``pyproject.toml``), loaded the first time a
kernel's notebook is not named by its environment.
"""

from __future__ import annotations

import os
from pathlib import Path


def notebook_from_jupyter_sessions(timeout: float = 1.0) -> str | None:
    """Ask the local Jupyter servers which notebook owns this kernel (as ipynbname does)."""
    try:
        from ipykernel import get_connection_file

        kernel_id = Path(get_connection_file()).stem.split("kernel-", 1)[-1]
    except Exception:
        return None
    try:
        from jupyter_server import serverapp
    except Exception:
        return None
    import json
    import urllib.request

    try:
        servers = list(serverapp.list_running_servers())
    except Exception:
        return None
    for srv in servers[:5]:
        url = srv.get("url", "").rstrip("/") + "/api/sessions"
        req = urllib.request.Request(url)
        if srv.get("token"):
            req.add_header("Authorization", f"token {srv['token']}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                sessions = json.load(resp)
        except Exception:
            continue
        for s in sessions:
            if s.get("kernel", {}).get("id") == kernel_id:
                rel = s.get("path") or s.get("notebook", {}).get("path")
                root = srv.get("root_dir") or srv.get("notebook_dir") or ""
                return os.path.join(root, rel) if rel else None
    return None

