"""Data versioning: content-addressed files, folders and DataFrames, with diff, checkout and lineage.

    import mlops_jupyter as mj
    mj.data.add("data/raw/", name="raw", message="October export")
    mj.data.add(train_df, name="train")
    df = mj.data.load("train@v2")
"""

import importlib

# The lineage graph lives in ``graph.py``, not ``lineage.py``: a submodule named like the ``lineage``
# function would replace it as this package's attribute whenever something imported the module first.
_LAZY = {**{name: ".api" for name in ("add", "check", "checkout", "dataset_records", "datasets", "diff", "get",
                                       "load", "show", "version_records", "versions")},
         "lineage": ".graph", "Lineage": ".graph",
         "DatasetVersion": ".catalog", "parse_ref": ".catalog"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    # The catalog (and SQLAlchemy) load on first use: `mlops data ls` in a terminal reads without them.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
