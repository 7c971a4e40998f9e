"""The store: metadata (SQLAlchemy Core; SQLite by default) and blobs (content-addressed)."""

from __future__ import annotations

import threading

from ..config import Settings, settings as _settings

__all__ = ["Store", "open_store", "close_store", "BlobStore", "MetadataStore"]


def __getattr__(name: str):
    # SQLAlchemy and the blob store load when a store is opened, not when the package is imported:
    # the terminal's quick listings (store.quickread) read without them.
    if name == "MetadataStore":
        from .metadata import MetadataStore

        return MetadataStore
    if name == "BlobStore":
        from .blobs import BlobStore

        return BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Store:
    """One project's metadata and blobs, opened together."""

    def __init__(self, cfg: Settings, key=None):
        from .blobs import BlobStore
        from .crypto import load_key
        from .metadata import MetadataStore

        self.settings = cfg
        self.meta = MetadataStore(cfg.store_url)
        # the encryption key (None: blobs are written in the clear); open_store loads it
        self.blobs = BlobStore(cfg.artifacts_url, key=key if key is not None else load_key(cfg))
        self._writer = None
        self._lock = threading.Lock()
        self.crashed_on_open = self.meta.reap_crashed()

    @property
    def writer(self):
        """The background writer that batches metric points and other small writes."""
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    from .writer import Writer

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
    from .crypto import load_key

    cfg = cfg or _settings()
    enc = load_key(cfg)  # setting or changing the key opens the store again
    key = (cfg.store_url, cfg.artifacts_url, enc.id if enc else None)
    with _open_lock:
        if _current is not None and _current_key == key:
            return _current
        if _current is not None:
            _current.close()
        _current = Store(cfg, key=enc)
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
