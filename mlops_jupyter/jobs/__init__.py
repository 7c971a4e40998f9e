"""Running notebooks headlessly (papermill) as tracked executions."""

from .execute import execute_notebook

__all__ = ["execute_notebook"]
