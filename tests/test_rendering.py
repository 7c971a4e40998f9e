"""Result objects are drawn by the renderers the faces register, looked up by (type, format)."""

import subprocess

import pytest

from mlops_jupyter import rendering
from mlops_jupyter.widgets import renderers

from .conftest import PY, python_env


class Receipt:
    def __init__(self, total):
        self.total = total

    def __str__(self):
        return f"total <{self.total}>"

    def _repr_html_(self):
        return rendering.render(self, rendering.HTML)


class GiftReceipt(Receipt):
    pass


class Unregistered(Receipt):
    """Subclasses Receipt, but each test registers what it needs: nothing here by default."""


class Viewed(Receipt):
    def _ipython_display_(self):
        rendering.show(self)


def bold_total(r) -> str:
    return f"<b>{r.total}</b>"


@pytest.fixture(autouse=True)
def registrations():
    """Each test starts from the package's registrations and leaves them as it found them."""
    yield
    for cls in (Receipt, GiftReceipt, Unregistered, Viewed):
        for fmt in (rendering.HTML, rendering.TEXT, rendering.INTERACTIVE):
            rendering.unregister(cls, fmt)
    renderers.register_all()


@pytest.fixture(scope="module")
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def test_a_registered_renderer_is_used_by_repr_html():
    rendering.register(Receipt, rendering.HTML, bold_total)
    assert Receipt(3)._repr_html_() == "<b>3</b>"


def test_a_subclass_is_drawn_by_its_base_class_renderer_unless_it_has_its_own():
    rendering.register(Receipt, rendering.HTML, bold_total)
    assert GiftReceipt(4)._repr_html_() == "<b>4</b>"
    rendering.register(GiftReceipt, rendering.HTML, lambda r: "a gift")
    assert GiftReceipt(4)._repr_html_() == "a gift" and Receipt(4)._repr_html_() == "<b>4</b>"


def test_a_renderer_named_by_reference_is_imported_on_first_use():
    rendering.register(f"{__name__}.Receipt", rendering.HTML, f"{__name__}:bold_total")
    assert rendering.renderer_for(Receipt, rendering.HTML) is bold_total
    assert Receipt(5)._repr_html_() == "<b>5</b>"


def test_registering_twice_needs_replace():
    from mlops_jupyter.exceptions import BadInput

    rendering.register(Receipt, rendering.HTML, bold_total)
    with pytest.raises(BadInput, match="already registered"):
        rendering.register(Receipt, rendering.HTML, str)
    rendering.register(Receipt, rendering.HTML, lambda r: "new", replace=True)
    assert Receipt(1)._repr_html_() == "new"


def test_an_unregistered_type_falls_back_to_its_text():
    r = Unregistered(7)
    assert rendering.renderer_for(Unregistered, rendering.HTML) is None
    assert r._repr_html_() == "<pre>total &lt;7&gt;</pre>"
    assert rendering.render(r, rendering.TEXT) == "total <7>"
    assert rendering.render(r, rendering.PNG) is None  # IPython's "not in this format"
    assert rendering.render(r, "application/x-never-registered") is None


def test_an_unregistered_type_shows_as_text_and_html_in_ipython(shell):
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        assert shell.display_formatter.format(Viewed(2)) == ({}, {})  # _ipython_display_ did the showing
    (shown,) = out.outputs  # by the widgets' default view, registered for object
    assert shown.data["text/plain"].startswith("<tests.test_rendering.Viewed object")
    assert shown.data["text/html"] == "<pre>total &lt;2&gt;</pre>"


def test_with_no_view_registered_at_all_show_prints_the_text(capsys):
    rendering.unregister(object, rendering.INTERACTIVE)
    rendering.show(Viewed(8))
    assert capsys.readouterr().out == "total <8>\n"


def test_an_interactive_view_is_what_ipython_displays(shell):
    seen = []
    rendering.register(Viewed, rendering.INTERACTIVE, seen.append)
    v = Viewed(1)
    assert shell.display_formatter.format(v) == ({}, {})
    assert seen == [v]


def test_importing_the_package_registers_renderers_without_importing_domain_or_drawing_code(tmp_path):
    code = (
        "import sys, mlops_jupyter\n"
        "from mlops_jupyter import rendering as R\n"
        "assert 'mlops_jupyter.data.api.FilesDiff' in R.registered(R.HTML), R.registered(R.HTML)\n"
        "assert 'mlops_jupyter.monitoring.drift.DriftReport' in R.registered(R.INTERACTIVE)\n"
        "assert 'mlops_jupyter.models.explain.Explanation' in R.registered(R.INTERACTIVE)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('pandas', 'ipywidgets', 'matplotlib')\n"
        "          or m.startswith(('mlops_jupyter.data', 'mlops_jupyter.models', 'mlops_jupyter.monitoring',\n"
        "                           'mlops_jupyter.tracking.query', 'mlops_jupyter.widgets.html',\n"
        "                           'mlops_jupyter.widgets.views', 'mlops_jupyter.widgets.drift_view',\n"
        "                           'mlops_jupyter.widgets.explain'))]\n"
        "print(','.join(loaded))\n"
    )
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=python_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"imported when registering: {r.stdout}"


def test_a_domain_object_in_ipython_is_drawn_by_the_widgets_renderer(shell):
    from mlops_jupyter.data.api import FilesDiff
    from mlops_jupyter.widgets.html import files_diff_html

    d = FilesDiff("raw@v1", "raw@v2", added=[("new.csv", 10)], changed=[("a.csv", 1, 2)], unchanged=3)
    assert rendering.renderer_for(FilesDiff, rendering.HTML) is files_diff_html
    data, _ = shell.display_formatter.format(d)
    assert data["text/html"] == files_diff_html(d) and "new.csv" in data["text/html"]
    rendering.register(FilesDiff, rendering.HTML, lambda x: "<i>another face</i>", replace=True)
    assert shell.display_formatter.format(d)[0]["text/html"] == "<i>another face</i>"


def test_a_drift_report_in_ipython_is_shown_by_the_widgets_view(shell):
    import pandas as pd
    from IPython.utils.capture import capture_output

    from mlops_jupyter.monitoring.drift import compute
    from mlops_jupyter.widgets.drift_view import report_html, show

    report = compute(pd.DataFrame({"x": range(50)}), pd.DataFrame({"x": range(25, 75)}))
    assert rendering.renderer_for(type(report), rendering.INTERACTIVE) is show
    with capture_output() as out:
        assert shell.display_formatter.format(report) == ({}, {})
    (shown,) = out.outputs  # outside a kernel the widget view shows its HTML
    assert shown.data["text/html"] == report_html(report) == report._repr_html_()


def test_every_registered_renderer_names_a_real_type_and_function():
    """The registrations are strings: a moved class or renamed function must fail here, not fall
    back to plain text in a user's notebook."""
    from mlops_jupyter import rendering
    from mlops_jupyter.registry import load_reference
    from mlops_jupyter.tracking.query import runs_frame
    from mlops_jupyter.widgets.renderers import RENDERERS

    made_on_use = {rendering.type_name(type(runs_frame([])))}  # a DataFrame subclass made when pandas loads
    for result_type, _fmt, renderer in RENDERERS:
        module, _, qualname = f"mlops_jupyter.{result_type}".rpartition(".")
        if f"{module}.{qualname}" not in made_on_use:
            assert isinstance(load_reference(f"{module}:{qualname}"), type), result_type
        assert callable(load_reference(f"mlops_jupyter.widgets.{renderer}")), renderer
