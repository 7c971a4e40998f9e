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

from .inputs import InputError, parse, to_frame, to_matrix
from .metrics import Metrics

MAX_BODY = 10 << 20
INLINE_ROWS = 64  # batches up to this size are predicted on the event loop; larger ones in a thread


@dataclass
class Served:
    ref: str  # name@vN: the version that answers
    name: str
    version: int
    source: str  # the ref as given (churn@production): what --reload-alias follows
    predictor: Any  # runtime.Predictor
    signature: dict | None
    weight: float
    classes: list | None = None

    @property
    def classifier(self) -> bool:
        return self.classes is not None or bool(self.signature and self.signature.get("task") == "classification")


@dataclass
class Settings:
    refs: list[tuple[str, float]]  # (model ref, weight)
    token: str | None = None
    max_body: int = MAX_BODY
    log_sample: float = 1.0  # share of requests logged to the store; 0 turns logging off
    allow_pickle: bool = False
    runtime: str = "native"
    quantize: bool = False
    reload_alias: float | None = None  # seconds between checks of moving refs (aliases, latest)

    def to_json(self) -> str:
        import json
        from dataclasses import asdict

        d = asdict(self)
        d.pop("token")  # passed to workers in MLOPS_SERVE_TOKEN, never in the settings blob
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str, token: str | None) -> "Settings":
        import json

        d = json.loads(text)
        d["refs"] = [tuple(r) for r in d["refs"]]
        return cls(**d, token=token)


@dataclass
class State:
    settings: Settings
    served: list[Served] = field(default_factory=list)
    ready: bool = False
    metrics: Metrics = field(default_factory=Metrics)
    cumulative: list[float] = field(default_factory=list)
    log: Any = None  # predlog.PredictionLog
    store: Any = None


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


def load_one(reg, settings: Settings, ref: str, weight: float, version=None) -> Served:
    from .runtime import prepare

    v = version if version is not None else reg.get(ref)
    model = reg.load_version(v, allow_pickle=settings.allow_pickle)
    classes = getattr(model, "classes_", None)
    predictor = prepare(model, v.signature, library=v.library, runtime=settings.runtime,
                        quantize=settings.quantize, ref=v.ref)
    return Served(v.ref, v.name, v.version, ref, predictor, v.signature, weight,
                  [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None)


def load_models(settings: Settings, store) -> list[Served]:
    from ..models.registry import Registry

    reg = Registry(store)
    return [load_one(reg, settings, ref, weight) for ref, weight in settings.refs]


def moving(ref: str) -> bool:
    """A ref whose version can change under the server: an alias or 'latest'."""
    from ..models.registry import parse_model_ref

    return parse_model_ref(ref)[1] is None


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


def build_app(settings: Settings, preload: list[Served] | None = None, store=None, dedicated: bool = False):
    """The ASGI app. *dedicated*: the process serves and does nothing else (``mlops serve``), so
    process-wide tuning is allowed."""
    import asyncio
    import sys
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
        # One assignment each: a request already past pick() keeps the Served it got.
        state.served, state.cumulative, state.ready = served, cum, True

    async def follow_aliases(every: float) -> None:
        """Poll moving refs; load a new version off the event loop, then swap it in."""
        from ..models.registry import Registry

        loop = asyncio.get_running_loop()
        reg = Registry(state.store)
        while True:
            await asyncio.sleep(every)
            for i, s in enumerate(list(state.served)):
                if not moving(s.source):
                    continue
                try:
                    v = await loop.run_in_executor(None, reg.get, s.source)
                    if v.ref == s.ref:
                        continue
                    new = await loop.run_in_executor(None, load_one, reg, settings, s.source, s.weight, v)
                except Exception as e:  # the store is busy or the new version cannot load: keep serving
                    print(f"mlops serve: could not follow {s.source} ({type(e).__name__}: {e}); still serving "
                          f"{s.ref}", file=sys.stderr, flush=True)
                    continue
                served = list(state.served)
                served[i] = new
                set_served(served)
                print(f"mlops serve: {s.source} moved: now serving {new.ref} (was {s.ref})", file=sys.stderr,
                      flush=True)

    @asynccontextmanager
    async def lifespan(app):
        from ..store import open_store

        loop = asyncio.get_running_loop()
        state.store = store if store is not None else await loop.run_in_executor(None, open_store)
        if preload is not None:
            set_served(preload)
        else:
            set_served(await loop.run_in_executor(None, load_models, settings, state.store))
        if any(s.predictor.runtime != "onnx" and type(s.predictor.model).__module__.startswith("sklearn")
               for s in state.served):
            import sklearn

            # Thread-local in scikit-learn: applies to this event loop's thread only. Inputs were
            # already checked for NaN/infinity and types, so the model need not check them again.
            sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
        if settings.log_sample > 0:
            from .predlog import PredictionLog

            state.log = PredictionLog(state.store.meta, state.metrics, sample=settings.log_sample)
        if dedicated:
            import gc

            # Everything loaded so far (libraries, the model) lives as long as the server: keep it
            # out of the collector's full passes, which otherwise walk it every few thousand
            # requests (tens of milliseconds each: the p99). Not done on a notebook's kernel.
            gc.collect()
            gc.freeze()
        follower = None
        if settings.reload_alias:
            follower = asyncio.create_task(follow_aliases(settings.reload_alias))
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
            if state.log is not None:  # write everything answered before the server stops
                await loop.run_in_executor(None, state.log.close)

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
            X = to_matrix(parsed, s.signature) if s.predictor.matrix else to_frame(parsed, s.signature)
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
        took = time.perf_counter() - t0
        if state.log is not None:
            state.log.record(rid, s.name, s.version, route, parsed.columns, parsed.rows, result, took)
        result["model_version"] = s.ref
        result["request_id"] = rid
        state.metrics.observe(route, s.ref, 200, took, n)
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

    feedback_doc = {"requestBody": {"required": True, "content": {"application/json": {"schema": FEEDBACK_SCHEMA}}},
                    "responses": {"200": {"description": "how many labels were stored"},
                                  "422": {"description": "a request id or label that cannot be used"},
                                  "503": {"description": "the store could not take the labels; send again"}}}

    @app.post("/feedback", openapi_extra=feedback_doc)
    async def feedback(request: Request):
        from starlette.concurrency import run_in_threadpool

        from ..exceptions import BadInput
        from .predlog import known_ids, parse_feedback, write_labels

        try:
            triples = parse_feedback(await body_json(request))
        except InputError as e:
            state.metrics.observe("/feedback", "", e.status, 0)
            return error(str(e), e.status)
        except BadInput as e:
            state.metrics.observe("/feedback", "", 422, 0)
            return error(str(e), 422)
        try:
            n = await run_in_threadpool(write_labels, state.store.meta, triples)
            ids = sorted({t[0] for t in triples})
            if state.log is not None:
                await run_in_threadpool(state.log.flush, 2.0)
            unknown = sorted(set(ids) - await run_in_threadpool(known_ids, state.store.meta, ids))
        except Exception as e:
            state.metrics.observe("/feedback", "", 503, 0)
            return error(f"the labels could not be stored ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                         "send them again", 503)
        state.metrics.observe("/feedback", "", 200, 0)
        state.metrics.labels += n
        out: dict = {"stored": n}
        if unknown:
            out["unknown_request_ids"] = unknown[:100]
            out["note"] = "labels for request ids not in the prediction log are kept, in case their log comes later"
        return json_response(out)

    @app.get("/health")
    async def health():
        if not state.ready:
            return error("loading", 503)
        return json_response({"status": "ready", "models": [{"version": s.ref, "weight": s.weight,
                                                             "runtime": s.predictor.runtime}
                                                            for s in state.served]})

    @app.get("/metrics")
    async def metrics(request: Request):
        text = state.metrics.render()
        if state.log is not None:
            text += ("# HELP mlops_prediction_log_queued Prediction log records waiting to be written.\n"
                     "# TYPE mlops_prediction_log_queued gauge\n"
                     f"mlops_prediction_log_queued {len(state.log.queue)}\n")
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


FEEDBACK_SCHEMA = {
    "oneOf": [
        {"type": "object", "properties": {"request_id": {"type": "string"}, "label": {}}, "required": ["request_id"]},
        {"type": "object", "properties": {"request_id": {"type": "string"}, "labels": {"type": "array"}},
         "required": ["request_id", "labels"]},
        {"type": "array", "items": {"type": "object"}},
    ]
}


def _predict(s: Served, X, proba: bool) -> dict:
    import numpy as np

    model = s.predictor.model
    y = np.asarray(model.predict(X))
    out: dict = {"predictions": y.tolist()}
    if proba:
        if not s.classifier:
            raise InputError(f"{s.ref} is not a classifier: no probabilities", 422)
        p = np.asarray(model.predict_proba(X))
        out["probabilities"] = p.tolist()
        if s.classes is not None:
            out["classes"] = s.classes
    return out


def app_from_env():
    """The app for ``uvicorn --factory`` worker processes (``mlops serve --workers N``)."""
    import os
    import sys

    sys.setswitchinterval(0.001)  # see server.run_foreground
    return build_app(Settings.from_json(os.environ["MLOPS_SERVE_SETTINGS"], os.environ.get("MLOPS_SERVE_TOKEN")),
                     dedicated=True)
