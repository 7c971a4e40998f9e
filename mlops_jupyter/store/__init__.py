"""The store: metadata (SQLAlchemy Core; SQLite by default) and blobs (content-addressed)."""

from __future__ import annotations

import threading

from ..config import Settings, settings as _settings
from .blobs import BlobStore
from .metadata import MetadataStore

__all__ = ["Store", "open_store", "close_store", "BlobStore", "MetadataStore"]


class Store:
    """One project's metadata and blobs, opened together."""

    def __init__(self, cfg: Settings):
        self.settings = cfg
        self.meta = MetadataStore(cfg.store_url)
        self.blobs = BlobStore(cfg.artifacts_url)
        self._writer = None
        self._lock = threading.Lock()
        self.crashed_on_open = self.meta.reap_crashed()

    @property
    def writer(self):
        """The background writer that batches metric points and other small writes."""
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    from ..tracking.writer import Writer

                    self._writer = Writer(self.meta)
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.meta.close()


_current: Store | None = None
_current_key: tuple | None = None
_open_lock = threading.Lock()


def open_store(cfg: Settings | None = None) -> Store:
    """The process-wide store for the current project (opened once, reused)."""
    global _current, _current_key
    cfg = cfg or _settings()
    key = (cfg.store_url, cfg.artifacts_url)
    with _open_lock:
        if _current is not None and _current_key == key:
            return _current
        if _current is not None:
            _current.close()
        _current = Store(cfg)
        _current_key = key
        return _current


def current_store() -> Store | None:
    return _current


def close_store() -> None:
    """Flush and close the process-wide store (tests call this between projects)."""
    global _current, _current_key
    with _open_lock:
        if _current is not None:
            _current.close()
        _current = None
        _current_key = None
