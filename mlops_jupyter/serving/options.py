"""What the user asked the server for: :class:`ServeOptions`, built once and checked once.

    options = ServeOptions.from_user(ref="churn@production", port=8080, runtime="onnx")

Every option is checked when the object is made (a bad value is one :class:`BadInput` line naming
the flag), so what runs the server never checks again. The options travel to ``--workers``
processes as JSON (without the token, which goes in its own environment variable).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..exceptions import BadInput

MAX_BODY = 10 << 20
INLINE_ROWS = 64  # batches up to this size are predicted on the event loop; larger ones in a thread
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_WAIT_MS = 1000.0  # a batch that waits longer than a second for company is a mistake, not a setting


@dataclass(frozen=True)
class ModelRef:
    """One model ref to serve, as given (``churn@production``), with its share of the traffic.

    *moving*: the version it names can change under the server (an alias, or the latest)."""

    text: str
    weight: float = 1.0
    moving: bool = True
    parsed: tuple = ()  # (name, version, alias) from parse_model_ref: the ref is parsed once

    @property
    def lookup(self) -> str | tuple:
        """What :meth:`Registry.get` takes: the parsed ref when there is one."""
        return self.parsed or self.text

    @classmethod
    def parse(cls, text: str, weight: float = 1.0) -> "ModelRef":
        """Check *text* as a model ref (BadInput naming what is wrong) and note whether it moves."""
        from ..models.registry import parse_model_ref

        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or not weight > 0:
            raise BadInput(f"--ab weight of {text} must be a number above 0; got {weight!r}")
        parsed = parse_model_ref(text)
        return cls(text, float(weight), parsed[1] is None, parsed)


@dataclass(frozen=True)
class BatchOptions:
    """Adaptive batching (``--batch max_size=64,max_wait_ms=2``): requests that arrive together are
    merged into one model call of at most *max_size* rows; none waits more than *max_wait_ms*."""

    max_size: int = 64
    max_wait_ms: float = 2.0

    def __post_init__(self) -> None:
        _whole(self.max_size, "--batch max_size", 1)
        w = self.max_wait_ms
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= MAX_WAIT_MS:
            raise BadInput(f"--batch max_wait_ms takes milliseconds between 0 and {MAX_WAIT_MS:g}; got {w!r}")
        object.__setattr__(self, "max_wait_ms", float(w))

    @classmethod
    def parse(cls, text: str) -> "BatchOptions":
        """``max_size=64,max_wait_ms=2`` (either may be left out; empty text: the defaults)."""
        given: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("max_size", "max_wait_ms"):
                raise BadInput(f"--batch takes max_size=ROWS,max_wait_ms=MS (e.g. max_size=64,max_wait_ms=2); "
                               f"got {part!r}")
            try:
                given[key] = int(value) if key == "max_size" else float(value)
            except ValueError:
                what = "a whole number of rows" if key == "max_size" else "milliseconds"
                raise BadInput(f"--batch {key} takes {what}; got {value.strip()!r}") from None
        return cls(**given)

    @classmethod
    def of(cls, value: Any) -> "BatchOptions | None":
        """*value* as BatchOptions: None (or False), True (the defaults), BatchOptions, the ``--batch``
        text, ``(max_size, max_wait_ms)`` or a dict of them (how the options come back from JSON)."""
        if value is None or value is False or isinstance(value, cls):
            return value or None
        if value is True:
            return cls()
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, dict):
            unknown = set(value) - {"max_size", "max_wait_ms"}
            if unknown:
                raise BadInput(f"batching takes max_size and max_wait_ms; got {', '.join(sorted(unknown))}")
            return cls(**value)
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return cls(*value)
        raise BadInput(f"batching takes max_size=ROWS,max_wait_ms=MS or (max_size, max_wait_ms); got {value!r}")


@dataclass(frozen=True)
class ServeOptions:
    """The server's options. *refs*: ``[(ref, weight), ...]`` or :class:`ModelRef` objects."""

    refs: tuple[ModelRef, ...]
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)
    tls_cert: str | None = None
    tls_key: str | None = None
    workers: int = 1
    max_body: int = MAX_BODY  # bytes of one request body
    inline_rows: int = INLINE_ROWS  # batches up to this many rows are predicted on the event loop
    log_sample: float = 1.0  # share of requests logged to the store; 0 turns logging off
    allow_pickle: bool = False
    runtime: str = "native"
    quantize: bool = False
    reload_alias: float | None = None  # seconds between checks of moving refs (aliases, latest)
    batch: BatchOptions | None = None  # adaptive batching; off by default
    min_agreement: float | None = None  # --quantize: least share of answers agreeing with the original model

    def __post_init__(self) -> None:
        refs = [self.refs] if isinstance(self.refs, (str, ModelRef)) else self.refs
        object.__setattr__(self, "refs", tuple(_model_ref(r) for r in refs))
        object.__setattr__(self, "batch", BatchOptions.of(self.batch))
        self._check()

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_user(cls, ref: str | None = None, ab: str | None = None, token_file: str | None = None,
                  port: int | None = None, workers: int | None = None, **options: Any) -> "ServeOptions":
        """The options of ``mlops serve`` / ``%mlops serve``: *ab* (``churn@v3:0.9,churn@v4:0.1``) or
        *ref*; the token read from *token_file* (else ``$MLOPS_SERVE_TOKEN``); unset values defaulted."""
        refs = parse_ab(ab) if ab else [(ref, 1.0)]
        if "token" not in options:
            options["token"] = read_token(token_file)
        if isinstance(options.get("min_agreement"), str):  # as typed after --min-agreement
            try:
                options["min_agreement"] = float(options["min_agreement"])
            except ValueError:
                raise BadInput(f"--min-agreement takes a share between 0 and 1; got {options['min_agreement']!r}") \
                    from None
        return cls(refs=refs, port=port or 8080, workers=workers or 1, **options)

    # -- checking ------------------------------------------------------------------------------
    def _check(self) -> None:
        from .runtime import runtimes

        if not self.refs:
            raise BadInput("name a model version to serve, e.g. churn@production")
        runtime = runtimes.get(self.runtime)  # BadInput naming the known runtimes
        if self.quantize and not runtime.quantizes:
            raise BadInput("--quantize applies to --runtime onnx")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise BadInput("--tls-cert and --tls-key go together")
        if self.token is None and self.host not in LOCAL_HOSTS:
            raise BadInput("without a token the server listens on 127.0.0.1 only: pass --token-file (or set "
                           "MLOPS_SERVE_TOKEN) to listen on other addresses")
        if self.token is not None and not (isinstance(self.token, str) and self.token):
            raise BadInput("the bearer token is empty")
        _whole(self.port, "--port", 1, 65535)
        _whole(self.workers, "--workers", 1)
        _whole(self.max_body, "the body limit", 1)
        _whole(self.inline_rows, "the inline batch limit", 0)
        if not isinstance(self.log_sample, (int, float)) or not 0 <= self.log_sample <= 1:
            raise BadInput(f"--log-sample takes a share between 0 and 1; got {self.log_sample!r}")
        if self.min_agreement is not None:
            m = self.min_agreement
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1:
                raise BadInput(f"--min-agreement takes a share between 0 and 1; got {m!r}")
            if not self.quantize:
                raise BadInput("--min-agreement applies only with --quantize")
        if self.reload_alias is not None:
            if not isinstance(self.reload_alias, (int, float)) or not self.reload_alias > 0:
                raise BadInput(f"--reload-alias takes seconds above 0; got {self.reload_alias!r}")
            for r in self.refs:
                if not r.moving:
                    raise BadInput(f"--reload-alias follows aliases; {r.text} names a fixed version")

    # -- describing and passing on ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://{self.host}:{self.port}"

    @property
    def refs_text(self) -> str:
        """``churn@v3, churn@v4``: the refs as the user gave them."""
        return ", ".join(r.text for r in self.refs)

    def to_json(self) -> str:
        """Everything but the token (passed to workers in MLOPS_SERVE_TOKEN, never in this blob)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "token"}
        d["refs"] = [[r.text, r.weight] for r in self.refs]
        d["batch"] = asdict(self.batch) if self.batch is not None else None
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str, token: str | None) -> "ServeOptions":
        d = json.loads(text)
        d["refs"] = [tuple(r) for r in d["refs"]]
        return cls(**d, token=token)


def _model_ref(r: ModelRef | tuple[str, float] | str) -> ModelRef:
    if isinstance(r, ModelRef):
        return r
    if isinstance(r, str):
        return ModelRef.parse(r)
    text, weight = r
    return ModelRef.parse(text, weight)


def _whole(value: Any, what: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"of at least {low}"
        raise BadInput(f"{what} takes a whole number {span}; got {value!r}")


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
    """The token in *token_file*, else ``$MLOPS_SERVE_TOKEN``, else None."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise BadInput(f"cannot read --token-file: {e.strerror}") from None
        if not token:
            raise BadInput(f"--token-file {token_file} is empty")
        return token
    return os.environ.get("MLOPS_SERVE_TOKEN") or None

