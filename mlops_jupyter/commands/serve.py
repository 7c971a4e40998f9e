"""``serve``: a registered model over HTTP (in a notebook on a thread of the kernel, in a terminal in
the foreground); ``serve stop`` ends the notebook's servers."""

from __future__ import annotations

import argparse

from ..exceptions import BadInput
from .context import project_store
from .values import positive_float, positive_int, share


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``serve``."""
    p = subparsers.add_parser("serve", help="serve a registered model over HTTP: serve churn@production --port 8080 "
                                            "(in a notebook: in the background; `serve stop` ends it)")
    p.add_argument("ref", help="NAME@ALIAS or NAME@vN (or `stop`)")
    p.add_argument("--port", type=positive_int, help="port to listen on (default 8080); with `stop`: "
                                                     "which server (default: all)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (other than 127.0.0.1 needs a token)")
    p.add_argument("--token-file", help="file holding the bearer token (else $MLOPS_SERVE_TOKEN)")
    p.add_argument("--ab", help="split traffic by weight: churn@v3:0.9,churn@v4:0.1")
    p.add_argument("--tls-cert", help="certificate file: serve HTTPS")
    p.add_argument("--tls-key", help="key file for --tls-cert")
    p.add_argument("--pickle", action="store_true", help="allow serving a model stored as a pickle")
    p.add_argument("--workers", type=positive_int, help="worker processes (mlops serve only; default 1)")
    p.add_argument("--log-sample", type=share, default=1.0, metavar="SHARE",
                   help="share of requests logged to the store for monitoring (default 1: all; 0: none)")
    p.add_argument("--runtime", choices=["native", "onnx"], default="native",
                   help="native: the model's own library (default); onnx: convert with skl2onnx, run on onnxruntime")
    p.add_argument("--quantize", action="store_true", help="with --runtime onnx: dynamic int8 quantization")
    p.add_argument("--min-agreement", metavar="SHARE",
                   help="with --quantize: least share of predictions the quantized model must share with the "
                        "original (0 to 1)")
    p.add_argument("--batch", nargs="?", const="", metavar="max_size=ROWS,max_wait_ms=MS",
                   help="merge requests that arrive together into one model call of at most max_size rows "
                        "(default 64); none waits more than max_wait_ms (default 2) for company")
    p.add_argument("--reload-alias", type=positive_float, nargs="?", const=2.0, metavar="SECONDS",
                   help="follow the alias: when it moves, load the new version and switch without dropping "
                        "requests (checked every 2 s, or every SECONDS)")
    p.set_defaults(func=serve_model)


def serve_args(ref: str, **given) -> argparse.Namespace:
    """What ``serve REF`` parses to, with ``given`` on top: other commands that serve (``job serve``) take
    every serve default from here, so an option added to ``serve`` never leaves them behind."""
    parser = argparse.ArgumentParser(add_help=False)
    add_parser(parser.add_subparsers())
    ns = parser.parse_args(["serve", ref])
    unknown = set(given) - set(vars(ns))
    if unknown:
        raise TypeError(f"serve has no option {sorted(unknown)}")
    vars(ns).update(given)
    return ns


def serve_model(ns: argparse.Namespace, ctx) -> None:
    """Serve ``ns.ref`` (or ``ns.ab``'s split) as ``serve`` asks; also ``job serve``'s way to serve.

    Raises:
        BadInput: options that do not go together, an unknown model, a model that cannot be served.
    """
    from ..serving import server
    from ..serving.options import ServeOptions
    from ..serving.served import load_models

    if ns.ref == "stop":
        stopped = server.stop_background(ns.port)
        ctx.out("stopped " + ", ".join(stopped) if stopped else "no server was running")
        return None
    if ns.workers and ctx.has_kernel:
        raise BadInput("--workers is for `mlops serve` in a terminal; in a notebook the server runs on a thread of "
                       "the kernel")
    options = ServeOptions.from_user(
        ref=ns.ref, ab=ns.ab, host=ns.host, port=ns.port, token_file=ns.token_file, tls_cert=ns.tls_cert,
        tls_key=ns.tls_key, workers=ns.workers, allow_pickle=ns.pickle, log_sample=ns.log_sample,
        runtime=ns.runtime, quantize=ns.quantize, reload_alias=ns.reload_alias, batch=ns.batch,
        min_agreement=ns.min_agreement)
    # Resolved, loaded and prepared (with onnx: converted and checked) once, now: a ref or a model
    # that cannot be served is one line, not a dead server.
    served = load_models(options, project_store())
    if options.runtime == "onnx":
        for s in served:
            ctx.out(f"{s.ref}: {s.predictor.note}; predictions match the original on the signature example")
    note = "" if options.token else " (no token: listening on 127.0.0.1 only)"
    if ctx.has_kernel:  # the kernel outlives the cell: serve on a thread of it
        bg = server.start_background(options, preload=served)
        ctx.out(f"serving {options.refs_text} at {bg.url}{note}; stop with %mlops serve stop")
        return None
    ctx.out(f"serving {options.refs_text} at {options.url}{note}"
            f"{f' with {options.workers} workers' if options.workers > 1 else ''}; Ctrl-C stops")
    server.run_foreground(options, preload=served)
    return None
