"""Every dashboard page in a real browser over the demo month: no exception, the page's key
figure shown, and a screenshot of each saved into docs/screenshots/ (the README shows them)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from tasks import demo
from tests.e2e.conftest import CHROMIUM_ARGS, ROOT

pytestmark = pytest.mark.slow
SHOTS = ROOT / "docs" / "screenshots"
# url path -> (screenshot name, text the page shows over the demo month); a table's cells are
# drawn on a canvas, so a page whose figures are a table shows one (TABLE).
TABLE = "a table"
PAGES = {
    "": ("submit", "Template"),
    "compare": ("compare", "offline/brief"),
    "batches": ("batches", "reviews-november.csv"),
    "outputs": ("outputs", TABLE),
    "output": ("output", "Output"),
    "analytics": ("analytics", "Thumbs-up rate"),
    "leaderboard": ("leaderboard", TABLE),
    "templates": ("templates", "Templates"),
    "agents": ("agents", "Agents"),
    "queues": ("queues", "Queues"),
}


def _settled(page) -> None:
    """Wait for the script run to finish (the page's reruns included)."""
    app = page.locator('[data-testid="stApp"]')
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    page.wait_for_timeout(300)
    expect(app).to_have_attribute("data-test-script-state", "notRunning")


def test_every_page_over_the_demo_month(chromium, services, pool):
    summary = demo.seed(pool)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # the first page load imports the model libraries
        try:
            for path, (name, shown) in PAGES.items():
                page.goto(f"{services}/{path}")
                _settled(page)
                if shown == TABLE:
                    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
                else:
                    expect(page.get_by_text(shown).first).to_be_visible()
                assert page.get_by_test_id("stException").count() == 0, name
                if name == "analytics":
                    outputs = page.get_by_test_id("stMetric").filter(has_text="Outputs").first
                    figure = outputs.get_by_test_id("stMetricValue").inner_text()
                    assert 0 < int(re.sub(r"\D", "", figure)) <= summary.outputs
                page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        finally:
            browser.close()
    for name, _ in PAGES.values():
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000
