"""Run the prediction server: in the foreground (``mlops serve``) or on a background thread
of the notebook's kernel (``%mlops serve`` / ``%mlops serve stop``)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from ..exceptions import BadInput


def parse_ab(spec: str) -> list[tuple[str, float]]:
    """``churn@v3:0.9,churn@v4:0.1`` -> [(ref, weight), ...]."""
    out = []
    for part in spec.split(","):
        ref, sep, w = part.strip().rpartition(":")
        if not sep or not ref:
            raise BadInput(f"--ab takes REF:WEIGHT pairs separated by commas, e.g. churn@v3:0.9,churn@v4:0.1; "
                           f"got {part!r}")
        try:
            weight = float(w)
        except ValueError:
            raise BadInput(f"--ab weight {w!r} is not a number") from None
        if not weight > 0:
            raise BadInput(f"--ab weight of {ref} must be above 0")
        out.append((ref, weight))
    return out


def read_token(token_file: str | None) -> str | None:
    if token_file:
        try:
            token = open(token_file, encoding="utf-8").read().strip()
        except OSError as e:
            raise BadInput(f"cannot read --token-file: {e.strerror}") from None
        if not token:
            raise BadInput(f"--token-file {token_file} is empty")
        return token
    return os.environ.get("MLOPS_SERVE_TOKEN") or None


@dataclass
class Background:
    server: object
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


_running: dict[int, Background] = {}


def check_host(host: str, token: str | None) -> None:
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        raise BadInput("without a token the server listens on 127.0.0.1 only: pass --token-file (or set "
                       "MLOPS_SERVE_TOKEN) to listen on other addresses")


def config(refs, host: str, port: int, token: str | None, tls_cert=None, tls_key=None, dedicated=False, **kw):
    import uvicorn

    from .app import Settings, build_app

    check_host(host, token)
    app = build_app(Settings(refs=refs, token=token, **kw), dedicated=dedicated)
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          ssl_certfile=tls_cert, ssl_keyfile=tls_key, lifespan="on", timeout_graceful_shutdown=30)


def run_foreground(refs, host: str, port: int, token: str | None, workers: int = 1, tls_cert=None, tls_key=None,
                   **kw) -> None:
    """``mlops serve``: one process, or *workers* processes sharing the port (each loads the model
    and logs predictions on its own; /metrics answers for the worker that takes the scrape)."""
    import sys

    import uvicorn

    # A process of its own: let the event loop take the GIL back from the prediction-log writer
    # (and the batch thread pool) within a millisecond instead of the default five.
    sys.setswitchinterval(0.001)
    if workers <= 1:
        uvicorn.Server(config(refs, host, port, token, tls_cert=tls_cert, tls_key=tls_key, dedicated=True,
                              **kw)).run()
        return
    from .app import Settings

    check_host(host, token)
    os.environ["MLOPS_SERVE_SETTINGS"] = Settings(refs=refs, **kw).to_json()
    if token is not None:
        os.environ["MLOPS_SERVE_TOKEN"] = token
    uvicorn.run("mlops_jupyter.serving.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                log_level="warning", access_log=False, ssl_certfile=tls_cert, ssl_keyfile=tls_key, lifespan="on",
                timeout_graceful_shutdown=30)


def start_background(refs, host="127.0.0.1", port=8080, token=None, **kw) -> Background:
    import time

    import uvicorn

    if port in _running:
        raise BadInput(f"a server already runs on port {port}: %mlops serve stop --port {port}")
    server = uvicorn.Server(config(refs, host, port, token, **kw))
    thread = threading.Thread(target=server.run, name=f"mlops-serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        raise BadInput(f"the server did not start on {host}:{port} (is the port taken?)")
    scheme = "https" if kw.get("tls_cert") else "http"
    bg = Background(server, thread, f"{scheme}://{host}:{port}")
    _running[port] = bg
    return bg


def stop_background(port: int | None = None) -> list[str]:
    ports = [port] if port is not None else list(_running)
    stopped = []
    for p in ports:
        bg = _running.pop(p, None)
        if bg is not None:
            bg.stop()
            stopped.append(bg.url)
    return stopped
