"""Evidently's side of bench.drift, run by the interpreter of its own virtual environment:
``python _evidently_drift.py REF.parquet CUR.parquet`` prints one JSON line (seconds, drifted)."""

import json
import os
import sys
import time

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry off: the benchmark makes no calls out
os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")

import pandas as pd  # noqa: E402

ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

num = [c for c in ref.columns if pd.api.types.is_numeric_dtype(ref[c]) and not pd.api.types.is_bool_dtype(ref[c])]
cat = [c for c in ref.columns if c not in num]
t0 = time.perf_counter()
definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=definition),
                                           Dataset.from_pandas(ref, data_definition=definition))
seconds = time.perf_counter() - t0
drifted = share = None
for m in snapshot.dict().get("metrics", []):
    if "DriftedColumnsCount" in str(m.get("metric_id", m.get("metric_name", ""))):
        v = m.get("value") or {}
        drifted, share = v.get("count"), v.get("share")
print(json.dumps({"seconds": seconds, "drifted": int(drifted) if drifted is not None else None, "drift_share": share,
                  "columns": len(ref.columns)}))
