"""End to end in a real browser: JupyterLab on 127.0.0.1 with a token, Debian's Chromium driven by
Playwright. A notebook tracks a run from the lab's own kernel; the run shows in the MLOps panel
with its metric; the notebook is promoted through the Promote… dialog. Screenshots are saved in
the test's output folder (its tmp_path; printed at the end)."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from .system import ensure_apt, stop_group
from .test_serving import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "e2e-test-token"


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext mlops_jupyter\nalpha = 0.5\nsteps = 20"),
                nbformat.v4.new_code_cell("%mlops track start e2e-run\nfor s in range(steps):\n"
                                          "    acc = round(0.5 + s / 50, 2)\n"
                                          "    %mlops log acc=$acc --step $s\n"
                                          "%mlops log acc=0.93\n%mlops track stop"),
                nbformat.v4.new_code_cell("%mlops track start e2e-baseline --param alpha=0.1\n"
                                          "%mlops log acc=0.71 --step 0\n%mlops log acc=0.75 --step 1\n"
                                          "%mlops track stop"),
                nbformat.v4.new_code_cell("import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
                                          "import mlops_jupyter as mj\n"
                                          "X = pd.DataFrame({'a': [0.0, 1, 2, 3], 'b': [1.0, 0, 1, 0]})\n"
                                          "for C in (0.1, 1.0):\n"
                                          "    mj.models.register(LogisticRegression(C=C).fit(X, [0, 0, 1, 1]),\n"
                                          "                       name='e2e-model', example=X)")]
    nbformat.write(nb, str(path))


@pytest.fixture
def lab(project, tmp_path_factory):
    """JupyterLab serving *project*, token-protected, on 127.0.0.1; stopped by its PID."""
    reason = ensure_apt({"chromium": "chromium"})
    if reason:
        pytest.skip(reason)
    pytest.importorskip("playwright")
    home = tmp_path_factory.mktemp("labhome")
    settings = home / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no news or update checks: this machine has no internet, and the popup would cover the panel
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                          "checkForUpdates": False}))
    port = free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(home / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               PYTHONWARNINGS="ignore")
    log = open(home / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
                             "--ServerApp.port_retries=0", f"--ServerApp.root_dir={project}"],
                            cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    else:
        pass
    if proc.poll() is not None:
        raise AssertionError("jupyter lab did not start:\n" + (home / "lab.log").read_text()[-3000:])
    try:
        yield url, home
    finally:
        stop_group(proc)
        log.close()


def test_panel_shows_the_tracked_run_and_promotes_the_notebook(lab, project, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, home = lab
    _notebook(project / "train.ipynb")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(home / "chromium-profile"), executable_path="/usr/bin/chromium",
                                                   headless=True, args=CHROMIUM_ARGS,
                                                   viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        try:
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab/tree/train.ipynb?token={TOKEN}")
            page.locator(".jp-NotebookPanel").first.wait_for()
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=90_000)
            # run every cell from the Run menu, as a user would
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            expect(page.locator(".jp-InputPrompt", has_text="[4]").first).to_be_visible(timeout=90_000)
            page.locator("li.lm-TabBar-tab[data-id='mlops-panel']").click()
            row = page.locator(".mlops-run-row[data-name='e2e-run']")
            expect(row).to_be_visible(timeout=90_000)
            expect(row.locator(".mlops-metric[data-key='acc']")).to_have_text("acc 0.93", timeout=60_000)
            expect(row).to_have_attribute("data-status", "finished", timeout=30_000)
            page.screenshot(path=str(shots / "panel-runs.png"))
            # details of the run open in the main area
            row.locator(".mlops-run-name").click()
            expect(page.locator(".mlops-html").first).to_contain_text("e2e-run")
            page.screenshot(path=str(shots / "run-details.png"))
            # two runs ticked: the comparison opens with both and their overlaid curves
            base = page.locator(".mlops-run-row[data-name='e2e-baseline']")
            expect(base.locator(".mlops-metric[data-key='acc']")).to_have_text("acc 0.75")
            row.locator(".mlops-select").check()
            base.locator(".mlops-select").check()
            page.locator(".mlops-compare").click()
            cmp = page.locator(".mlops-html", has_text="e2e-baseline")
            expect(cmp).to_contain_text("e2e-run")
            assert cmp.locator("svg").count() >= 1
            page.screenshot(path=str(shots / "compare.png"))
            # back to the notebook; promote it through the dialog
            page.locator("li.lm-TabBar-tab", has_text="train.ipynb").first.click()
            page.locator(".jp-NotebookPanel-toolbar .mlops-promote-button").first.click()
            dialog = page.locator(".jp-Dialog")
            expect(dialog.locator("input[name='param:alpha']")).to_have_value("0.5")
            dialog.locator("input[name='name']").fill("e2e-job")
            page.screenshot(path=str(shots / "promote-dialog.png"))
            dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
            expect(page.locator(".jp-Dialog-header")).to_contain_text("Promoted: jobs/e2e-job")
            page.screenshot(path=str(shots / "promoted.png"))
            page.locator(".jp-Dialog-button.jp-mod-accept").click()
            page.locator(".mlops-tab[data-section='jobs']").click()
            expect(page.locator(".mlops-job-row[data-name='e2e-job']")).to_be_visible()
            page.screenshot(path=str(shots / "panel-jobs.png"))
            # Run now: the job runs through a kernel on the server; its row turns finished
            job_row = page.locator(".mlops-job-row[data-name='e2e-job']")
            expect(job_row).to_contain_text("never run")
            job_row.locator(".mlops-run-now").click()
            expect(job_row.locator(".mlops-badge-finished")).to_be_visible(timeout=180_000)
            page.screenshot(path=str(shots / "job-ran.png"))
            # models: set an alias, then move it, each after a confirmation naming the move
            page.locator(".mlops-tab[data-section='models']").click()
            for version, body in ((1, "e2e-model@production → v1"), (2, "e2e-model@production: v1 → v2")):
                mrow = page.locator(f".mlops-model-row[data-ref='e2e-model@v{version}']")
                mrow.locator(".mlops-set-alias").click()
                page.locator(".jp-Dialog input").fill("production")
                page.locator(".jp-Dialog-button.jp-mod-accept").click()
                expect(page.locator(".jp-Dialog-body")).to_have_text(body)
                if version == 2:
                    page.screenshot(path=str(shots / "alias-confirm.png"))
                page.locator(".jp-Dialog-button.jp-mod-accept").click()
                expect(mrow.locator(".mlops-badge-alias", has_text="production")).to_be_visible()
            expect(page.locator(".mlops-badge-alias", has_text="production")).to_have_count(1)
            page.screenshot(path=str(shots / "panel-models.png"))
            # the dark theme: the panel follows JupyterLab's variables
            light = page.locator(".mlops-panel").evaluate("n => getComputedStyle(n).backgroundColor")
            page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Theme").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
            expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=30_000)
            page.wait_for_timeout(500)
            dark = page.locator(".mlops-panel").evaluate("n => getComputedStyle(n).backgroundColor")
            assert light != dark, (light, dark)
            page.screenshot(path=str(shots / "panel-dark.png"))
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            print(f"failure screenshot: {shots / 'failure.png'}")
            raise
        finally:
            ctx.close()
    job = project / "jobs" / "e2e-job"
    assert (job / "job.toml").is_file() and (job / "notebook.ipynb").is_file()
    assert 'alpha = { type = "float", default = 0.5 }' in (job / "job.toml").read_text()
    import mlops_jupyter as mj

    run = mj.get_run("e2e-run")
    assert run.status == "finished" and run.metrics["acc"] == 0.93 and len(run.history()["acc"]) == 21
    assert mj.models.get("e2e-model@production").version == 2
    executed = mj.runs(where="tags.`mlops.job` = 'e2e-job'")
    assert len(executed) >= 1 and set(executed["status"]) == {"finished"}
    assert sorted(p.name for p in shots.iterdir()) == ["alias-confirm.png", "compare.png", "job-ran.png",
                                                      "panel-dark.png", "panel-jobs.png", "panel-models.png",
                                                      "panel-runs.png", "promote-dialog.png", "promoted.png",
                                                      "run-details.png"]
    print(f"screenshots in {shots}")
