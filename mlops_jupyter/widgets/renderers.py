"""How the notebook shows each result type: the widgets functions that draw them, registered with
:mod:`mlops_jupyter.rendering`.

``mlops_jupyter/__init__.py`` calls :func:`register_all`, so the renderers are in place whenever
the package is imported.
Types and renderers are named by strings: registering imports neither the domain modules nor the
drawing code (pandas, ipywidgets, matplotlib), which load when an object is first shown.
"""

from __future__ import annotations

from ..rendering import HTML, INTERACTIVE, LIVE, TERMINAL, TEXT, register

_PKG = "mlops_jupyter"

# (result type, format, renderer), the type under mlops_jupyter., the renderer under mlops_jupyter.widgets.
RENDERERS = [
    ("tracking.query.RunRecord", HTML, "runs_view:run_html"),
    ("tuning.report.StudyReport", HTML, "tuning_view:study_html"),
    ("tuning.report.StudyReport", LIVE, "tuning_view:study_live"),
    ("tracking.query.RunRecord", INTERACTIVE, "runs_view:show_run"),
    ("tracking.query.Comparison", HTML, "runs_view:compare_html"),
    ("tracking.query.Comparison", INTERACTIVE, "runs_view:show_compare"),
    ("tracking.query.RunsFrame", INTERACTIVE, "views:show_runs_frame"),
    ("tracking.query.RunsFrame", HTML, "html:runs_frame_html"),
    ("data.catalog.DatasetVersion", HTML, "html:dataset_version_html"),
    ("data.catalog.DatasetVersion", INTERACTIVE, "views:show_dataset_version"),
    ("data.api.FilesDiff", HTML, "html:files_diff_html"),
    ("data.graph.Lineage", HTML, "html:lineage_svg"),
    ("data.frames.TableDiff", HTML, "html:table_diff_html"),
    ("data.frames.CheckReport", HTML, "html:check_html"),
    ("models.registry.ModelVersion", HTML, "html:model_version_html"),
    ("models.explain.Explanation", HTML, "explain_view:static_html"),
    ("models.explain.Explanation", INTERACTIVE, "explain_view:show"),
    ("evaluation.report.Evaluation", HTML, "evaluation_view:evaluation_html"),
    ("evaluation.report.Evaluation", TEXT, "evaluation_view:evaluation_text"),
    ("evaluation.report.Evaluation", TERMINAL, "evaluation_view:evaluation_text"),
    ("governance.card.ModelCard", HTML, "card_view:card_html"),
    ("governance.card.ModelCard", "markdown", "card_view:card_markdown"),
    ("governance.card.ModelCard", "page", "card_view:page_html"),
    ("governance.card.ModelCard", TEXT, "card_view:card_markdown"),
    ("governance.card.ModelCard", TERMINAL, "card_view:card_markdown"),
    ("governance.audit.AuditReport", HTML, "card_view:audit_html"),
    ("governance.audit.AuditReport", TEXT, "card_view:audit_text"),
    ("governance.audit.AuditReport", TERMINAL, "card_view:audit_text"),
    ("monitoring.drift.DriftReport", HTML, "drift_view:report_html"),
    ("monitoring.drift.DriftReport", INTERACTIVE, "drift_view:show"),
    ("monitoring.perf.MonitorReport", HTML, "drift_view:monitor_html"),
    ("monitoring.perf.MonitorReport", INTERACTIVE, "drift_view:show_monitor"),
    # what `mlops` prints in a terminal
    ("commands.context.Listing", TERMINAL, "terminal:render_listing"),
    ("commands.context.ListingFrame", TERMINAL, "terminal:render_listing_frame"),
    # the listings in a notebook (%mlops data ls, model ls, model history): a table for people
    ("commands.context.Listing", HTML, "html:listing_html"),
    ("commands.context.ListingFrame", HTML, "html:listing_frame_html"),
    ("commands.context.ListingFrame", TEXT, "terminal:listing_frame_text"),
    ("tracking.query.RunsFrame", TERMINAL, "terminal:render_runs"),
    ("tracking.query.RunRecord", TERMINAL, "terminal:render_run"),
    ("tracking.query.Comparison", TERMINAL, "terminal:render_compare"),
    ("tuning.report.StudyReport", TERMINAL, "tuning_view:study_text"),
    ("data.catalog.DatasetVersion", TERMINAL, "terminal:render_version"),
    ("models.registry.ModelVersion", TERMINAL, "terminal:render_model"),
]


def register_all() -> None:
    for result_type, fmt, renderer in RENDERERS:
        register(f"{_PKG}.{result_type}", fmt, f"{_PKG}.widgets.{renderer}", replace=True)
    register("pandas.DataFrame", TERMINAL, f"{_PKG}.widgets.terminal:render_frame", replace=True)
    # a result without an interactive view of its own is displayed as its text and HTML
    register("builtins.object", INTERACTIVE, f"{_PKG}.widgets.views:show_formats", replace=True)
