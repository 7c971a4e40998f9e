"""What actually ran: notebook path, environment, packages, git state; secrets redacted.

Nothing here imports IPython: the kernel-side facts (user namespace, cell sources)
are handed in by the magics.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

REDACTED = "***REDACTED***"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(str(name)))


# A password inside a URL: scheme://user:PASSWORD@host (database URLs, proxies, git remotes).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<pw>[^\s@/'\"]+)(?P<at>@)")


def redact_urls(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in *text*."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}{m.group('at')}", text)


def redact_mapping(values: dict) -> dict:
    return {k: (REDACTED if is_secret(k) else redact_urls(v) if isinstance(v, str) else v) for k, v in values.items()}


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_STR = r"""(?:[rRbBuUfF]{0,2})(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'[^'\n]*'|"[^"\n]*")"""
# NAME = "literal"  /  NAME: str = "literal"  /  obj.NAME = "literal"
_ASSIGN = re.compile(rf"(?P<lhs>\b(?P<name>{_NAME})\s*(?::\s*[\w\[\], .]+)?\s*=\s*)(?P<val>{_STR})")
# os.environ["NAME"] = "literal"  /  d["NAME"] = "literal"  /  f(NAME="literal")
_SUBSCRIPT = re.compile(rf"""(?P<lhs>\[\s*['"](?P<name>[^'"\n]+)['"]\s*\]\s*=\s*)(?P<val>{_STR})""")
_KWARG_DICT = re.compile(rf"""(?P<lhs>['"](?P<name>[^'"\n]+)['"]\s*:\s*)(?P<val>{_STR})""")
# --param NAME=value / --tag NAME=value / NAME=value on magic lines
_FLAG = re.compile(r"(?P<lhs>(?:^|\s)(?P<name>[A-Za-z_][\w.\-]*)=)(?P<val>\"[^\"]*\"|'[^']*'|\S+)")


def redact_source(source: str) -> str:
    """Replace string literals assigned to secret-looking names, and passwords inside URLs, with a
    placeholder."""
    source = redact_urls(source)
    if not SECRET_NAME.search(source):
        return source

    def sub(m: re.Match) -> str:
        if not is_secret(m.group("name")):
            return m.group(0)
        return f'{m.group("lhs")}"{REDACTED}"'

    out = _ASSIGN.sub(sub, source)
    out = _SUBSCRIPT.sub(sub, out)
    out = _KWARG_DICT.sub(sub, out)
    lines = []
    for line in out.splitlines(keepends=True):
        if line.lstrip().startswith(("%", "!")):
            line = _FLAG.sub(sub, line)
        lines.append(line)
    return "".join(lines)


# -- where the code comes from ------------------------------------------------------
def in_kernel_process() -> bool:
    """True inside a running Jupyter kernel (not merely a process that imported ipykernel)."""
    app = sys.modules.get("ipykernel.kernelapp")
    try:
        return app is not None and app.IPKernelApp.initialized()
    except Exception:
        return False


def notebook_path(user_ns: dict | None = None) -> str | None:
    """The notebook (or script) being run, without asking the user.

    Order: ``MLOPS_NOTEBOOK_PATH``; ``JPY_SESSION_NAME`` (set by Jupyter Server for
    each kernel); VS Code's ``__vsc_ipynb_file__``; papermill's input path when the
    job runner exported it; the running Jupyter servers' sessions matched by kernel
    id; for plain Python, the script path (never ``ipykernel_launcher.py``).
    """
    env = os.environ
    for var in ("MLOPS_NOTEBOOK_PATH", "JPY_SESSION_NAME", "PAPERMILL_INPUT_PATH"):
        p = env.get(var)
        if p and p.endswith((".ipynb", ".py")):
            return _abspath(p)
    if user_ns and isinstance(user_ns.get("__vsc_ipynb_file__"), str):
        return user_ns["__vsc_ipynb_file__"]
    if in_kernel_process():
        return _from_papermill_cli() or _from_jupyter_sessions()
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if script and not script.endswith(("ipykernel_launcher.py", "ipython", "-c")) and os.path.exists(script):
        return os.path.abspath(script)
    return None


def _from_papermill_cli() -> str | None:
    """The kernel's parent is `papermill IN.ipynb OUT.ipynb ...`: IN is the notebook."""
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        cwd = os.readlink(f"/proc/{ppid}/cwd")
    except OSError:
        return None
    if not any(os.path.basename(a) == "papermill" or a.endswith("/papermill") for a in argv[:3]):
        return None
    for a in argv[1:]:
        if a.endswith(".ipynb") and not a.startswith("-"):
            return a if os.path.isabs(a) else os.path.normpath(os.path.join(cwd, a))
    return None


def _abspath(p: str) -> str:
    return p if os.path.isabs(p) else os.path.abspath(p)


def _from_jupyter_sessions(timeout: float = 1.0) -> str | None:
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


def read_notebook(path: str | None) -> tuple[str | None, str | None]:
    """The notebook as saved on disk, code cells redacted, as JSON text.

    Args:
        path: the run's notebook (or script) path.

    Returns:
        ``(text, None)`` when there is a notebook worth keeping; ``(None, why)`` when the
        notebook was never saved; ``(None, None)`` when there is no notebook at all (a script)
        or it cannot be read (a warning says why).

    "Never saved" has two shapes in Jupyter. JupyterLab's launcher writes ``Untitled.ipynb``
    with ``"cells": []`` and keeps what is typed in the browser until a save: that file has
    no cell with any source. Or the file is not there: the path came from
    ``MLOPS_NOTEBOOK_PATH`` before the file was written, or the notebook was renamed after
    its kernel started (``JPY_SESSION_NAME`` keeps the old name).
    """
    if not path or not path.endswith(".ipynb"):
        return None, None
    if not os.path.isfile(path):
        return None, "is not on disk (not saved yet, or renamed since the kernel started)"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = data.get("cells", [])
        if not any("".join(c.get("source", "")).strip() for c in cells):
            return None, "was never saved (the file on disk has no cells)"
        for cell in cells:
            if cell.get("cell_type") == "code":
                cell["source"] = redact_source("".join(cell.get("source", "")))
        return json.dumps(data, indent=1, ensure_ascii=False), None
    except (OSError, ValueError, AttributeError, TypeError) as e:
        warnings.warn(f"mlops: could not snapshot {path} ({e})", RuntimeWarning)
        return None, None


def default_run_name(notebook: str | None) -> str:
    if notebook:
        p = Path(notebook)
        return p.parent.name if p.stem == "__main__" else p.stem  # python -m pkg: the package
    return "run"


# -- environment ------------------------------------------------------------------
_dist_cache: dict = {}
_dist_lock = threading.Lock()


def _site_key() -> tuple:
    key = []
    for p in sys.path:
        try:
            key.append((p, os.stat(p).st_mtime_ns))
        except OSError:
            pass
    return tuple(key)


def _distributions() -> tuple[dict, dict]:
    """(top-level module -> [dist names], dist name -> version), cached until sys.path changes."""
    key = _site_key()
    with _dist_lock:
        if _dist_cache.get("key") == key:
            return _dist_cache["modmap"], _dist_cache["versions"]
        from importlib import metadata as md

        versions = {}
        for d in md.distributions():
            name = d.metadata.get("Name")
            if name and name not in versions:
                versions[name] = d.version
        modmap = md.packages_distributions()
        _dist_cache.update(key=key, modmap=modmap, versions=versions)
        return modmap, versions


def imported_packages() -> dict[str, str]:
    """Versions of the installed distributions whose modules this process imported."""
    modmap, versions = _distributions()
    tops = {name.partition(".")[0] for name in list(sys.modules)}
    out = {}
    for top in tops:
        for dist in modmap.get(top, ()):
            if dist in versions:
                out[dist] = versions[dist]
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def freeze() -> str:
    """Every installed distribution, pip-freeze style."""
    _, versions = _distributions()
    return "".join(f"{n}=={v}\n" for n, v in sorted(versions.items(), key=lambda kv: kv[0].lower()))


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", "replace")


def git_state(cwd: str | None = None) -> tuple[dict, str | None]:
    """({commit, branch, dirty, remote}, dirty diff text or None); empty outside a repo."""
    cwd = cwd or os.getcwd()
    from ..config import git_root

    if git_root(cwd) is None:  # not a repository: spare the subprocess
        return {}, None
    head = _git(["rev-parse", "HEAD"], cwd)
    if head is None:
        return {}, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) or ""
    info = {
        "commit": head.strip(),
        "branch": (_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd) or "").strip() or None,
        "dirty": bool(status.strip()),
    }
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    if remote:
        info["remote"] = re.sub(r"//[^@/]+@", "//", remote.strip())  # no credentials in URLs
    diff = _git(["diff", "HEAD", "--no-ext-diff", "--no-color"], cwd) if info["dirty"] else None
    return info, diff


def environment(notebook: str | None = None) -> dict:
    """The facts recorded in a run's ``env`` (cheap; the slow parts are in :func:`capture`)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "host": socket.gethostname(),
        "user": current_user(),
        "cwd": os.getcwd(),
        "notebook": notebook,
    }


def current_user() -> str:
    for var in ("JUPYTERHUB_USER", "MLOPS_USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def environment_variables() -> dict[str, str]:
    return redact_mapping(dict(sorted(os.environ.items())))


PAPERMILL_HEADER = "# Parameters"


def papermill_parameters(source: str) -> dict | None:
    """Parameters from a cell papermill injected (it starts with ``# Parameters``)."""
    if source.lstrip().split("\n", 1)[0].rstrip() != PAPERMILL_HEADER:
        return None
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = ast.unparse(node.value)
    return out
