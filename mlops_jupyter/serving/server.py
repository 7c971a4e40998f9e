"""Run the prediction server: in the foreground (``mlops serve``) or on a background thread
of the notebook's kernel (``%mlops serve`` / ``%mlops serve stop``).

    options = ServeOptions.from_user(ref="churn@production", port=8080)
    served = load_models(options)          # resolved, loaded, converted: once
    server.run_foreground(options, preload=served)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from ..exceptions import BadInput
from .options import ServeOptions, parse_ab, read_token
from .served import Served

__all__ = ["run_foreground", "start_background", "stop_background", "Background", "parse_ab", "read_token"]

LEGACY_POSITIONAL = ("host", "port", "token")


@dataclass
class Background:
    server: object
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


_running: dict[int, Background] = {}


def as_options(options: ServeOptions | Sequence, args: tuple = (), kw: dict | None = None) -> ServeOptions:
    """*options*, or (the previous call shape) ServeOptions built from refs, then host, port and
    token by position and the other options by keyword."""
    kw = dict(kw or {})
    if isinstance(options, ServeOptions):
        if args or kw:
            raise TypeError("pass either ServeOptions, or refs with host, port, token and keyword options")
        return options
    if len(args) > len(LEGACY_POSITIONAL):
        raise TypeError(f"after the refs, at most {', '.join(LEGACY_POSITIONAL)} by position")
    kw.update(zip(LEGACY_POSITIONAL, args))
    return ServeOptions(refs=options, **kw)


def config(options: ServeOptions, preload: list[Served] | None = None, dedicated: bool = False):
    """The uvicorn configuration of one server process.

    No proxy-header rewriting: nothing here reads the client's address or scheme, and the
    middleware costs every request a pass over its headers."""
    import uvicorn

    from .app import build_app

    app = build_app(options, preload=preload, dedicated=dedicated)
    return uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", access_log=False,
                          ssl_certfile=options.tls_cert, ssl_keyfile=options.tls_key, lifespan="on",
                          timeout_graceful_shutdown=30, proxy_headers=False)


def run_foreground(options: ServeOptions | Sequence, *args: Any, preload: list[Served] | None = None,
                   **kw: Any) -> None:
    """``mlops serve``: one process, or ``options.workers`` processes sharing the port (each loads the
    model and logs predictions on its own; /metrics answers for the worker that takes the scrape).

    *preload*: the models from :func:`~.served.load_models`; one process serves them as they are,
    ``--workers`` processes load the versions they name (not resolving the refs again)."""
    import sys

    import uvicorn

    options = as_options(options, args, kw)
    # A process of its own: let the event loop take the GIL back from the prediction-log writer
    # (and the batch thread pool) within a millisecond instead of the default five.
    sys.setswitchinterval(0.001)
    if options.workers <= 1:
        uvicorn.Server(config(options, preload, dedicated=True)).run()
        return
    from .app import OPTIONS_ENV, TOKEN_ENV, VERSIONS_ENV
    from .served import versions_to_json

    os.environ[OPTIONS_ENV] = options.to_json()
    if options.token is not None:
        os.environ[TOKEN_ENV] = options.token
    if preload is not None and all(s.record is not None for s in preload):
        os.environ[VERSIONS_ENV] = versions_to_json(preload)
    uvicorn.run("mlops_jupyter.serving.app:app_from_env", factory=True, workers=options.workers, host=options.host,
                port=options.port, log_level="warning", access_log=False, ssl_certfile=options.tls_cert,
                ssl_keyfile=options.tls_key, lifespan="on", timeout_graceful_shutdown=30, proxy_headers=False)


def start_background(options: ServeOptions | Sequence, *args: Any, preload: list[Served] | None = None,
                     **kw: Any) -> Background:
    """``%mlops serve``: the server on a thread of this process; returns once it listens."""
    import time

    import uvicorn

    options = as_options(options, args, kw)
    if options.port in _running:
        raise BadInput(f"a server already runs on port {options.port}: %mlops serve stop --port {options.port}")
    server = uvicorn.Server(config(options, preload))
    thread = threading.Thread(target=server.run, name=f"mlops-serve-{options.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        raise BadInput(f"the server did not start on {options.host}:{options.port} (is the port taken?)")
    bg = Background(server, thread, options.url)
    _running[options.port] = bg
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
