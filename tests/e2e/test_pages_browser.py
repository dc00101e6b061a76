"""Every dashboard page in a real browser over the demo month: no exception, the page's key
figures as the database counts them, and a screenshot of each saved into docs/screenshots/ (the
README shows them). The Output page shows a demo output; the Queues page is opened during a
running batch, over the demo month too."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect, sync_playwright

from tasks import admin, batches, demo
from tasks.analytics import period
from tests.e2e.conftest import CHROMIUM_ARGS, ROOT
from tests.support.clock import clear_of
from tests.support.provider import error, ok

pytestmark = pytest.mark.slow
SHOTS = ROOT / "docs" / "screenshots"
# url path -> (screenshot name, text the page shows over the demo month); a table's cells are
# drawn on a canvas, so a page whose figures are a table shows one (TABLE). The Output page is
# opened on a demo output (its address is added in the test).
TABLE = "a table"
PAGES = {
    "": ("submit", "Template"),
    "compare": ("compare", "offline/brief"),
    "batches": ("batches", "reviews-november.csv"),
    "outputs": ("outputs", TABLE),
    "output": ("output", "Output #"),
    "analytics": ("analytics", "Thumbs-up rate"),
    "leaderboard": ("leaderboard", TABLE),
    "templates": ("templates", "Templates"),
    "agents": ("agents", "Agents"),
    "limits": ("limits", "Set a limit"),
    "judges": ("judges", "Judges"),
    "reasons": ("reasons", "Reorder or remove"),
}


def _settled(page) -> None:
    """Wait for the script run to finish (the page's reruns included) and every element to be
    drawn."""
    app = page.locator('[data-testid="stApp"]')
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    page.wait_for_timeout(300)
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    # widgets whose code is still loading are drawn as grey placeholders
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)


def _metric(page, label: str) -> int:
    """The figure of the metric labelled `label`, as a whole number."""
    box = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    )
    return int(re.sub(r"\D", "", box.first.get_by_test_id("stMetricValue").inner_text()))


def _grid(page):
    """The first table's accessible grid (its cells are drawn on a canvas; this hidden table
    holds their text)."""
    return page.get_by_test_id("stDataFrame").first.locator('table[role="grid"]')


def _cell(page, text: str):
    return _grid(page).get_by_role("gridcell", name=text, exact=True, include_hidden=True)


def _one(pool, query: str, params=()) -> dict:
    with pool.connection() as conn:
        return conn.execute(query, params).fetchone()


def _demo_figures(pool, today: date) -> dict:
    """What the pages should show, read from the database: the outputs of the default 30 days
    (Analytics, Leaderboard), the newest outputs (Outputs), a completed demo output (Output) and
    the demo batch's counts (Batches)."""
    after, before = period(today - timedelta(days=29), today)
    window = _one(
        pool,
        "SELECT count(*) AS outputs, count(*) FILTER (WHERE status = 'completed') AS completed, "
        "array_agg(DISTINCT model ORDER BY model) AS models "
        "FROM llm_outputs WHERE created_at >= %s AND created_at < %s",
        [after, before],
    )
    every = _one(pool, "SELECT count(*) AS outputs, max(id) AS newest FROM llm_outputs")
    output = _one(
        pool,
        "SELECT o.id, o.model FROM llm_outputs AS o "
        "WHERE o.demo AND o.status = 'completed' AND o.format = 'text' AND o.kind = 'original' "
        "AND o.feedback = 'thumbs_up' ORDER BY o.id DESC LIMIT 1",
    )
    batch = _one(
        pool,
        "SELECT b.name, count(o.id) AS total, "
        "count(o.id) FILTER (WHERE o.status = 'completed') AS completed, "
        "count(o.id) FILTER (WHERE o.status = 'failed') AS failed "
        "FROM batches AS b JOIN llm_outputs AS o ON o.batch_id = b.id "
        "WHERE b.demo GROUP BY b.id",
    )
    return {"window": window, "every": every, "output": output, "batch": batch}


def _key_numbers(page, name: str, figures: dict) -> None:
    """The page's key figures agree with the database."""
    window, every = figures["window"], figures["every"]
    if name == "analytics":
        assert _metric(page, "Outputs") == window["outputs"]
        assert _metric(page, "Completed") == window["completed"]
    elif name == "outputs":
        per_page = int(re.search(r"(\d+) per page", page.get_by_text("per page").inner_text())[1])
        shown = min(per_page, every["outputs"])
        expect(_grid(page)).to_have_attribute("aria-rowcount", str(shown + 1))  # + the header
        expect(_cell(page, str(every["newest"]))).to_have_count(1)
    elif name == "leaderboard":
        expect(_grid(page)).to_have_attribute("aria-rowcount", str(len(window["models"]) + 1))
        for model in window["models"]:
            expect(_cell(page, model)).to_have_count(1)
    elif name == "output":
        output = figures["output"]
        title = page.get_by_role("heading", level=1)
        expect(title).to_have_text(re.compile(rf"Output #{output['id']}$"))
        expect(page.get_by_text(f"{output['model']} · by demo", exact=True)).to_be_visible()
        expect(page.get_by_text(re.compile(r"Current feedback: .*thumbs up$"))).to_be_visible()
    elif name == "batches":
        batch = figures["batch"]
        expect(page.get_by_text(batch["name"], exact=True)).to_be_visible()
        expect(
            page.get_by_text(
                f"{batch['completed']:,} completed · {batch['failed']:,} failed · "
                f"0 pending of {batch['total']:,}",
                exact=True,
            )
        ).to_be_visible()


def test_every_page_over_the_demo_month(chromium, services, pool):
    demo.seed(pool)
    # the pages' default 30 days end today (UTC): not near midnight, so the test reads the same
    today = clear_of("day", margin=timedelta(minutes=5)).date()
    figures = _demo_figures(pool, today)
    assert figures["output"] and figures["batch"] and len(figures["window"]["models"]) >= 4
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # the first page load imports the model libraries
        health: list[str] = []
        page.on("request", lambda r: health.append(r.url) if "_stcore/health" in r.url else None)
        try:
            for path, (name, shown) in PAGES.items():
                address = f"{path}?id={figures['output']['id']}" if name == "output" else path
                page.goto(f"{services}/{address}")
                _settled(page)
                if shown == TABLE:
                    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
                else:
                    expect(page.get_by_text(shown).first).to_be_visible()
                assert page.get_by_test_id("stException").count() == 0, name
                _key_numbers(page, name, figures)
                page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        finally:
            browser.close()
    # every page, the root or not, asks the server's own address for its health: none first
    # asks at the page's address and waits for its 404 (dashboard/served.py)
    assert len(health) >= len(PAGES)
    assert {url.removeprefix(services) for url in health} == {"/_stcore/health"}
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
            assert _metric(page, "Running") >= 1
            # the last hour per minute shows the batch as it runs
            window = page.get_by_role("radiogroup", name="Throughput over")
            window.get_by_role("radio", name="1 h", exact=True).click()
            _settled(page)
            expect(page.get_by_text("Throughput per minute, last 1 h")).to_be_visible()
            assert page.get_by_test_id("stException").count() == 0
            # the figures count every job but the maintenance ones, each in one status
            jobs = _one(
                pool,
                "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'failed') AS failed "
                "FROM procrastinate_jobs WHERE queue_name <> 'maintenance'",
            )
            statuses = ("Waiting", "Running", "Succeeded", "Failed", "Cancelled", "Aborted")
            assert sum(_metric(page, status) for status in statuses) == jobs["total"]
            assert _metric(page, "Failed") == jobs["failed"] == 3
            page.screenshot(path=str(SHOTS / "queues.png"), full_page=True)
        finally:
            browser.close()
    assert (SHOTS / "queues.png").stat().st_size > 10_000
