"""A tuning study in the JupyterLab panel, in a real browser (Debian's Chromium driven by Playwright):
a notebook runs ``mj.tune`` in the lab's own kernel; while it searches, the Studies tab marks the
study running and its detail view reads new trials as they are stored; at the end the view shows
the best trial, the four pictures (history, parallel coordinates, slices, importances) drawn by
JupyterLab's Vega-Lite renderer, and the trials linked to their runs. Light and dark theme.

Screenshots are kept in ``build/test-artifacts/tune/`` (git-ignored)."""

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from .test_lab_browser import browser_page, check_fits, lab, run_all_cells, set_theme  # noqa: F401 (the lab fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "tune"
TRIALS = 14

SEARCH = f"""import time
import mlops_jupyter as mj

def objective(trial):
    lr = trial.suggest_float("learning_rate", 1e-3, 0.3, log=True)
    depth = trial.suggest_int("max_depth", 2, 8)
    crit = trial.suggest_categorical("criterion", ["gini", "entropy"])
    loss = 1.0
    for epoch in range(4):
        time.sleep(0.3)
        loss = abs(lr - 0.05) * 4 + abs(depth - 5) / 10 + (0.05 if crit == "gini" else 0) + 0.5 / (epoch + 1)
        mj.log(val_loss=loss, step=epoch)
    return loss

study = mj.tune(objective, n_trials={TRIALS}, direction="minimize", metric="val_loss", name="gbm-search",
                seed=0, prune="median")"""


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SEARCH)]
    nbformat.write(nb, str(path))


def test_a_study_in_the_panel_live_then_whole_in_light_and_dark(lab, project):  # noqa: F811 (the fixture)
    from playwright.sync_api import expect

    url, home = lab
    _notebook(project / "search.ipynb")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with browser_page(home / "chromium-profile", SHOTS) as page:

        def shot(name):
            page.screenshot(path=str(SHOTS / f"{name}.png"))

        def charts_drawn(light):
            view = ".mlops-study-detail"
            expect(page.locator(f"{view} .vega-embed")).to_have_count(4)
            expect(page.locator(f"{view} [data-theme-light='{'false' if light else 'true'}']")).to_have_count(0)
            for key in ("history", "parallel", "slices", "importances"):
                expect(page.locator(f"{view} [data-chart='{key}'] .vega-embed svg, "
                                    f"{view} [data-chart='{key}'] .vega-embed canvas").first).to_be_visible()

        page.set_default_timeout(60_000)
        run_all_cells(page, url, "search.ipynb")

        # -- while it searches: the sidebar marks it running; the detail view follows the trials --
        page.locator("li.lm-TabBar-tab[data-id='mlops-panel']").click()
        page.locator(".mlops-tab[data-section='studies']").click()
        row = page.locator(".mlops-study-row[data-name='gbm-search']")
        expect(row.locator(".mlops-badge-running")).to_be_visible(timeout=90_000)
        check_fits(page.locator(".mlops-tab"))
        row.locator(".mlops-run-name").click()
        view = page.locator(".mlops-study-detail")
        expect(view.locator("h2")).to_have_text("Study gbm-search")
        expect(view.locator(".mlops-detail-head .mlops-badge-running")).to_be_visible()
        heading = view.locator("h3", has_text=re.compile(r"^Trials \(\d+\)$"))
        first = int(re.search(r"\d+", heading.text_content()).group())
        assert first < TRIALS, first
        # the view reads the study again on its own: more trials appear without a click
        expect(heading).not_to_have_text(f"Trials ({first})", timeout=30_000)
        page.locator(".mlops-tab[data-section='studies']").click()
        page.locator("#mlops-panel").screenshot(path=str(SHOTS / "light-sidebar-studies-running.png"))
        shot("light-study-running")

        # -- done: the whole study ------------------------------------------------------------
        expect(view.locator(".mlops-detail-head .mlops-badge-running")).to_have_count(0, timeout=120_000)
        expect(heading).to_have_text(f"Trials ({TRIALS})")
        expect(row.locator(".mlops-badge-running")).to_have_count(0, timeout=30_000)
        expect(row.locator(".mlops-study-best")).to_contain_text("best val_loss")
        check_fits(row.locator(".mlops-run-name, .mlops-study-best"))
        charts_drawn(light=True)
        states = view.locator(".mlops-trials tbody .mlops-badge")
        expect(states).to_have_count(TRIALS)
        pruned = view.locator(".mlops-trials tbody .mlops-badge-pruned").count()
        complete = view.locator(".mlops-trials tbody .mlops-badge-finished").count()
        assert pruned + complete == TRIALS and complete >= 5, (pruned, complete)
        assert pruned >= 1  # the median pruner stopped some trials from the values they logged
        best = view.locator(".mlops-best-trial")
        expect(best).to_contain_text("learning_rate")
        shot("light-study")
        page.locator("#mlops-panel").screenshot(path=str(SHOTS / "light-sidebar-studies.png"))
        view.locator("[data-chart='slices']").scroll_into_view_if_needed()
        shot("light-study-pictures")
        view.locator(".mlops-trials").scroll_into_view_if_needed()
        shot("light-study-trials")
        # a trial opens its run
        view.locator(".mlops-trials tbody tr").last.locator(".mlops-link").click()
        expect(page.locator(".mlops-run-detail h2")).to_have_text("trial 0")
        # the notebook's own view of the study, drawn in the cell's output as it ran
        page.locator("li.lm-TabBar-tab", has_text="search.ipynb").first.click()
        out = page.locator(".jp-OutputArea-output[data-mime-type='text/html']", has_text="Study gbm-search")
        expect(out).to_contain_text("best params")
        expect(out.locator("svg").first).to_be_visible()
        expect(page.locator(".jp-OutputArea-output", has_text="study gbm-search: 14 trial(s)")).to_be_visible()
        out.scroll_into_view_if_needed()
        shot("light-notebook")

        # -- the dark theme ------------------------------------------------------------------
        set_theme(page, expect, "JupyterLab Dark")
        page.locator("li.lm-TabBar-tab", has_text="Study gbm-search").first.click()
        charts_drawn(light=False)
        view.locator("h2").scroll_into_view_if_needed()
        shot("dark-study")
        view.locator("[data-chart='slices']").scroll_into_view_if_needed()
        shot("dark-study-pictures")
        view.locator(".mlops-trials").scroll_into_view_if_needed()
        shot("dark-study-trials")
        page.locator("#mlops-panel").screenshot(path=str(SHOTS / "dark-sidebar-studies.png"))
    import mlops_jupyter as mj

    rep = mj.study("gbm-search")
    assert len(rep.trials) == TRIALS and rep.counts().get("complete", 0) >= 5
    print(f"screenshots in {SHOTS}")
