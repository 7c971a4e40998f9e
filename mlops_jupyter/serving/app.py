"""The prediction server: an ASGI app (FastAPI on Starlette, run by uvicorn).

Handlers take the raw request and parse JSON with orjson (no per-field model validation on the
hot path); the request schema is still declared in the OpenAPI document, so clients and fuzzers
see it. Bad input is a 4xx JSON body ``{"error": ...}`` naming the problem, never a 5xx.
"""


import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .inputs import InputError, parse, to_frame
from .metrics import Metrics

MAX_BODY = 10 << 20
INLINE_ROWS = 64  # batches up to this size are predicted on the event loop; larger ones in a thread


@dataclass
class Served:
    ref: str  # name@vN
    model: Any
    signature: dict | None
    weight: float
    classes: list | None = None


@dataclass
class Settings:
    refs: list[tuple[str, float]]  # (model ref, weight)
    token: str | None = None
    max_body: int = MAX_BODY
    log_sample: float = 1.0
    allow_pickle: bool = False


@dataclass
class State:
    settings: Settings
    served: list[Served] = field(default_factory=list)
    ready: bool = False
    metrics: Metrics = field(default_factory=Metrics)
    cumulative: list[float] = field(default_factory=list)


REQUEST_SCHEMA = {
    "oneOf": [
        {"type": "array", "items": {"type": "object"}, "description": "records, one object per row"},
        {"type": "object", "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                          "data": {"type": "array", "items": {"type": "array"}},
                                          "key": {"type": "string"}, "proba": {"type": "boolean"}},
         "required": ["columns", "data"]},
        {"type": "object", "properties": {"dataframe_split": {"type": "object"}}, "required": ["dataframe_split"]},
        {"type": "object", "properties": {"dataframe_records": {"type": "array"}},
         "required": ["dataframe_records"]},
        {"type": "object", "properties": {"inputs": {}}, "required": ["inputs"]},
    ]
}


def load_models(settings: Settings) -> list[Served]:
    from ..models.registry import Registry
    from ..store import open_store

    reg = Registry(open_store())
    out = []
    for ref, weight in settings.refs:
        v = reg.get(ref)
        model = reg.load_version(v, allow_pickle=settings.allow_pickle)
        classes = getattr(model, "classes_", None)
        out.append(Served(v.ref, model, v.signature, weight,
                          [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None))
    return out


def pick(state: State, key: str | None) -> Served:
    served = state.served
    if len(served) == 1:
        return served[0]
    if key is None:
        import random

        x = random.random()
    else:
        import hashlib

        x = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2 ** 64
    for s, edge in zip(served, state.cumulative):
        if x < edge:
            return s
    return served[-1]


def build_app(settings: Settings, preload: list[Served] | None = None):
    import asyncio
    from contextlib import asynccontextmanager

    import orjson
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, Response

    state = State(settings)

    def set_served(served: list[Served]) -> None:
        total = sum(s.weight for s in served)
        acc, cum = 0.0, []
        for s in served:
            acc += s.weight / total
            cum.append(acc)
        state.served, state.cumulative, state.ready = served, cum, True

    @asynccontextmanager
    async def lifespan(app):
        if preload is not None:
            set_served(preload)
        else:
            served = await asyncio.get_running_loop().run_in_executor(None, load_models, settings)
            set_served(served)
        yield

    app = FastAPI(title="mlops-jupyter model server", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.mlops = state

    def json_response(obj, status: int = 200) -> Response:
        return Response(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                        media_type="application/json")

    def error(msg: str, status: int) -> Response:
        return json_response({"error": msg}, status)

    if settings.token is not None:
        expected = f"Bearer {settings.token}".encode()
        inner = app.build_middleware_stack

        class Guard:
            """Bearer-token check in front of every route (docs and OpenAPI included) but /health."""

            def __init__(self, app_):
                self.app = app_

            async def __call__(self, scope, receive, send):
                if scope["type"] == "http" and scope["path"] != "/health":
                    got = b""
                    for k, v in scope.get("headers", ()):
                        if k == b"authorization":
                            got = v
                            break
                    if not hmac.compare_digest(got, expected):
                        state.metrics.unauthorized += 1
                        state.metrics.observe(scope["path"], "", 401, 0)
                        body = b'{"error":"missing or wrong bearer token"}'
                        await send({"type": "http.response.start", "status": 401,
                                    "headers": [(b"content-type", b"application/json"),
                                                (b"www-authenticate", b"Bearer"),
                                                (b"content-length", str(len(body)).encode())]})
                        await send({"type": "http.response.body", "body": body})
                        return
                await self.app(scope, receive, send)

        def build():
            return Guard(inner())

        app.build_middleware_stack = build

    async def body_json(request: Request):
        ctype = request.headers.get("content-type", "")
        if not ctype.split(";")[0].strip().lower() == "application/json":
            raise InputError(f"send JSON with Content-Type: application/json (got {ctype or 'none'})", 415)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body:
            raise InputError(f"body of {int(length):,} bytes is over the {settings.max_body:,}-byte limit", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body:
                raise InputError(f"body is over the {settings.max_body:,}-byte limit", 413)
            chunks.append(chunk)
        try:
            return orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as e:
            raise InputError(f"malformed JSON: {e}", 400) from None

    async def predict(request: Request, route: str) -> Response:
        t0 = time.perf_counter()
        if not state.ready:
            return error("the model is still loading", 503)
        try:
            body = await body_json(request)
            parsed = parse(body)
            key = request.headers.get("x-request-key") or parsed.key
            proba = parsed.proba or request.query_params.get("proba", "").lower() in ("1", "true", "yes")
            s = pick(state, key)
            X = to_frame(parsed, s.signature)
            n = len(X)
            if n > INLINE_ROWS:
                from starlette.concurrency import run_in_threadpool

                result = await run_in_threadpool(_predict, s, X, proba)
            else:
                result = _predict(s, X, proba)
        except InputError as e:
            state.metrics.observe(route, "", e.status, 0)
            return error(str(e), e.status)
        except Exception as e:  # the model refused the input (a dtype it cannot take, ...)
            state.metrics.observe(route, "", 422, 0)
            return error(f"the model could not predict: {type(e).__name__}: {str(e).splitlines()[0][:300]}", 422)
        rid = uuid.uuid4().hex
        result["model_version"] = s.ref
        result["request_id"] = rid
        state.metrics.observe(route, s.ref, 200, time.perf_counter() - t0, n)
        return json_response(result)

    openapi = {"requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST_SCHEMA}}},
               "responses": {"200": {"description": "predictions, the answering model version, a request id"},
                             "401": {"description": "missing or wrong token"},
                             "413": {"description": "body too large"},
                             "415": {"description": "not JSON"},
                             "422": {"description": "input does not fit the model's signature"}}}

    @app.post("/predict", openapi_extra=openapi)
    async def predict_route(request: Request):
        return await predict(request, "/predict")

    @app.post("/invocations", openapi_extra=openapi)
    async def invocations(request: Request):
        return await predict(request, "/invocations")

    @app.get("/health")
    async def health():
        if not state.ready:
            return error("loading", 503)
        return json_response({"status": "ready", "models": [{"version": s.ref, "weight": s.weight}
                                                            for s in state.served]})

    @app.get("/metrics")
    async def metrics(request: Request):
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _predict(s: Served, X, proba: bool) -> dict:
    import numpy as np

    y = np.asarray(s.model.predict(X))
    out: dict = {"predictions": y.tolist()}
    if proba:
        if not hasattr(s.model, "predict_proba"):
            raise InputError(f"{s.ref} is not a classifier: no probabilities", 422)
        p = np.asarray(s.model.predict_proba(X))
        out["probabilities"] = p.tolist()
        if s.classes is not None:
            out["classes"] = s.classes
    return out
