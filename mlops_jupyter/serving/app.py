"""The prediction server: an ASGI app (FastAPI on Starlette, run by uvicorn).

:func:`build_app` assembles it from small pieces: the :class:`~.service.ModelService` (the models
that answer, the traffic split, the metrics and the prediction log), the routes
(:mod:`.routes`, with the plain-ASGI lane for ``POST /predict`` and ``/invocations``) and the
bearer-token guard (:mod:`.auth`) in front of all of it, all configured by one
:class:`~.options.ServeOptions`.
"""

from __future__ import annotations

import functools
from typing import Any

from .options import INLINE_ROWS, MAX_BODY, ServeOptions
from .served import Served, load_models, versions_from_json

__all__ = ["build_app", "app_from_env", "ServeOptions", "Served", "load_models", "INLINE_ROWS", "MAX_BODY"]

# How the parent of --workers processes hands them what to serve (the token goes in MLOPS_SERVE_TOKEN).
OPTIONS_ENV = "MLOPS_SERVE_OPTIONS"
VERSIONS_ENV = "MLOPS_SERVE_VERSIONS"  # the versions the parent resolved and checked
TOKEN_ENV = "MLOPS_SERVE_TOKEN"


def build_app(options: ServeOptions, preload: list[Served] | None = None, store: Any = None,
              dedicated: bool = False, versions: list | None = None):
    """The ASGI app serving *options*.

    Args:
        options: what to serve and how.
        preload: the models, already resolved, loaded and prepared (:func:`~.served.load_models`);
            without them the app loads them when it starts.
        store: the project's store (default: opened when the app starts).
        dedicated: the process serves and does nothing else (``mlops serve``), so process-wide
            tuning is allowed.
        versions: the registry versions to load instead of resolving the refs again (``--workers``).
    """
    from .auth import BearerGuard, guard
    from .routes import PredictLane, Routes
    from .service import ModelService

    service = ModelService(options, preload=preload, store=store, dedicated=dedicated, versions=versions)
    app = serving_app_class()(title="mlops-jupyter model server", lifespan=service.lifespan, docs_url="/docs",
                              redoc_url=None)
    app.state.mlops = service
    routes = Routes(service)
    routes.add_to(app)
    lane = PredictLane(routes)
    if options.token is not None:  # the same guard in front of the lane and of everything else
        lane = BearerGuard(lane, options.token, service.metrics)
        guard(app, options.token, service.metrics)
    app.lane = lane
    return app


@functools.cache
def serving_app_class():
    """FastAPI, with ``POST /predict`` and ``/invocations`` sent to its ``lane`` (set by
    :func:`build_app`) before FastAPI's own per-request work (a telemetry probe that reads the
    environment, middleware, routing), which costs more than answering a one-row prediction."""
    from fastapi import FastAPI

    from .routes import LANE_PATHS

    class ServingApp(FastAPI):
        lane = None

        async def __call__(self, scope, receive, send):
            if (self.lane is not None and scope["type"] == "http" and scope["method"] == "POST"
                    and scope["path"] in LANE_PATHS):
                await self.lane(scope, receive, send)
                return
            await super().__call__(scope, receive, send)

    return ServingApp


def app_from_env():
    """The app for ``uvicorn --factory`` worker processes (``mlops serve --workers N``)."""
    import os
    import sys

    sys.setswitchinterval(0.001)  # see server.run_foreground
    options = ServeOptions.from_json(os.environ[OPTIONS_ENV], os.environ.get(TOKEN_ENV))
    pinned = os.environ.get(VERSIONS_ENV)
    return build_app(options, dedicated=True, versions=versions_from_json(pinned) if pinned else None)
