"""A model card in the JupyterLab panel, in a real browser (Debian's Chromium driven by Playwright): a
model's view has a Model card button on the selected version; the card opens in its own tab, drawn
by the server (the same card as ``mlops model card`` and the model server's ``GET /card``) in a
sandboxed frame, every section present, its tables and charts in the theme's colours, light and
dark.

Screenshots are kept in ``build/test-artifacts/card/`` (git-ignored)."""

import shutil
import time
from pathlib import Path

import pytest

from .test_card import SECTIONS, full_version
from .test_lab_browser import TOKEN, browser_page, check_fits, lab, set_theme  # noqa: F401 (the lab fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "card"


def test_the_model_card_in_the_panel_in_light_and_dark(lab, project):  # noqa: F811 (the fixture)
    from playwright.sync_api import expect

    full_version()
    url, home = lab
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with browser_page(home / "chromium-profile", SHOTS) as page:

        def shot(name):
            page.screenshot(path=str(SHOTS / f"{name}.png"))

        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab?token={TOKEN}")
        page.locator("li.lm-TabBar-tab[data-id='mlops-panel']").click()
        page.locator(".mlops-tab[data-section='models']").click()
        page.locator(".mlops-model-name[data-name='churn'] .mlops-link").click()
        view = page.locator(".mlops-model-detail")
        expect(view.locator("h2")).to_have_text("churn")
        evals = view.locator(".mlops-evaluations tbody tr")
        expect(evals).to_have_count(1)
        expect(evals.first).to_contain_text("test@v1")
        view.locator(".mlops-evaluations").scroll_into_view_if_needed()
        shot("light-model-evaluations")
        button = view.locator(".mlops-open-card")
        expect(button).to_be_visible()
        check_fits(button)
        button.click()
        frame_el = page.locator("iframe.mlops-card-frame")
        expect(frame_el).to_have_attribute("data-version", "churn@v2")
        assert frame_el.get_attribute("sandbox") == ""  # no script runs in the card
        card = page.frame_locator("iframe.mlops-card-frame")
        expect(card.locator(".mlops-card > .mlops-h").first).to_have_text("Model card: churn@v2 production")
        for s in SECTIONS:
            expect(card.locator(f"[data-section='{s}']")).to_have_count(1)
        expect(card.locator("text=Rank customers by churn risk")).to_be_visible()
        expect(card.locator(".mlops-chart svg")).to_have_count(6)
        shot("light-card")
        card.locator(".mlops-charts").first.evaluate("e => e.scrollIntoView()")
        shot("light-card-evaluation")
        card.locator("[data-section='Explanations']").evaluate("e => e.scrollIntoView()")
        shot("light-card-explanations")
        light_bg = card.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")

        set_theme(page, expect, "JupyterLab Dark")
        # the card is drawn again in the theme's colours, by itself
        card = page.frame_locator("iframe.mlops-card-frame")

        def dark_now():
            try:
                bg = card.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
            except Exception:  # the frame is being drawn again
                return False
            return bg != light_bg and _luminance(bg) < 0.2

        deadline = time.time() + 30
        while not dark_now() and time.time() < deadline:
            time.sleep(0.3)
        assert dark_now()
        expect(card.locator("[data-section='Audit']")).to_have_count(1)
        text = card.locator(".mlops-card .mlops-h").first.evaluate("h => getComputedStyle(h).color")
        assert _luminance(text) > 0.7, text
        shot("dark-card")
        card.locator(".mlops-charts").first.evaluate("e => e.scrollIntoView()")
        shot("dark-card-evaluation")
        card.locator("[data-section='Explanations']").evaluate("e => e.scrollIntoView()")
        shot("dark-card-explanations")
    print(f"screenshots in {SHOTS}")


def _luminance(css: str) -> float:
    import re

    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255
