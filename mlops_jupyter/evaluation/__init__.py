"""Evaluation that decides: every figure of a model version on labelled rows, its curves, its slices
and fairness, and a comparison with a baseline version, stored with both versions.

    ev = mj.evaluate("churn@v3", "test@v2", target="churned", by=["region"], baseline="churn@production")

:mod:`.evaluate` is the verb, :mod:`.metrics` the figures (scikit-learn's functions), :mod:`.slices`
the groups (fairlearn's ``MetricFrame``), :mod:`.compare` the bootstrap against a baseline,
:mod:`.store` the stored documents and :mod:`.pictures` the charts.
"""
