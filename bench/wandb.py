"""What the W&B mirror costs a notebook, beside W&B used directly, in one run.

    python -m bench.wandb [--quick]

Workload: one run that logs 10 metrics x 1,000 steps, in a fresh process each round (as a fresh
kernel; imports, opening the store and a first warm-up run are not timed). Ours: start + log + end with the project mirrored to W&B (offline), timed in the
notebook's process, and how long after the end the background mirror had written it all. W&B:
``wandb.init`` + ``log`` + ``finish``, offline. Then the same with W&B unreachable (a server on
127.0.0.1 that accepts and never answers, W&B's init timeout set to 10 s): what the cell waits.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import textwrap
import threading
import warnings

from .common import available, fmt_spread, fmt_time, ratio, rounds, run_python, table

QUICK = "--quick" in sys.argv
STEPS = 200 if QUICK else 1000
KEYS = 10
warnings.filterwarnings("ignore")

OURS = textwrap.dedent("""
    import json, time, os
    import sqlalchemy as sa
    import mlops_jupyter as mj
    from mlops_jupyter.store import open_store, schema as S
    open_store()  # what %load_ext and the first cell have done in a kernel
    mj.start_run("warm-up").end()  # the first run of a process captures the environment once
    t0 = time.perf_counter()
    run = mj.start_run("bench")
    for s in range({steps}):
        run.log_metrics({{f"m{{k}}": s * 0.001 + k for k in range({keys})}}, step=s)
    run.end()
    cell = time.perf_counter() - t0
    t1 = time.perf_counter()
    store = open_store()
    while True:  # the timed run's item; the warm-up's may still be going
        with store.meta.read() as c:
            st = c.execute(sa.select(S.mirrors.c.status).where(S.mirrors.c.key == run.run_id)).scalar()
        if st in ("done", "failed") or time.perf_counter() - t1 > 300:
            break
        time.sleep(0.05)
    print(json.dumps({{"cell": cell, "mirrored": time.perf_counter() - t1, "status": st}}))
""")

THEIRS = textwrap.dedent("""
    import json, time
    import wandb
    settings = wandb.Settings(init_timeout={timeout}, silent=True, console="off")
    wandb.init(project="bench", name="warm-up", mode="{mode}", reinit="create_new", settings=settings).finish()
    t0 = time.perf_counter()
    run = wandb.init(project="bench", name="bench", mode="{mode}", reinit="create_new", settings=settings)
    for s in range({steps}):
        run.log({{f"m{{k}}": s * 0.001 + k for k in range({keys})}}, step=s)
    run.finish()
    print(json.dumps({{"cell": time.perf_counter() - t0}}))
""")

THEIRS_INIT = textwrap.dedent("""
    import json, time
    import wandb
    t0 = time.perf_counter()
    err = ""
    try:
        run = wandb.init(project="bench", name="bench", reinit="create_new",
                         settings=wandb.Settings(init_timeout={timeout}, silent=True, console="off"))
        run.finish()
    except Exception as e:
        err = type(e).__name__
    print(json.dumps({{"cell": time.perf_counter() - t0, "error": err}}))
""")


def _project(env: dict) -> str:
    d = tempfile.mkdtemp(prefix="bench-wandb-")
    run_python(f"from mlops_jupyter.config import init_project; init_project({d!r}, wandb='bench/bench'); print(1)",
               cwd=d, env=env)
    return d


class BlackHole:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns: list = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self.stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def main() -> None:
    if not available("wandb"):
        print("wandb is not installed: skipped (pip install 'mlops-jupyter[wandb]')")
        return
    base = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "MLOPS_WANDB_IDLE": "3", "MLOPS_WANDB_POLL": "0.2"}
    n = 3 if QUICK else 5
    mirrored: list[float] = []

    def ours() -> float:
        d = _project(base)
        r = json.loads(run_python(OURS.format(steps=STEPS, keys=KEYS), cwd=d, env=base))
        assert r["status"] == "done", r
        mirrored.append(r["mirrored"])
        return r["cell"]

    def theirs() -> float:
        d = tempfile.mkdtemp(prefix="bench-wandb-direct-")
        return json.loads(run_python(THEIRS.format(steps=STEPS, keys=KEYS, mode="offline", timeout=90), cwd=d,
                                     env=base))["cell"]

    o, t = rounds(ours, n), rounds(theirs, n)
    m = sorted(mirrored)
    rows = [[f"{KEYS} metrics x {STEPS:,} steps", "ours (mirror on)", fmt_spread(o), ""],
            ["", "wandb direct", fmt_spread(t), ""],
            ["", "wandb / ours", ratio(o[0], t[0]), ""],
            ["", "ours: mirrored after end", fmt_spread((m[len(m) // 2], m[0], m[-1])), "in the background"]]

    hole = BlackHole()
    try:
        dead = dict(base, WANDB_MODE="online", WANDB_BASE_URL=f"http://127.0.0.1:{hole.port}",
                    WANDB_API_KEY="x" * 40, MLOPS_WANDB_TIMEOUT="10", MLOPS_WANDB_RETRIES="0")
        d = _project(dead)
        r = json.loads(run_python(OURS.format(steps=STEPS, keys=KEYS), cwd=d, env=dead))
        d2 = tempfile.mkdtemp(prefix="bench-wandb-direct-")
        r2 = json.loads(run_python(THEIRS_INIT.format(timeout=10), cwd=d2, env=dead))
    finally:
        hole.close()
    rows += [["W&B unreachable", "ours (mirror on)", fmt_time(r["cell"]), f"mirror: {r['status']}"],
             ["", "wandb direct (init_timeout=10)", fmt_time(r2["cell"]), r2["error"] or "returned"],
             ["", "wandb / ours", ratio(r["cell"], r2["cell"]), ""]]
    table("W&B mirror: what the notebook waits (fresh process each round; median [min–max])",
          ["workload", "tool", "time", "note"], rows)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_SILENT", "true")
    main()
