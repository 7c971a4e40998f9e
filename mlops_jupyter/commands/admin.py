"""The project and its store: ``init``, ``audit``, ``access grant|revoke|ls``, ``key generate|id``,
``migrate``, ``gc``, ``fsck``."""

from __future__ import annotations

import argparse
import os

from ..exceptions import BadInput
from .context import project_store
from .values import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``init`` and the administration commands."""
    p = subparsers.add_parser("init", help="create .mlops/ here (or at the git root)")
    p.add_argument("path", nargs="?", help="project folder (default: git root or working directory)")
    p.add_argument("--store", metavar="URL", help="metadata store URL (default: SQLite in .mlops/)")
    p.add_argument("--artifacts", metavar="URL", help="blob store URL (default: .mlops/objects)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="mirror every run to this Weights & Biases project "
                                                             "(in the background; WANDB_MODE is honoured)")
    p.set_defaults(func=_init)

    p = subparsers.add_parser("audit", help="the audit log: alias moves, deletions, promotions, access grants (who, "
                                            "when, what, from, to)")
    p.add_argument("--action", help="only this action (alias.move) or family (alias)")
    p.add_argument("--user", metavar="NAME", help="only what NAME did")
    p.add_argument("--since", help="from (24h, 7d, or an ISO date)")
    p.add_argument("--last", type=positive_int, metavar="N", help="only the N newest entries")
    p.set_defaults(func=_audit)

    p = subparsers.add_parser("access", help="who may do what on the shared PostgreSQL store: access grant USER "
                                             "viewer|editor|admin, access revoke USER, access ls")
    asub = p.add_subparsers(dest="action", metavar="grant|revoke|ls")
    asub.required = True
    ag = asub.add_parser("grant", help="make USER a viewer (reads), editor (logs runs and data, moves unprotected "
                                       "aliases) or admin (also protected aliases, deletions, gc, grants)")
    ag.add_argument("user")
    ag.add_argument("role", choices=["viewer", "editor", "admin"])
    ag.add_argument("--password-env", metavar="VAR", help="set USER's database password from this environment "
                                                          "variable (never on the command line)")
    ag.set_defaults(func=_access_grant)
    ar = asub.add_parser("revoke", help="take USER's access away")
    ar.add_argument("user")
    ar.set_defaults(func=_access_revoke)
    al = asub.add_parser("ls", help="users and their roles")
    al.set_defaults(func=_access_ls)

    p = subparsers.add_parser("key", help="the encryption-at-rest key: key generate [--out FILE], key id")
    ksub = p.add_subparsers(dest="action", metavar="generate|id")
    ksub.required = True
    kg = ksub.add_parser("generate", help="a new random 256-bit key: into FILE (mode 600, never overwritten), "
                                          "or printed in a terminal")
    kg.add_argument("--out", metavar="FILE", help="write the key here (then MLOPS_ENCRYPTION_KEY_FILE=FILE or "
                                                  "[encryption] key_file)")
    kg.set_defaults(func=_key_generate)
    ki = ksub.add_parser("id", help="the id of the key this project uses (compare with teammates'; the key itself "
                                    "is never shown)")
    ki.set_defaults(func=_key_id)

    p = subparsers.add_parser("migrate", help="copy a local project into a shared store: migrate --from .mlops --to "
                                              "postgresql+psycopg://... --artifacts s3://...; again: a no-op")
    p.add_argument("--from", dest="source", default=".mlops", metavar="PATH", help="the local project (default .mlops)")
    p.add_argument("--to", required=True, metavar="URL", help="the shared metadata store's URL")
    p.add_argument("--artifacts", metavar="URL", help="where the blobs go (default: MLOPS_ARTIFACTS_URL)")
    p.set_defaults(func=_migrate)

    p = subparsers.add_parser("gc", help="delete blobs that nothing references")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.set_defaults(func=_gc)

    p = subparsers.add_parser("fsck", help="verify every blob, and that PyTorch and Keras model files open as their "
                                           "archives; exit code 1 if any is corrupted, missing or damaged")
    p.set_defaults(func=_fsck)


def _init(ns, ctx):
    from ..config import init_project, settings
    from ..store import close_store

    root = init_project(ns.path, ns.store, ns.artifacts, wandb=ns.wandb)
    close_store()
    cfg = settings(root)
    from ..store import open_store

    open_store(cfg)
    from ..tracking.redact import redact_urls

    ctx.out(f"mlops project in {root / '.mlops'} (metadata: {redact_urls(cfg.store_url)}; "
            f"blobs: {redact_urls(cfg.artifacts_url)})")
    if ns.store and redact_urls(ns.store) != ns.store:
        ctx.out("the password was not written to .mlops/config.toml: this process passes it in PGPASSWORD; "
                "elsewhere set PGPASSWORD or add it to ~/.pgpass (libpq reads both), or set MLOPS_STORE_URL")
    from ..integrations import wandb_mirror

    project = wandb_mirror.target(cfg)
    if project:
        mode = os.environ.get("WANDB_MODE", "online")
        ctx.out(f"runs are mirrored to W&B {project} (WANDB_MODE={mode}; in the background: W&B never blocks a cell)")
    return None


def _audit(ns, ctx):
    from ..monitoring.sources import parse_time
    from ..store.audit import entries

    df = entries(project_store(), action=ns.action, user=ns.user, since=parse_time(ns.since) if ns.since else None,
                 limit=ns.last)
    if not ctx.rich_display and not df.empty:  # as text: times to the second, details as k=v
        df = df.fillna("").assign(at=df["at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                       detail=df["detail"].map(lambda d: "" if not d else ", ".join(f"{k}={v}" for k, v in d.items())))
    return df


def _access_grant(ns, ctx):
    from ..store import access

    password = None
    if ns.password_env:
        password = os.environ.get(ns.password_env)
        if not password:
            raise BadInput(f"--password-env {ns.password_env}: that environment variable is not set")
    ctx.out(access.grant(project_store(), ns.user, ns.role, password))
    return None


def _access_revoke(ns, ctx):
    from ..store import access

    ctx.out(access.revoke(project_store(), ns.user))
    return None


def _access_ls(ns, ctx):
    import pandas as pd

    from ..store import access

    return pd.DataFrame(list(access.roles(project_store()).items()), columns=["user", "role"])


def _key_generate(ns, ctx):
    from ..store.crypto import KEY_FILE_ENV, generate_key, write_key_file

    key = generate_key()
    if not ns.out:
        if ctx.output_is_saved:
            raise BadInput("key generate: a key printed in a cell is saved with the notebook; give --out FILE")
        ctx.out(key)  # only the key: export MLOPS_ENCRYPTION_KEY=$(mlops key generate)
        return None
    ident = write_key_file(ns.out, key)
    ctx.out(f"key {ident} written to {ns.out} (mode 600); use it with {KEY_FILE_ENV}={ns.out} or "
            f"[encryption] key_file, and keep a copy: blobs sealed with it cannot be read without it")
    return None


def _key_id(ns, ctx):
    from ..config import settings
    from ..store.crypto import load_key

    try:
        cfg = settings(create=False)
    except BadInput:  # no project here: the environment's key, if any
        cfg = None
    key = load_key(cfg)
    ctx.out("no encryption key is set: new blobs are stored as they are" if key is None
            else f"key {key.id_hex} (from {key.source})")
    return None


def _migrate(ns, ctx):
    from ..store.migrate import migrate

    report = migrate(ns.source, ns.to, ns.artifacts, progress=ctx.progress("copying blobs"), out=ctx.out)
    ctx.out(str(report))
    return None


def _gc(ns, ctx):
    from ..store.maintenance import gc

    report = gc(project_store(), dry_run=ns.dry_run)
    ctx.out(str(report))
    return None


def _fsck(ns, ctx):
    from ..store.maintenance import fsck

    report = fsck(project_store(), progress=ctx.extra.get("progress"))
    ctx.out(str(report))
    ctx.extra["exit_code"] = 0 if report.ok else 1
    return None
