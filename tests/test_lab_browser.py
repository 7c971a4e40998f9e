"""End to end in a real browser: JupyterLab on 127.0.0.1 with a token, Debian's Chromium driven by
Playwright. A notebook tracks runs, adds a data version and registers a model from the lab's own
kernel; the MLOps panel lists them at the sidebar's default width; each detail view opens (a run
with its chart, artifacts and highlighted cells; runs compared; a model; a dataset with its
column histograms; a job); the notebook is promoted and run after a confirmation naming the alias
it may move. Then the same views in JupyterLab's dark theme.

Screenshots of each view in both themes are kept in ``build/test-artifacts/lab/`` (git-ignored)."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .system import ensure_apt, stop_group
from .test_serving import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "e2e-test-token"
SHOTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "lab"
DAY_MINUTE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext mlops_jupyter\nalpha = 0.5\nsteps = 20"),
                nbformat.v4.new_code_cell("%mlops track start e2e-run\nfor s in range(steps):\n"
                                          "    acc, loss = round(0.5 + s / 50, 2), round(1 / (s + 1), 3)\n"
                                          "    %mlops log acc=$acc loss=$loss --step $s\n"
                                          "%mlops log acc=0.93\n"
                                          "from matplotlib.figure import Figure\n"
                                          "fig = Figure(figsize=(3, 2)); fig.add_subplot().plot([1, 3, 2])\n"
                                          "fig.savefig('curve.png')\n"
                                          "%mlops artifact curve.png --name plots/curve.png\n"
                                          "%mlops track stop"),
                nbformat.v4.new_code_cell("%mlops track start e2e-baseline --param alpha=0.1\n"
                                          "%mlops log acc=0.71 loss=0.9 --step 0\n"
                                          "%mlops log acc=0.75 loss=0.7 --step 1\n"
                                          "%mlops track stop"),
                nbformat.v4.new_code_cell("import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
                                          "import mlops_jupyter as mj\n"
                                          "X = pd.DataFrame({'a': [0.0, 1, 2, 3, 4, 5], 'b': [1.0, 0, 1, 0, 1, 0],\n"
                                          "                  'city': ['Oslo', 'Rome', 'Oslo', 'Lima', 'Oslo', 'Rome']})\n"
                                          "with mj.start_run('e2e-train'):\n"
                                          "    mj.data.add(X, name='e2e-data')\n"
                                          "    mj.log(auc=0.8)\n"
                                          "    for C in (0.1, 1.0):\n"
                                          "        clf = LogisticRegression(C=C).fit(X[['a', 'b']], [0, 0, 0, 1, 1, 1])\n"
                                          "        mj.models.register(clf, name='e2e-model', example=X[['a', 'b']])\n"
                                          "ex = mj.explain(clf, X[['a', 'b']], progress=False)")]
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
    if proc.poll() is not None:
        raise AssertionError("jupyter lab did not start:\n" + (home / "lab.log").read_text()[-3000:])
    try:
        yield url, home
    finally:
        stop_group(proc)
        log.close()


# Each element that must fit the sidebar on one line: its text is not cut and it does not wrap.
FITS = """els => els.map(e => {
  const cs = getComputedStyle(e);
  const line = parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.4;
  const pad = parseFloat(cs.paddingTop) + parseFloat(cs.paddingBottom) + parseFloat(cs.borderTopWidth)
    + parseFloat(cs.borderBottomWidth);
  let text = e.scrollWidth <= e.clientWidth + 1;
  if (e.placeholder !== undefined && e.placeholder) {  // an input: does its placeholder fit?
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = cs.font;
    const room = e.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    text = ctx.measureText(e.placeholder).width <= room;
  }
  return {what: e.className + ' ' + (e.textContent || e.placeholder), text,
          oneLine: e.getBoundingClientRect().height - pad < 2 * line};
})"""


def run_all_cells(page, url, notebook):
    """Open *notebook* in JupyterLab, wait for its kernel, and run every cell from the Run menu, as
    a user would."""
    from playwright.sync_api import expect

    page.goto(f"{url}/lab/tree/{notebook}?token={TOKEN}")
    page.locator(".jp-NotebookPanel").first.wait_for()
    expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


@contextlib.contextmanager
def browser_page(profile: Path, shots: Path, **options):
    """A page of Debian's Chromium with a profile of its own at *profile* (1400 x 900 unless *options*
    say otherwise); when the test fails, the page as it was is kept as *shots*/failure.png."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path="/usr/bin/chromium", headless=True,
                                                   args=CHROMIUM_ARGS,
                                                   **{"viewport": {"width": 1400, "height": 900}, **options})
        page = ctx.new_page()
        try:
            yield page
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            print(f"failure screenshot: {shots / 'failure.png'}")
            raise
        finally:
            ctx.close()


def set_theme(page, expect, theme: str) -> None:
    """Pick *theme* from JupyterLab's Settings menu, as a user would, and wait for it (and the charts'
    redraw in it)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=theme).first.click()
    light = "true" if "Light" in theme else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(1500)  # the charts redraw in the new theme


def check_fits(locator):
    bad = [r for r in locator.evaluate_all(FITS) if not (r["text"] and r["oneLine"])]
    assert not bad, bad


def test_panel_detail_views_in_light_and_dark(lab, project):
    from playwright.sync_api import expect

    url, home = lab
    _notebook(project / "train.ipynb")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    posts = []
    with browser_page(home / "chromium-profile", SHOTS, accept_downloads=True) as page:
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/mlops/api/jobs/" in r.url
                else None)

        def shot(name):
            page.screenshot(path=str(SHOTS / f"{name}.png"))

        def sidebar_shot(name):
            page.locator("#mlops-panel").screenshot(path=str(SHOTS / f"{name}.png"))

        def tab(section):
            page.locator(f".mlops-tab[data-section='{section}']").click()
            expect(page.locator(f".mlops-tab[data-section='{section}']")).to_have_class(re.compile("mlops-active"))

        def charts_drawn(view, light):
            hosts = page.locator(f"{view} [data-theme-light]")
            expect(hosts.first).to_be_attached()
            expect(page.locator(f"{view} [data-theme-light='{'false' if light else 'true'}']")).to_have_count(0)
            expect(page.locator(f"{view} .vega-embed").first).to_be_visible()

        page.set_default_timeout(60_000)
        run_all_cells(page, url, "train.ipynb")
        expect(page.locator(".jp-InputPrompt", has_text="[4]").first).to_be_visible(timeout=120_000)
        expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                            has_text="Error")).to_have_count(0)

        # -- the sidebar at its default width ----------------------------------------------------
        page.locator("li.lm-TabBar-tab[data-id='mlops-panel']").click()
        row = page.locator(".mlops-run-row[data-name='e2e-run']")
        expect(row).to_be_visible(timeout=90_000)
        expect(row.locator(".mlops-metric[data-key='acc']")).to_have_text("acc 0.93", timeout=60_000)
        expect(row).to_have_attribute("data-status", "finished", timeout=30_000)
        expect(row.locator(".mlops-spark")).to_be_visible()  # finished runs have their sparkline too
        expect(row.locator(".mlops-row-sub")).to_have_text(re.compile(rf"finished\s+{DAY_MINUTE}$"))
        width = page.locator("#mlops-panel").evaluate("n => n.getBoundingClientRect().width")
        assert width < 300, width  # JupyterLab's default sidebar width, untouched
        check_fits(page.locator(".mlops-filter, .mlops-sort, .mlops-compare, .mlops-tab"))
        sidebar_shot("light-sidebar-runs")
        tab("jobs")
        expect(page.locator(".mlops-empty")).to_contain_text("no jobs yet")
        tab("models")
        expect(page.locator(".mlops-model-row")).to_have_count(2)
        check_fits(page.locator(".mlops-set-alias"))
        sidebar_shot("light-sidebar-models")
        tab("data")
        expect(page.locator(".mlops-dataset-row[data-name='e2e-data']")).to_contain_text("6 rows")
        sidebar_shot("light-sidebar-data")

        # -- a run in detail: chart, x axis and log y, artifacts, highlighted cells ------------
        tab("runs")
        row.locator(".mlops-run-name").click()
        run_view = page.locator(".mlops-run-detail")
        expect(run_view.locator("h2")).to_have_text("e2e-run")
        expect(run_view.locator(".mlops-detail-head")).to_contain_text(re.compile(rf"started {DAY_MINUTE}:\d{{2}}"))
        charts_drawn(".mlops-run-detail", light=True)
        with page.expect_response(lambda r: "/chart?" in r.url and "x=relative" in r.url and r.ok):
            run_view.locator("select.mlops-x").select_option("relative")
        with page.expect_response(lambda r: "/chart?" in r.url and "log_y=1" in r.url and r.ok):
            run_view.locator("input.mlops-log-y").check()
        charts_drawn(".mlops-run-detail", light=True)
        artifact = run_view.locator(".mlops-artifact-row[data-path='plots/curve.png']")
        expect(artifact.locator("img.mlops-preview")).to_be_visible()
        page.wait_for_function("() => document.querySelector(\".mlops-artifact-row[data-path='plots/curve.png'] "
                               "img\").naturalWidth > 0")
        with page.expect_download() as download:
            artifact.locator("a.mlops-artifact").click()
        assert Path(download.value.path()).read_bytes() == (project / "curve.png").read_bytes()
        assert download.value.suggested_filename == "curve.png"
        code = run_view.locator(".mlops-code", has_text="for s in range(steps)")
        keyword = code.locator("span", has_text=re.compile(r"^for$")).first
        expect(keyword).to_be_visible()
        plain, coloured = code.evaluate("c => [getComputedStyle(c).color, "
                                        "getComputedStyle([...c.querySelectorAll('span')].find("
                                        "s => s.textContent === 'for')).color]")
        assert plain != coloured, (plain, coloured)  # the editor's keyword colour, from the theme
        shot("light-run")
        code.scroll_into_view_if_needed()
        shot("light-run-cells")

        # -- runs compared -------------------------------------------------------------------------
        base = page.locator(".mlops-run-row[data-name='e2e-baseline']")
        expect(base.locator(".mlops-metric[data-key='acc']")).to_have_text("acc 0.75")
        row.locator(".mlops-select").check()
        base.locator(".mlops-select").check()
        page.locator(".mlops-compare").click()
        cmp = page.locator(".mlops-compare-detail")
        expect(cmp.locator("h2")).to_have_text("Compare 2 runs")
        expect(cmp.locator(".mlops-best")).to_have_count(2)  # the best acc and the best loss
        charts_drawn(".mlops-compare-detail", light=True)
        shot("light-compare")

        # -- the notebook promoted into a job that may move e2e-model@production -----------------
        page.locator("li.lm-TabBar-tab", has_text="train.ipynb").first.click()
        page.locator(".jp-NotebookPanel-toolbar .mlops-promote-button").first.click()
        dialog = page.locator(".jp-Dialog")
        expect(dialog.locator("input[name='param:alpha']")).to_have_value("0.5")
        dialog.locator("input[name='name']").fill("e2e-job")
        dialog.locator("select[name='model']").select_option("e2e-model")
        dialog.locator("input[name='metric']").fill("auc")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        expect(page.locator(".jp-Dialog-header")).to_contain_text("Promoted: jobs/e2e-job")
        page.locator(".jp-Dialog-button.jp-mod-accept").click()

        # -- models: set the alias, then move it, each after a confirmation naming the move --------
        tab("models")
        for version, body in ((1, "e2e-model@production → v1"), (2, "e2e-model@production: v1 → v2")):
            mrow = page.locator(f".mlops-model-row[data-ref='e2e-model@v{version}']")
            mrow.locator(".mlops-set-alias").click()
            page.locator(".jp-Dialog input").fill("production")
            page.locator(".jp-Dialog-button.jp-mod-accept").click()
            expect(page.locator(".jp-Dialog-body")).to_have_text(body)
            page.locator(".jp-Dialog-button.jp-mod-accept").click()
            expect(mrow.locator(".mlops-badge-alias", has_text="production")).to_be_visible()
        expect(page.locator(".mlops-badge-alias", has_text="production")).to_have_count(1)

        # -- Run now asks first, naming the alias and the model ------------------------------------
        tab("jobs")
        job_row = page.locator(".mlops-job-row[data-name='e2e-job']")
        expect(job_row).to_contain_text("never run")
        check_fits(job_row.locator(".mlops-run-now"))
        sidebar_shot("light-sidebar-jobs")
        job_row.locator(".mlops-run-now").click()
        confirm = page.locator(".jp-Dialog")
        expect(confirm.locator(".jp-Dialog-header")).to_contain_text("may move e2e-model@production")
        expect(confirm.locator(".jp-Dialog-body")).to_contain_text("e2e-model@production (now v2, auc 0.8)")
        shot("light-run-now-confirm")
        confirm.locator(".jp-Dialog-button.jp-mod-reject").click()
        expect(confirm).to_have_count(0)
        assert posts == []  # cancelled: nothing started
        job_row.locator(".mlops-run-now").click()
        confirm.locator(".jp-Dialog-button.jp-mod-accept").click()
        expect(job_row.locator(".mlops-badge-finished")).to_be_visible(timeout=240_000)
        assert len(posts) == 1 and posts[0].split("?")[0].endswith("/mlops/api/jobs/e2e-job/run")

        # -- a job in detail: what a run may move, and the decision each run took --------------------
        job_row.locator(".mlops-run-name").click()
        job_view = page.locator(".mlops-job-detail")
        expect(job_view.locator(".mlops-callout")).to_contain_text("e2e-model@production")
        executions = job_view.locator("tbody tr", has=page.locator(".mlops-badge-finished"))
        expect(executions.first).to_contain_text("kept")  # auc 0.8 is not higher than the champion's 0.8
        expect(executions.first).to_contain_text("e2e-model@v3")
        shot("light-job")

        # -- a model in detail: versions, lineage, explanation ------------------------------------------
        tab("models")
        page.locator(".mlops-model-name[data-name='e2e-model'] .mlops-link").click()
        model_view = page.locator(".mlops-model-detail")
        expect(model_view.locator("h2")).to_have_text("e2e-model")
        expect(model_view.locator(".mlops-selected-row")).to_have_attribute("data-version", "2")  # production
        expect(model_view.locator(".mlops-lineage-data")).to_contain_text("e2e-data@v1")
        expect(model_view.locator(".mlops-lineage-model.mlops-focus")).to_contain_text("e2e-model@v2")
        charts_drawn(".mlops-model-detail", light=True)  # the explanation, as the notebook draws it
        shot("light-model")

        # -- a dataset in detail: schema, statistics, a histogram per column ---------------------------
        model_view.locator(".mlops-lineage-data .mlops-link").click()
        data_view = page.locator(".mlops-dataset-detail")
        expect(data_view.locator("h2")).to_have_text("e2e-data")
        expect(data_view.locator(".mlops-schema tbody tr")).to_have_count(3)
        expect(data_view.locator(".mlops-hist .vega-embed")).to_have_count(3)
        charts_drawn(".mlops-dataset-detail", light=True)
        shot("light-data")

        # -- the dark theme: the panel follows JupyterLab's variables, the charts are drawn again -------
        light = page.locator(".mlops-panel").evaluate("n => getComputedStyle(n).backgroundColor")
        set_theme(page, expect, "JupyterLab Dark")
        dark = page.locator(".mlops-panel").evaluate("n => getComputedStyle(n).backgroundColor")
        assert light != dark, (light, dark)
        charts_drawn(".mlops-dataset-detail", light=False)
        shot("dark-data")
        for section in ("runs", "data", "models", "jobs"):
            tab(section)
            expect(page.locator("#mlops-panel .mlops-list, #mlops-panel .mlops-run-row").first).to_be_visible()
            sidebar_shot(f"dark-sidebar-{section}")
        for label, view, name in [("Run e2e-run", ".mlops-run-detail", "run"), ("Compare 2 runs", ".mlops-compare-detail",
                                                                             "compare"),
                                  ("Model e2e-model", ".mlops-model-detail", "model"),
                                  ("Job e2e-job", ".mlops-job-detail", "job")]:
            page.locator("li.lm-TabBar-tab", has_text=label).first.click()
            expect(page.locator(view)).to_be_visible()
            if view in (".mlops-run-detail", ".mlops-compare-detail", ".mlops-model-detail"):
                charts_drawn(view, light=False)
            shot(f"dark-{name}")
            if name == "run":
                code = page.locator(".mlops-run-detail .mlops-code", has_text="for s in range(steps)")
                code.scroll_into_view_if_needed()
                shot("dark-run-cells")
        tab("jobs")
        page.locator(".mlops-job-row[data-name='e2e-job'] .mlops-run-now").click()
        expect(page.locator(".jp-Dialog-body")).to_contain_text("e2e-model@production")
        shot("dark-run-now-confirm")
        page.locator(".jp-Dialog-button.jp-mod-reject").click()
    job = project / "jobs" / "e2e-job"
    assert (job / "job.toml").is_file() and (job / "notebook.ipynb").is_file()
    assert 'alpha = { type = "float", default = 0.5 }' in (job / "job.toml").read_text()
    import mlops_jupyter as mj

    run = mj.get_run("e2e-run")
    assert run.status == "finished" and run.metrics["acc"] == 0.93 and len(run.history()["acc"]) == 21
    assert mj.models.get("e2e-model@production").version == 2
    executed = mj.runs(where="tags.`mlops.job` = 'e2e-job' and parent_id is null")
    assert len(executed) == 1 and set(executed["status"]) == {"finished"}
    names = sorted(p.name for p in SHOTS.iterdir())
    assert names == sorted(f"{theme}-{view}.png" for theme, views in [
        ("light", ["sidebar-runs", "sidebar-models", "sidebar-data", "sidebar-jobs", "run", "run-cells", "compare",
                   "run-now-confirm", "job", "model", "data"]),
        ("dark", ["sidebar-runs", "sidebar-models", "sidebar-data", "sidebar-jobs", "run", "run-cells", "compare",
                  "run-now-confirm", "job", "model", "data"])] for view in views), names
    print(f"screenshots in {SHOTS}")
