"""The kernels we start to execute notebooks (jobs, retraining, monitoring checks, the demo).

They talk to their client over IPC (Unix sockets in Jupyter's private runtime folder) instead of
TCP on 127.0.0.1: nothing on the machine's network stack can reach them, and ipykernel has no
reason to print "Kernel is running over TCP without encryption" once per kernel into every job's
output. Where Unix sockets do not exist (Windows) they stay on TCP, as Jupyter's own default.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

_MAX_SOCKET_PATH = 100  # sun_path holds 104-108 bytes; "-<port>" is appended to the prefix
_running: dict[str, Any] = {}  # an execution's run id -> the manager of the kernel executing it


def interrupt(run_id: str) -> bool:
    """Interrupt the kernel (started in this process) that executes run *run_id*: a KeyboardInterrupt
    in the cell it runs (a tuner's pruner stopping the trial). False when there is none."""
    import signal

    km = _running.get(run_id)
    process = getattr(getattr(km, "provisioner", None), "process", None) if km is not None else None
    if process is None or process.poll() is not None:
        return False
    try:
        os.kill(process.pid, signal.SIGINT)
    except OSError:
        return False
    return True


def _socket_prefix() -> str | None:
    """A path prefix for the kernel's sockets in a folder only this user can open, or None."""
    if sys.platform == "win32":
        return None
    from jupyter_core.paths import jupyter_runtime_dir

    folder = jupyter_runtime_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    prefix = os.path.join(folder, f"mlops-{uuid.uuid4().hex[:12]}")
    if len(prefix) + 8 > _MAX_SOCKET_PATH:  # a deep home folder: the sockets' names would not fit
        return None
    return prefix


def kernel_manager_class(env: dict[str, str] | None = None, cwd: str | None = None) -> type:
    """An ``AsyncKernelManager`` class for papermill / nbclient whose kernels listen on IPC and,
    when given, start with *env* (added to the process's environment) and in *cwd*, so executions
    running side by side in one process never touch the process's own environment or folder."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Float

    def __init__(self, *args: Any, **kw: Any) -> None:
        AsyncKernelManager.__init__(self, *args, **kw)
        prefix = _socket_prefix()
        if prefix is not None:
            self.transport = "ipc"
            self.ip = prefix  # each socket is "<prefix>-<n>", removed when the kernel is cleaned up

    async def _async_start_kernel(self, **kw: Any) -> None:
        if env:
            merged = dict(kw.pop("env", None) or os.environ)
            merged.update(env)
            kw["env"] = merged
        if cwd:
            kw["cwd"] = cwd
        out = await AsyncKernelManager._async_start_kernel(self, **kw)
        if env and env.get("MLOPS_RUN_ID"):
            _running[env["MLOPS_RUN_ID"]] = self
        return out

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        if env and _running.get(env.get("MLOPS_RUN_ID", "")) is self:
            del _running[env["MLOPS_RUN_ID"]]
        return await AsyncKernelManager._async_cleanup_resources(self, restart=restart)

    async def _async_interrupt_kernel(self) -> None:
        # jupyter_client interrupts a kernel before asking it to shut down. Ours are idle by then
        # (the notebook ran or failed), and a SIGINT landing in the kernel's exit handlers stopped
        # them ending its runs (left to be found "crashed") and printed "KeyboardInterrupt caught
        # in kernel" into the job's output. A timeout's interrupt, mid-cell, still goes through.
        if self.shutting_down:
            return None
        return await AsyncKernelManager._async_interrupt_kernel(self)

    return type("MlopsKernelManager", (AsyncKernelManager,),
                {"__init__": __init__, "_async_start_kernel": _async_start_kernel,
                 "start_kernel": _async_start_kernel, "_async_interrupt_kernel": _async_interrupt_kernel,
                 "interrupt_kernel": _async_interrupt_kernel,
                 "_async_cleanup_resources": _async_cleanup_resources, "cleanup_resources": _async_cleanup_resources,
                 # The kernel ends its runs and writes them out at exit; on a busy machine that takes
                 # longer than jupyter_client's 5 s before SIGTERM (half of it) and SIGKILL.
                 "shutdown_wait_time": Float(SHUTDOWN_WAIT, config=True)})


SHUTDOWN_WAIT = 30.0  # seconds a kernel gets to exit after the shutdown request
