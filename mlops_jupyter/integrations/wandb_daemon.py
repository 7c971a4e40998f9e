"""The W&B mirror process: one per project, started on demand, gone when idle.

``python -m mlops_jupyter.integrations.wandb_daemon ROOT`` holds the project's lock
(``.mlops/mirror/wandb.lock``, its pid in ``wandb.pid``, its output in ``wandb.log``), takes the
queued items (:mod:`.wandb_queue`) and mirrors each in a thread of its own (:class:`.wandb_upload.Mirror`),
gives up on a W&B call that does not come back, and exits once nothing has been queued for a while.
:func:`kick` starts it from a notebook or a job without ever raising.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from ..exceptions import MlopsError
from .wandb_queue import (beat, claim, claimable, covered_by_run, enabled, report_failures, say, target,
                          update_item)
from .wandb_upload import POLL, Mirror, call_timeout

_warned: set[str] = set()


def _idle() -> float:
    return float(os.environ.get("MLOPS_WANDB_IDLE", "30"))


def kick(store) -> None:
    """Start the project's mirror process unless one is running; tell the user about failures.

    Never raises: the mirror is a convenience, the notebook's work is not to be broken by it."""
    if not enabled(store.settings):
        return
    try:
        _kick(store)
    except Exception as e:
        if "kick" not in _warned:
            _warned.add("kick")
            say(f"mlops: could not start the W&B mirror ({type(e).__name__}: {e}); everything is kept here and "
                "`mlops wandb sync` pushes it later")


def _kick(store) -> None:
    report_failures(store)
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        if "missing" not in _warned:
            _warned.add("missing")
            say(f"mlops: runs are to be mirrored to W&B ({target(store.settings)}) but wandb is not installed "
                "(pip install 'mlops-jupyter[wandb]'); everything is kept here and `mlops wandb sync` pushes it "
                "later")
        return
    ensure_daemon(store.settings)


def _lock_path(cfg) -> Path:
    d = cfg.mlops_dir / "mirror"
    d.mkdir(parents=True, exist_ok=True)
    return d / "wandb.lock"


def _try_lock(path: Path):
    """An exclusive lock on *path* (fd), or None when another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def ensure_daemon(cfg) -> int | None:
    """Start the mirror process for this project unless one holds the lock; returns its pid."""
    import subprocess

    lock = _lock_path(cfg)
    fd = _try_lock(lock)
    if fd is None:
        return None  # running
    os.close(fd)
    log = open(lock.with_name("wandb.log"), "ab")
    env = dict(os.environ, WANDB_SILENT="true", MLOPS_HOME=str(cfg.root), PYTHONUNBUFFERED="1")
    env.pop("MLOPS_RUN_ID", None)
    env.pop("MLOPS_PARENT_RUN_ID", None)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mlops_jupyter.integrations.wandb_daemon", str(cfg.root)],
                                cwd=str(cfg.root), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    finally:
        log.close()
    # reaped when it exits, so no zombie is left in a long-lived kernel
    threading.Thread(target=proc.wait, name="mlops-wandb-reaper", daemon=True).start()
    return proc.pid


def daemon_pid(cfg) -> int | None:
    """The pid of the project's mirror process when it is running, else None."""
    p = _lock_path(cfg).with_name("wandb.pid")
    try:
        pid = int(p.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def serve(root: str) -> int:
    """The mirror process: hold the project's lock, follow items until idle, then exit."""
    from ..config import settings
    from ..store import open_store

    cfg = settings(Path(root), create=False)
    lock = _lock_path(cfg)
    fd = _try_lock(lock)
    if fd is None:
        return 0  # another mirror process has it
    lock.with_name("wandb.pid").write_text(str(os.getpid()))
    store = open_store(cfg)
    said = threading.Lock()

    def log_line(text: str) -> None:
        with said:
            print(time.strftime("%H:%M:%S"), text, flush=True)

    mirror = Mirror(store, out=log_line)
    print(time.strftime("%H:%M:%S"), f"mirroring {cfg.root} to W&B {mirror.project} "
          f"(WANDB_MODE={os.environ.get('WANDB_MODE', 'online')})", flush=True)
    threads: dict[int, threading.Thread] = {}
    idle_since = time.time()
    abandoned = False
    while True:
        for item_id, t in list(threads.items()):
            if not t.is_alive():
                del threads[item_id]
        # a W&B call that does not come back: give up on that item (its thread is left behind)
        for tid, (what, started) in list(mirror.calls.items()):
            if time.time() - started > call_timeout() + 30:
                for item_id, t in list(threads.items()):
                    if t.ident == tid:
                        update_item(store, item_id, status="failed", owner=None,
                                    error=f"W&B {what} did not return within {call_timeout() + 30:.0f} s")
                        del threads[item_id]
                        abandoned = True
                mirror.calls.pop(tid, None)
        try:
            rows = [r for r in claimable(store) if r.id not in threads]
        except MlopsError as e:
            print(time.strftime("%H:%M:%S"), f"store: {e}", flush=True)
            rows = []
        for r in rows:
            if r.kind in ("model", "data") and covered_by_run(store, r):
                continue  # the run that made it logs it when it ends
            if not claim(store, r):
                continue
            t = threading.Thread(target=mirror.process, args=(r,), name=f"mirror-{r.kind}-{r.key[:8]}",
                                 daemon=True)
            threads[r.id] = t
            t.start()
        if threads:
            idle_since = time.time()
            for item_id in list(threads):
                beat(store, item_id)
        elif time.time() - idle_since > _idle():
            os.close(fd)  # let the next kernel start a fresh one; then look once more (a race)
            if claimable(store):
                fd = _try_lock(lock)
                if fd is not None:
                    idle_since = time.time()
                    continue
            break
        time.sleep(POLL)
    print(time.strftime("%H:%M:%S"), "idle: exiting", flush=True)
    from ..store import close_store

    close_store()
    if abandoned:
        os._exit(0)  # threads stuck in W&B calls must not keep the process alive
    return 0


if __name__ == "__main__":  # the background mirror process
    sys.exit(serve(sys.argv[1]))
