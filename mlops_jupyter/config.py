"""Project discovery and settings.

A project is a folder holding ``.mlops/``, found by walking up from the working
directory as git finds ``.git``. Settings come, strongest first, from environment
variables (``MLOPS_STORE_URL``, ``MLOPS_ARTIFACTS_URL``, ``MLOPS_HOME``), then
``.mlops/config.toml``, then defaults (SQLite and a local blob store inside
``.mlops/``).

Blobs are encrypted when a key is given: ``MLOPS_ENCRYPTION_KEY`` (hex or base64 of 32 bytes,
read by ``store.crypto.load_key`` and never kept in the settings), or a key file named by
``MLOPS_ENCRYPTION_KEY_FILE`` or by ``key_file`` under ``[encryption]`` in the config file
(relative to the project folder).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import BadInput

MLOPS_DIR = ".mlops"
CONFIG_FILE = "config.toml"


_WANDB_PROJECT = re.compile(r"^(?:[A-Za-z0-9_.-]{1,64}/)?[A-Za-z0-9_.-]{1,128}$")


def check_wandb_project(value: str) -> str:
    """*value* as a W&B project (``PROJECT`` or ``ENTITY/PROJECT``); BadInput otherwise."""
    value = str(value).strip()
    if not _WANDB_PROJECT.match(value):
        raise BadInput(f"W&B project must be PROJECT or ENTITY/PROJECT (letters, digits, - _ .), got {value!r:.80}")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` (or a number of seconds) -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text <= 0:
            raise BadInput(f"{what} must be above 0, got {text}")
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise BadInput(f"{what} {text!r} is not a duration like 30m, 24h, 7d or 2w")
    return float(m.group(1)) * _UNITS[m.group(2)]


DEFAULT_START: str | None = None  # where to look when no start is given (a Jupyter server's root folder)


def find_root(start: str | os.PathLike | None = None) -> Path | None:
    """Return the nearest folder at or above *start* that holds ``.mlops/``."""
    home = os.environ.get("MLOPS_HOME")
    if home:
        return Path(home).resolve()
    here = Path(start or DEFAULT_START or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MLOPS_DIR).is_dir():
            return folder
    return None


def git_root(start: str | os.PathLike | None = None) -> Path | None:
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path}: not valid TOML ({e})") from None


def toml_value(v: Any) -> str:
    """*v* in TOML syntax on one line (the one TOML value writer: config.toml and job.toml).

    Inline tables cannot span lines in TOML 1.0, so neither does anything this writes."""
    import json
    import math

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # keys quoted: a mapping's keys need not be bare TOML keys
        return "{ " + ", ".join(f"{toml_value(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    # JSON's string syntax is TOML's basic string (newlines escaped too), but for DEL, which TOML
    # wants escaped
    return json.dumps(str(v), ensure_ascii=False).replace("\x7f", "\\u007f")


def _write_toml(path: Path, data: dict) -> None:
    lines = []
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for k, v in data.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {toml_value(v)}")
    for name, table in tables.items():
        lines.append(f"\n[{name}]")
        for k, v in table.items():
            lines.append(f"{k} = {toml_value(v)}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines).lstrip("\n") + "\n", encoding="utf-8")  # TOML is UTF-8
    os.replace(tmp, path)


@dataclass
class Settings:
    """Where a project keeps its metadata and blobs."""

    root: Path
    store_url: str
    artifacts_url: str
    extra: dict = field(default_factory=dict)
    encryption_key_file: str | None = None

    @property
    def mlops_dir(self) -> Path:
        return self.root / MLOPS_DIR


def settings(root: Path | None = None, create: bool = True) -> Settings:
    """Resolve the project settings, creating ``.mlops/`` on first use when *create*."""
    root = root or find_root()
    if root is None:
        if not create:
            raise BadInput("no .mlops/ project here or above; run `mlops init`")
        root = init_project()
    data = read_toml(root / MLOPS_DIR / CONFIG_FILE)
    store = os.environ.get("MLOPS_STORE_URL") or data.get("store_url")
    arts = os.environ.get("MLOPS_ARTIFACTS_URL") or data.get("artifacts_url")
    mdir = root / MLOPS_DIR
    enc = data.get("encryption") if isinstance(data.get("encryption"), dict) else {}
    key_file = os.environ.get("MLOPS_ENCRYPTION_KEY_FILE") or enc.get("key_file")
    if key_file is not None and not isinstance(key_file, str):
        raise BadInput(f"{mdir / CONFIG_FILE}: [encryption] key_file must be a path string")
    return Settings(
        root=root,
        store_url=store or f"sqlite:///{mdir / 'mlops.db'}",
        artifacts_url=arts or str(mdir / "objects"),
        extra=data,
        encryption_key_file=str(root / Path(key_file).expanduser()) if key_file else None,
    )


def _without_password(url: str) -> str:
    """A database URL as written to config.toml: never with its password. A PostgreSQL password goes
    to this process's ``PGPASSWORD`` instead (libpq reads it, and ``~/.pgpass``, for every
    connection; processes started from here inherit it)."""
    import sqlalchemy as sa

    try:
        u = sa.engine.make_url(url)
    except Exception:  # not a URL SQLAlchemy knows: open_store says so in one line
        return url
    if u.password is None:
        return url
    if u.get_backend_name() != "postgresql":
        raise BadInput(f"{u.render_as_string(hide_password=True)}: a password in the store URL would be written to "
                       f"{MLOPS_DIR}/{CONFIG_FILE}; set MLOPS_STORE_URL in the environment instead")
    os.environ["PGPASSWORD"] = str(u.password)
    bare = sa.engine.URL.create(u.drivername, username=u.username, host=u.host, port=u.port, database=u.database,
                                query=u.query)  # (URL.set(password=None) would keep the password)
    return bare.render_as_string(hide_password=False)


def init_project(
    path: str | os.PathLike | None = None,
    store_url: str | None = None,
    artifacts_url: str | None = None,
    wandb: str | None = None,
) -> Path:
    """Create ``.mlops/`` in *path* (default: the git root, else the working directory).

    Inside a git repository ``.mlops/`` is added to ``.gitignore``. Running it again
    keeps what is there and only updates the URLs (and the W&B project) given.
    """
    if path is not None:
        root = Path(path).resolve()
    else:
        root = Path(os.environ["MLOPS_HOME"]).resolve() if os.environ.get("MLOPS_HOME") else (
            git_root(DEFAULT_START) or Path(DEFAULT_START or Path.cwd()).resolve()
        )
    mdir = root / MLOPS_DIR
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / "objects").mkdir(exist_ok=True)
    cfg_path = mdir / CONFIG_FILE
    data = read_toml(cfg_path)
    if store_url:
        data["store_url"] = _without_password(store_url)
    if artifacts_url:
        data["artifacts_url"] = artifacts_url
    if wandb:
        data["wandb"] = {**(data.get("wandb") if isinstance(data.get("wandb"), dict) else {}),
                         "project": check_wandb_project(wandb)}
    if store_url or artifacts_url or wandb or not cfg_path.exists():
        data.setdefault("version", 1)
        _write_toml(cfg_path, data)
    if (root / ".git").exists():
        gi = root / ".gitignore"
        existing = gi.read_text() if gi.exists() else ""
        if not any(line.strip() in (".mlops", ".mlops/", "/.mlops", "/.mlops/") for line in existing.splitlines()):
            sep = "" if not existing or existing.endswith("\n") else "\n"
            gi.write_text(existing + sep + ".mlops/\n")
    return root
