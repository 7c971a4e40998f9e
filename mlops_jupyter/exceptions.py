"""Errors raised by the core API.

Every face translates them: the magic raises IPython's ``UsageError`` (one line, no
traceback), the CLI prints one line and exits with code 2, HTTP answers 4xx JSON.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Root of every error this package raises on purpose."""


class BadInput(MlopsError, ValueError):
    """A value given by the user cannot be used (bad name, bad expression, bad type)."""


class NotFound(MlopsError, LookupError):
    """A run, artifact, dataset or model the user named does not exist."""


class JobFailed(MlopsError):
    """A job execution failed (a cell raised); its run is recorded as failed. The CLI exits 1."""


class StoreError(MlopsError):
    """The store cannot be opened or is in a state we cannot work with."""


class PermissionDenied(StoreError):
    """The shared store's access control (PostgreSQL roles and policies) refused the write."""


class IntegrityError(StoreError):
    """A blob's content does not match its address."""

    def __init__(self, digest: str, actual: str | None = None):
        self.digest = digest
        self.actual = actual
        msg = f"blob {digest[:12]} is corrupted"
        if actual:
            msg += f" (content hashes to {actual[:12]})"
        super().__init__(msg)


def first_line(e: BaseException, limit: int = 300) -> str:
    """``TypeName: the first non-empty line of its message`` (cut at *limit*): the errors of torch,
    Keras and the model libraries run to many lines, and a refusal or a 422 is one."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:limit] if lines else ''}"
