"""The bearer-token check, in front of every route (docs and OpenAPI included) but ``/health``.

Plain ASGI, outside FastAPI's middleware stack, so a refused request costs no routing and no
exception handling, and no route can be added without it.
"""

from __future__ import annotations

import hmac

from .metrics import Metrics

UNAUTHORIZED_BODY = b'{"error":"missing or wrong bearer token"}'
OPEN_PATHS = frozenset({"/health"})


class BearerGuard:
    """ASGI middleware: 401 with ``WWW-Authenticate: Bearer`` unless ``Authorization: Bearer TOKEN``."""

    def __init__(self, app, token: str, metrics: Metrics):
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            got = b""
            for k, v in scope.get("headers", ()):
                if k == b"authorization":
                    got = v
                    break
            if not hmac.compare_digest(got, self.expected):
                await self.refuse(scope, send)
                return
        await self.app(scope, receive, send)

    async def refuse(self, scope, send) -> None:
        self.metrics.unauthorized += 1
        self.metrics.observe(scope["path"], "", 401, 0)
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                (b"content-length", str(len(UNAUTHORIZED_BODY)).encode())]})
        await send({"type": "http.response.body", "body": UNAUTHORIZED_BODY})


def guard(app, token: str, metrics: Metrics) -> None:
    """Put :class:`BearerGuard` in front of everything *app* (a FastAPI/Starlette app) serves."""
    inner = app.build_middleware_stack

    def build():
        return BearerGuard(inner(), token, metrics)

    app.build_middleware_stack = build
