"""The REST routes of the JupyterLab panel under ``/mlops/api/``: Jupyter's own authentication on
every route (``APIHandler`` + ``authenticated``), the work on a thread so the server's event loop
never waits on the store, errors as ``{"error": ...}`` with a 4xx status."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..exceptions import BadInput, MlopsError, NotFound
from . import api, assets, studies

POOL = ThreadPoolExecutor(4, thread_name_prefix="mlops-lab")


class Base(APIHandler):
    async def work(self, fn, *args, **kw):
        loop = tornado.ioloop.IOLoop.current()
        return await loop.run_in_executor(POOL, lambda: fn(*args, **kw))

    async def answer(self, fn, *args, status: int = 200, **kw) -> None:
        try:
            result = await self.work(fn, *args, **kw)
        except NotFound as e:
            return self.error(404, str(e))
        except (BadInput, MlopsError) as e:
            return self.error(400, str(e))
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))

    def error(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, reason="the body is not JSON") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, reason="the body should be a JSON object")
        return data

    def int_arg(self, name: str, default: int) -> int:
        raw = self.get_argument(name, None)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise BadInput(f"{name} should be a whole number, got {raw!r}") from None

    def write_error(self, status_code: int, **kwargs) -> None:  # tornado's errors as JSON too
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": self._reason}))


class Runs(Base):
    @tornado.web.authenticated
    async def get(self):
        try:
            offset, limit = self.int_arg("offset", 0), self.int_arg("limit", api.PAGE)
        except BadInput as e:
            return self.error(400, str(e))
        await self.answer(api.runs, offset=offset, limit=limit, where=self.get_argument("where", None) or None,
                          sort=self.get_argument("sort", None) or None)


class Run(Base):
    @tornado.web.authenticated
    async def get(self, ref):
        await self.answer(api.run, ref)


class RunChart(Base):
    @tornado.web.authenticated
    async def get(self, ref):
        await self.answer(api.run_chart, ref, x=self.get_argument("x", "step"),
                          log_y=self.get_argument("log_y", "0"), keys=self.get_argument("keys", None))


class Artifact(Base):
    """An artifact's bytes, streamed from the store. Images are shown inline (``?download=1``
    downloads them); anything else downloads. The page never runs what it serves: a sandbox
    policy, no type sniffing, text as text/plain."""

    @tornado.web.authenticated
    async def get(self, ref, path):
        try:
            download = api.flag(self.get_argument("download", "0"), "download")
            found = await self.work(api.artifact, ref, path)
        except NotFound as e:
            return self.error(404, str(e))
        except (BadInput, MlopsError) as e:
            return self.error(400, str(e))
        inline = found["image"] and not download
        self.set_header("Content-Type", found["type"])
        self.set_header("Content-Length", str(found["size"]))
        self.set_header("Content-Disposition",
                        f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(found['name'], safe='')}")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
        self.set_header("Cache-Control", "private, max-age=3600")  # a stored artifact never changes
        chunks = found["blobs"].iter_chunks(found["digest"])
        try:
            while True:
                chunk = await self.work(next, chunks, None)
                if chunk is None:
                    break
                self.write(chunk)
                await self.flush()
        finally:
            chunks.close()
        self.finish(set_content_type=found["type"])


class Compare(Base):
    @tornado.web.authenticated
    async def get(self):
        refs = [r for r in self.get_argument("runs", "").split(",") if r]
        await self.answer(api.compare, refs, x=self.get_argument("x", "step"), log_y=self.get_argument("log_y", "0"),
                          metric=self.get_argument("metric", None) or None)


class Datasets(Base):
    @tornado.web.authenticated
    async def get(self):
        await self.answer(assets.datasets)


class Dataset(Base):
    @tornado.web.authenticated
    async def get(self, name):
        await self.answer(assets.dataset, name, version=self.get_argument("version", None))


class Models(Base):
    @tornado.web.authenticated
    async def get(self):
        await self.answer(assets.models)


class Model(Base):
    @tornado.web.authenticated
    async def get(self, name):
        await self.answer(assets.model, name, version=self.get_argument("version", None))


class Card(Base):
    @tornado.web.authenticated
    async def get(self, name):
        await self.answer(assets.card, name, version=self.get_argument("version", None))


class Alias(Base):
    @tornado.web.authenticated
    async def put(self, name, alias):
        await self.answer(assets.set_alias, name, alias, self.body().get("version"))


class Jobs(Base):
    @tornado.web.authenticated
    async def get(self):
        await self.answer(api.jobs)


class Job(Base):
    @tornado.web.authenticated
    async def get(self, name):
        await self.answer(api.job, name)


class JobRun(Base):
    @tornado.web.authenticated
    async def post(self, name):
        await self.answer(api.run_job_now, name, status=202)


class Studies(Base):
    @tornado.web.authenticated
    async def get(self):
        await self.answer(studies.studies)


class Study(Base):
    @tornado.web.authenticated
    async def get(self, name):
        await self.answer(studies.study, name)


class Promote(Base):
    @tornado.web.authenticated
    async def get(self):
        await self.answer(api.promote_preview, self.get_argument("path", ""))

    @tornado.web.authenticated
    async def post(self):
        b = self.body()
        params = b.get("params") or {}
        if not isinstance(params, dict):
            return self.error(400, "params should be an object of NAME: VALUE")
        await self.answer(api.promote, b.get("path", ""), b.get("name", ""), model=b.get("model"),
                          metric=b.get("metric"), params=params, retrain_when=b.get("retrain_when"),
                          force=bool(b.get("force")), status=201)


NAME = r"([^/]+)"
ROUTES = [
    ("runs", Runs), (f"runs/{NAME}", Run), (f"runs/{NAME}/chart", RunChart),
    (f"runs/{NAME}/artifacts/(.+)", Artifact), ("compare", Compare), ("datasets", Datasets),
    (f"datasets/{NAME}", Dataset), ("models", Models), (f"models/{NAME}", Model),
    (f"models/{NAME}/aliases/{NAME}", Alias), (f"models/{NAME}/card", Card), ("jobs", Jobs), (f"jobs/{NAME}", Job), (f"jobs/{NAME}/run", JobRun),
    ("studies", Studies), (f"studies/{NAME}", Study), ("promote", Promote),
]


def setup(web_app) -> None:
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, "mlops", "api", path), handler) for path, handler in ROUTES])
