"""Every dashboard page in a real browser over the demo month: no exception, the page's key
figure shown, and a screenshot of each saved into docs/screenshots/ (the README shows them). The
Queues page is opened during a running batch, over the demo month too."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from tasks import admin, batches, demo
from tests.e2e.conftest import CHROMIUM_ARGS, ROOT
from tests.support.provider import error, ok

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


def test_queues_page_during_a_running_batch(chromium, provider, services, pool):
    """Demo data plus a batch a worker is running: the page shows running, waiting and failed
    jobs, and its figures agree with its lists."""
    demo.seed(pool)
    provider.push(*[error(400, "the provider refused this prompt") for _ in range(3)])
    provider.default = ok("A short answer.", delay=4.0)
    user = admin.local_user(pool)
    batches.submit_batch(
        pool,
        user=user,
        template="Summarise the review: {{review}}",
        model="openai/test-model",
        rows=[{"review": f"Review number {i}"} for i in range(400)],
        name="reviews-december.csv",
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # tall enough to show the lists under the figures (the page scrolls inside itself)
        page = browser.new_page(viewport={"width": 1440, "height": 2400})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        try:
            page.goto(f"{services}/queues")
            _settled(page)
            # the worker is busy: the page shows the jobs it runs and the three that failed,
            # reloaded until it does
            for _ in range(20):
                if (
                    page.get_by_text(re.compile(r"Running jobs \([1-9]")).count()
                    and page.get_by_text("Failed jobs (3)").count()
                ):
                    break
                page.wait_for_timeout(500)
                page.reload()
                _settled(page)
            expect(page.get_by_text(re.compile(r"Running jobs \([1-9]")).first).to_be_visible()
            expect(page.get_by_text("Failed jobs (3)").first).to_be_visible()
            expect(page.get_by_text("Maintenance jobs").first).to_be_visible()
            assert page.get_by_test_id("stException").count() == 0
            running = page.get_by_test_id("stMetric").filter(has_text="Running").first
            figure = running.get_by_test_id("stMetricValue").inner_text()
            assert int(re.sub(r"\D", "", figure)) >= 1
            page.screenshot(path=str(SHOTS / "queues.png"), full_page=True)
        finally:
            browser.close()
    assert (SHOTS / "queues.png").stat().st_size > 10_000
