"""Data versioning: content-addressed files, folders and DataFrames, with diff, checkout and lineage.

    import mlops_jupyter as mj
    mj.data.add("data/raw/", name="raw", message="October export")
    mj.data.add(train_df, name="train")
    df = mj.data.load("train@v2")
"""

from .api import add, check, checkout, datasets, diff, get, lineage, load, show, versions
from .catalog import DatasetVersion, parse_ref

__all__ = ["add", "check", "checkout", "datasets", "diff", "get", "lineage", "load", "show", "versions",
           "DatasetVersion", "parse_ref"]
