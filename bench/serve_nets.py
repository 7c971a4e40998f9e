"""Adaptive batching for a network: the MLP of ``bench.nets`` served with and without ``--batch``.

    python -m bench.serve_nets [--quick]

Workload (as in the issue): the MLP 784-256-256-10 of :mod:`bench.nets`, registered and served by
``mlops serve`` (each runtime: the exported program on PyTorch, and ONNX Runtime float32), once
unbatched and once with ``--batch max_size=64,max_wait_ms=2``; ``wrk`` posts the same single-row
tensor body (``{"inputs": [[784 numbers]]}``) at concurrency 32, the servers interleaved per round.
Every prediction is logged to the store, as out of the box. Targets: batched at least 3x the
unbatched requests/s, p99 at most 20 ms.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile

from .common import table
from .serve import BATCH, ROOT, free_port, lua, scrape, start, stop, wait_ready, wrk

QUICK = "--quick" in sys.argv
DURATION = 4 if QUICK else 8
ROUNDS = 1 if QUICK else 3
CONNS = 32


def main() -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk): skipped")
        return
    from .nets import make_net

    net, example, held_out, acc = make_net()
    work = tempfile.mkdtemp(prefix="bench-serve-nets-")
    os.chdir(work)
    from mlops_jupyter.config import init_project
    from mlops_jupyter.models.registry import Registry
    from mlops_jupyter.store import open_store

    init_project(work)
    store = open_store()
    Registry(store).register(net, "digits", example=example[:32], alias="production")
    store.close()
    body = lua(os.path.join(work, "one.lua"), json.dumps({"inputs": held_out[:1].round(5).tolist()}))
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    base = [sys.executable, "-m", "mlops_jupyter.cli", "serve", "digits@production"]
    variants = {"torch": [], "torch --batch": ["--batch", BATCH],
                "onnx": ["--runtime", "onnx"], "onnx --batch": ["--runtime", "onnx", "--batch", BATCH]}
    servers: dict = {}
    results: dict = {}
    try:
        for name, extra in variants.items():
            port = free_port()
            servers[name] = (start([*base, *extra, "--port", str(port)], work, env), f"http://127.0.0.1:{port}")
            wait_ready(servers[name][1] + "/health", servers[name][0], timeout=300)
        for _, url in servers.values():  # warm-up
            wrk(url + "/invocations", body, CONNS, 2)
        for _ in range(ROUNDS):
            for name, (_, url) in servers.items():
                results.setdefault(name, []).append(wrk(url + "/invocations", body, CONNS, DURATION))
        rows = []
        med = {n: statistics.median(r["rps"] for r in rs) for n, rs in results.items()}
        for name, rs in results.items():
            rows.append([name, f"{med[name]:,.0f} req/s", f"{statistics.median(r['p50'] for r in rs):.2f} ms",
                         f"{statistics.median(r['p99'] for r in rs):.2f} ms", str(sum(r["non2xx"] for r in rs))])
        for rt in ("torch", "onnx"):
            rows.append([f"{rt}: batched / unbatched", f"{med[rt + ' --batch'] / med[rt]:.2f}x", "", "", ""])
        table(f"MLP 784-256-256-10 (held-out accuracy {acc:.1%}), single-row requests at c={CONNS}: "
              f"wrk, {DURATION} s x {ROUNDS} rounds, median", ["server", "throughput", "p50", "p99", "non-2xx"], rows)
        import time

        time.sleep(1.0)
        for name, (_, url) in servers.items():
            m = scrape(url)
            calls = f"; {m['batched'] / m['calls']:.1f} requests a model call" if m["calls"] else ""
            print(f"{name}: {m['answered']:,.0f} answered, {m['written']:,.0f} logged, {m['dropped']:,.0f} dropped{calls}")
    finally:
        for proc, _ in servers.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
