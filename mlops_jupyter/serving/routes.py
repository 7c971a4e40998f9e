"""The server's routes: ``/predict`` (and MLflow's ``/invocations``), ``/feedback``, ``/health``, ``/metrics``.

Handlers take the raw request and parse JSON with orjson (no per-field model validation on the
hot path); the request schema is still declared in the OpenAPI document, so clients and fuzzers
see it. Bad input is a 4xx JSON body ``{"error": ...}`` naming the problem, never a 5xx.

``POST /predict`` and ``/invocations`` are answered by :class:`PredictLane`, plain ASGI ahead of
FastAPI: the framework's per-request layers (its telemetry probe, middleware, routing, dependency
solving, request and response objects) cost more than reading, checking, predicting and logging
a one-row request. FastAPI keeps the same two routes, for the OpenAPI document (they answer too,
with the same :meth:`Routes.respond`, if the app is run without its lane).
"""

import time
from urllib.parse import parse_qs

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..exceptions import MlopsError, first_line
from ..registry import Registry
from .batching import rows_of
from .inputs import InputError, parse
from .predlog import RequestIds
from .service import ModelService

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

FEEDBACK_SCHEMA = {
    "oneOf": [
        {"type": "object", "properties": {"request_id": {"type": "string"}, "label": {}}, "required": ["request_id"]},
        {"type": "object", "properties": {"request_id": {"type": "string"}, "labels": {"type": "array"}},
         "required": ["request_id", "labels"]},
        {"type": "array", "items": {"type": "object"}},
    ]
}

PREDICT_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST_SCHEMA}}},
               "responses": {"200": {"description": "predictions, the answering model version, a request id"},
                             "401": {"description": "missing or wrong token"},
                             "413": {"description": "body too large"},
                             "415": {"description": "not JSON"},
                             "422": {"description": "input does not fit the model's signature"}}}

FEEDBACK_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": FEEDBACK_SCHEMA}}},
                "responses": {"200": {"description": "how many labels were stored"},
                              "422": {"description": "a request id or label that cannot be used"},
                              "503": {"description": "the store could not take the labels; send again"}}}

TRUE = ("1", "true", "yes")
ERROR_LOADING = b'{"error":"the model is still loading"}'


def json_response(obj, status: int = 200) -> Response:
    return Response(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


def error(msg: str, status: int) -> Response:
    return json_response({"error": msg}, status)


async def read_json(request: Request, max_body: int):
    """The request's JSON body: 415 unless sent as JSON, 413 over *max_body* bytes, 400 if malformed."""
    return await read_body(request.scope, request.receive, max_body)


async def read_body(scope, receive, max_body: int):
    """The JSON body of the ASGI request *scope*: 415 unless sent as JSON, 413 over *max_body* bytes,
    400 if malformed."""
    ctype = length = None
    for k, v in scope["headers"]:
        if k == b"content-type":
            ctype = v
        elif k == b"content-length":
            length = v
    if ctype is None or ctype.split(b";")[0].strip().lower() != b"application/json":
        got = ctype.decode("latin-1") if ctype else "none"
        raise InputError(f"send JSON with Content-Type: application/json (got {got})", 415)
    if length is not None and length.isdigit() and int(length) > max_body:
        raise InputError(f"body of {int(length):,} bytes is over the {max_body:,}-byte limit", 413)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InputError("the client went away", 400)
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_body:
                raise InputError(f"body is over the {max_body:,}-byte limit", 413)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:  # one chunk (a small request) is used as it is; many are joined once, not re-copied per chunk
        return orjson.loads(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except orjson.JSONDecodeError as e:
        raise InputError(f"malformed JSON: {e}", 400) from None


def asks_proba(scope) -> bool:
    """``?proba=true`` (or 1, yes) on the request *scope*."""
    qs = scope.get("query_string")
    if not qs:
        return False
    return any(v.lower() in TRUE for v in parse_qs(qs.decode("latin-1")).get("proba", ()))


def request_key(scope) -> str | None:
    for k, v in scope["headers"]:
        if k == b"x-request-key":
            return v.decode("latin-1") or None
    return None


JSON_HEADERS = [(b"content-type", b"application/json")]


LANE_PATHS = frozenset({"/predict", "/invocations"})
# Pages the server shows about what it serves, drawn by a face (``card``: the model card, from
# ``widgets/card_view.py`` through the entry point): a function of the served version's ref -> HTML.
pages: Registry = Registry("server page", entry_point_group="mlops_jupyter.server_pages")


class PredictLane:
    """ASGI: ``POST /predict`` or ``/invocations`` answered by :meth:`Routes.respond`, without the
    framework's per-request layers. The app sends it those requests only (:mod:`.app`), through the
    bearer-token guard when there is a token."""

    def __init__(self, routes: "Routes"):
        self.routes = routes

    async def __call__(self, scope, receive, send):
        status, body, headers = await self.routes.respond(scope, receive, scope["path"])
        await send({"type": "http.response.start", "status": status,
                    "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})


class Routes:
    """The handlers, each reading the request, asking :class:`ModelService`, and answering."""

    def __init__(self, service: ModelService):
        self.service = service
        self.max_body = service.options.max_body
        self.inline_rows = service.options.inline_rows
        self.request_ids = RequestIds()

    def add_to(self, app) -> None:
        """The routes on *app* (FastAPI). ``/predict`` and ``/invocations`` are declared here for the
        OpenAPI document; the server answers them through :class:`PredictLane`, the same code."""
        app.post("/predict", openapi_extra=PREDICT_DOC)(self.predict_route)
        app.post("/invocations", openapi_extra=PREDICT_DOC)(self.invocations)
        app.post("/feedback", openapi_extra=FEEDBACK_DOC)(self.feedback)
        app.get("/health")(self.health)
        app.get("/metrics")(self.metrics)
        app.get("/card")(self.card)

    # Handlers' names and docstrings are their OpenAPI operation ids and descriptions: keep them.
    async def predict_route(self, request: Request):
        return await self.answer(request, "/predict")

    async def invocations(self, request: Request):
        return await self.answer(request, "/invocations")

    async def answer(self, request: Request, route: str) -> Response:
        """:meth:`respond` as a Starlette response."""
        status, body, headers = await self.respond(request.scope, request.receive, route)
        response = Response(body, status_code=status, media_type="application/json")
        for k, v in headers:
            response.headers[k.decode()] = v.decode()
        return response

    async def respond(self, scope, receive, route: str) -> tuple[int, bytes, list]:
        """Read, parse, pick the answering model, check and convert, predict (batched with --batch;
        in a thread for big requests), log, answer: (status, JSON body, extra headers)."""
        t0 = time.perf_counter()
        service = self.service
        if not service.ready:
            return 503, ERROR_LOADING, []
        batch_size = None
        try:
            parsed = parse(await read_body(scope, receive, self.max_body))
            key = request_key(scope) or parsed.key
            proba = parsed.proba or asks_proba(scope)
            s = service.pick(key)
            X = service.convert(s, parsed)
            n = rows_of(X)
            batcher = service.batcher(s)
            if batcher is not None:
                if proba:
                    service.check_proba(s)  # before joining: the batch need not hear of it
                result, batch_size = await batcher.predict(X, proba)
            elif n > self.inline_rows:
                result = await run_in_threadpool(service.predict, s, X, proba)
            else:
                result = service.predict(s, X, proba)
        except InputError as e:
            service.metrics.observe(route, "", e.status, 0)
            return e.status, orjson.dumps({"error": str(e)}), []
        except Exception as e:  # the model refused the input (a dtype it cannot take, ...)
            service.metrics.observe(route, "", 422, 0)
            return 422, orjson.dumps({"error": f"the model could not predict: {first_line(e, 300)}"}), []
        rid = self.request_ids.new()
        took = time.perf_counter() - t0
        if service.log is not None:
            service.log.record(rid, s.name, s.version, route, parsed.columns, parsed.rows, result, took,
                               parsed.arrays)
        result["model_version"] = s.ref
        result["request_id"] = rid
        service.metrics.observe(route, s.ref, 200, took, n)
        body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        return 200, body, [] if batch_size is None else [(b"x-batch-size", str(batch_size).encode())]

    async def feedback(self, request: Request):
        # Labels for earlier predictions, by request id (unknown ids are kept, and named).
        from ..exceptions import BadInput
        from .predlog import parse_feedback

        metrics = self.service.metrics
        try:
            triples = parse_feedback(await read_json(request, self.max_body))
        except InputError as e:
            metrics.observe("/feedback", "", e.status, 0)
            return error(str(e), e.status)
        except BadInput as e:
            metrics.observe("/feedback", "", 422, 0)
            return error(str(e), 422)
        try:
            n, unknown = await self.store_labels(triples)
        except Exception as e:
            metrics.observe("/feedback", "", 503, 0)
            return error(f"the labels could not be stored ({first_line(e, 200)}); "
                         "send them again", 503)
        metrics.observe("/feedback", "", 200, 0)
        metrics.labels += n
        out: dict = {"stored": n}
        if unknown:
            out["unknown_request_ids"] = unknown[:100]
            out["note"] = "labels for request ids not in the prediction log are kept, in case their log comes later"
        return json_response(out)

    async def store_labels(self, triples: list) -> tuple[int, list[str]]:
        """Write the labels; (how many, the request ids the prediction log does not hold)."""
        from .predlog import known_ids, write_labels

        service = self.service
        n = await run_in_threadpool(write_labels, service.store.meta, triples)
        ids = sorted({t[0] for t in triples})
        if service.log is not None:
            await run_in_threadpool(service.log.flush, 2.0)
        unknown = sorted(set(ids) - await run_in_threadpool(known_ids, service.store.meta, ids))
        return n, unknown

    async def health(self):
        service = self.service
        if not service.ready:
            return error("loading", 503)
        batch = service.options.batch
        batching = None if batch is None else {"max_size": batch.max_size, "max_wait_ms": batch.max_wait_ms}
        return json_response({"status": "ready", "models": [{"version": s.ref, "weight": s.weight,
                                                             "runtime": s.predictor.runtime,
                                                             "precision": s.predictor.precision,
                                                             "batching": batching}
                                                            for s in service.served]})

    async def card(self, request: Request):
        """The model card of the version that answers (``?version=churn@v3`` for another one being
        served), as a self-contained HTML page; drawn by the page registered as ``card``."""
        service = self.service
        if not service.ready:
            return error("loading", 503)
        asked = request.query_params.get("version")
        served = {s.ref: s for s in service.served}
        if asked is not None and asked not in served:
            return error(f"version {asked!r} is not served here; served: {', '.join(served)}", 404)
        ref = asked or service.served[0].ref
        try:
            page = pages.get("card")
        except MlopsError:
            return error("model cards need mlops-jupyter's card page (entry point mlops_jupyter.server_pages)", 501)
        html = await run_in_threadpool(page, ref)
        return Response(html, media_type="text/html; charset=utf-8")

    async def metrics(self, request: Request):
        service = self.service
        text = service.metrics.render()
        if service.log is not None:
            text += ("# HELP mlops_prediction_log_queued Prediction log records waiting to be written.\n"
                     "# TYPE mlops_prediction_log_queued gauge\n"
                     f"mlops_prediction_log_queued {len(service.log.queue)}\n")
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
