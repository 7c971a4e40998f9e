"""The example notebooks as a user sees them: JupyterLab on 127.0.0.1, Debian's Chromium driven by
Playwright runs the quickstart and the monitoring notebook cell by cell (Run All Cells), and every
chart, table and widget they show is looked at in the light and the dark theme.

Screenshots are kept in ``build/test-artifacts/notebooks/`` (git-ignored): one per view and theme."""

import re
import shutil
from pathlib import Path

import pytest

from .test_lab_browser import TOKEN, browser_page, lab, set_theme  # noqa: F401 - the JupyterLab fixture
from .test_notebooks import EXAMPLES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "notebooks"

# the cells whose output is a picture or a table, by the start of their source
VIEWS = {
    "quickstart.ipynb": {"live-chart": "%mlops track start", "runs-table": "%mlops runs",
                         "model-card": "%mlops model show", "shap": "%mlops explain breast-cancer@staging X_test --rows",
                         "lime": "%mlops explain breast-cancer@staging X_test --method lime",
                         "alias-history": "%mlops model history"},
    "monitoring.ipynb": {"drift": "report = %mlops drift", "monitor": "%mlops monitor {model}@production",
                         "models": "%mlops model ls"},
}


def luminance(png: bytes) -> float:
    """The mean brightness (0-255) of a screenshot."""
    import io

    from PIL import Image, ImageStat

    return ImageStat.Stat(Image.open(io.BytesIO(png)).convert("L")).mean[0]


def cell(page, source_start: str):
    """The notebook cell whose source starts with *source_start*."""
    index = page.evaluate(
        """(start) => [...document.querySelectorAll('.jp-Notebook .jp-Cell')].findIndex(
               c => (c.querySelector('.jp-InputArea-editor .cm-content')?.textContent || '').trim().startsWith(start))""",
        source_start)
    assert index >= 0, f"no cell starts with {source_start!r}"
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_all(page, expect, url: str, name: str) -> None:
    page.goto(f"{url}/lab/tree/{name}?token={TOKEN}")
    page.locator(".jp-NotebookPanel").first.wait_for()
    choose = page.locator(".jp-Dialog button", has_text="Select")
    try:  # a notebook saved without a kernel: JupyterLab asks which one, as it would a user
        choose.first.wait_for(timeout=5_000)
        choose.first.click()
    except Exception:  # noqa: BLE001 - the playwright timeout: no question asked
        pass
    expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # done when the last code cell has its execution count and the kernel is idle again
    n = page.evaluate("() => document.querySelectorAll('.jp-Notebook .jp-CodeCell').length")
    last = page.locator(".jp-Notebook .jp-CodeCell").nth(n - 1)
    try:
        expect(last.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"), timeout=240_000)
    except AssertionError:
        page.screenshot(path=str(SHOTS / f"{Path(name).stem}-stuck.png"), full_page=True)
        said = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        raise AssertionError(f"{name} did not finish; stderr: {said[-3:]}") from None
    expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=120_000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                          has_text="Traceback")
    assert errors.count() == 0, errors.first.inner_text()[:2000]


def look(page, name: str, theme: str) -> dict:
    """Screenshot every view of the open notebook; the brightness of each chart drawn by Vega."""
    seen = {}
    for view, start in VIEWS[name].items():
        c = cell(page, start)
        c.scroll_into_view_if_needed()
        outputs = c.locator(".jp-Cell-outputArea").first
        shot = SHOTS / f"{Path(name).stem}-{view}-{theme}.png"
        outputs.screenshot(path=str(shot))
        charts = c.locator(".mlops-output-chart .vega-embed")
        if charts.count():
            page.wait_for_timeout(300)
            seen[view] = luminance(charts.first.screenshot())
    return seen


@pytest.mark.timeout(900)
def test_example_notebooks_in_jupyterlab_light_and_dark(lab, project):  # noqa: F811 - the fixture
    from playwright.sync_api import expect

    url, home = lab
    # every cell in the page (JupyterLab otherwise draws only the cells near the viewport)
    tracker = home / "user-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    for name in ("quickstart.ipynb", "monitoring.ipynb", "retraining.ipynb"):
        shutil.copyfile(EXAMPLES / name, project / name)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with browser_page(home / "chromium-notebooks", SHOTS, viewport={"width": 1400, "height": 1000}) as page:
        page.set_default_timeout(60_000)
        for name in ("quickstart.ipynb", "monitoring.ipynb"):
            run_all(page, expect, url, name)
            # the charts are drawn by JupyterLab's Vega-Lite renderer, not shown as their SVG copy
            for view in ("live-chart", "shap", "lime") if name == "quickstart.ipynb" else ("monitor",):
                c = cell(page, VIEWS[name][view])
                c.scroll_into_view_if_needed()  # JupyterLab draws the cells near the viewport
                # by the extension's renderer, which follows the theme
                expect(c.locator(".mlops-output-chart .vega-embed").first).to_be_visible(timeout=30_000)
            light = look(page, name, "light")
            set_theme(page, expect, "JupyterLab Dark")
            dark = look(page, name, "dark")
            set_theme(page, expect, "JupyterLab Light")
            for view, bright in light.items():  # each chart follows the theme
                assert bright > 180 and dark[view] < 110, (name, view, bright, dark[view])
            page.keyboard.press("Control+s")
    print(f"screenshots: {SHOTS}")
