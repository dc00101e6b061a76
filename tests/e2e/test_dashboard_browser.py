"""The dashboard in a real browser: submit a job, watch a worker complete it, give it a thumbs
up, and find the thumbs up in the database."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tasks import outputs as jobs
from tasks.admin import local_user
from tests.e2e.conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.slow


def test_submit_complete_and_thumbs_up_in_a_browser(chromium, services, pool, tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)  # the first page load imports the model libraries
        try:
            page.goto(services)
            expect(page.get_by_text("Single-user mode")).to_be_visible()
            template = page.get_by_role("textbox", name="Template")
            template.fill("Explain {{ concept }} to a beginner")
            template.press("Control+Enter")
            concept = page.get_by_role("textbox", name="concept", exact=True)
            concept.fill("recursion")
            concept.press("Control+Enter")
            expect(page.get_by_text("Explain recursion to a beginner")).to_be_visible()
            page.get_by_role("button", name="Submit").click()
            # the worker may still be starting (it imports the model libraries first)
            expect(page.get_by_text("Completed in")).to_be_visible(timeout=90_000)
            # The end of the job reruns the page once (the live area stops polling); a click
            # landing during that rerun is lost, as it would be for a person: let it finish.
            expect(page.locator('[data-testid="stApp"]')).to_have_attribute(
                "data-test-script-state", "notRunning"
            )
            page.get_by_role("link", name="Open the output").click()
            answer = page.get_by_test_id("stText").get_by_text(
                "Echo: Explain recursion to a beginner"
            )
            expect(answer).to_be_visible()
            page.get_by_role("button", name="Thumbs up").click()
            expect(page.get_by_text("Current feedback:")).to_contain_text("thumbs up")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    user = local_user(pool)
    [output] = jobs.list_outputs(pool, user)
    assert output.status == "completed"
    assert output.prompt == "Explain recursion to a beginner"
    assert output.feedback == "thumbs_up"
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


HOSTILE = (
    '<p id="para">Safe text</p><script>window.__xss = 1; alert(1)</script>'
    '<img src="x" onerror="window.__xss = 2; alert(2)">'
    '<a id="bad" href="javascript:window.__xss = 3">click me</a>'
)


@pytest.fixture
def hostile_provider(provider):
    """Started before the services, so the worker reaches it: it answers hostile HTML."""
    from tests.support.provider import ok

    provider.default = ok(HOSTILE)
    return provider


def test_hostile_html_never_runs_on_the_detail_page(
    chromium, hostile_provider, services, pool, tmp_path
):
    user = local_user(pool)
    sub = jobs.submit(
        pool,
        user=user,
        template="Write {{ what }}",
        context={"what": "html"},
        model="openai/hostile",
        format="html",
    )
    deadline = time.monotonic() + 90
    while jobs.get_output(pool, sub.output_id, user).status != "completed":
        assert time.monotonic() < deadline, "the worker did not complete the job"
        time.sleep(0.3)
    stored = jobs.get_output(pool, sub.output_id, user)
    assert "<script" not in stored.parsed_output and "onerror" not in stored.parsed_output
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{services}/output?id={sub.output_id}")
            expect(page.get_by_text("Safe text").first).to_be_visible(timeout=60_000)
            page.get_by_text("click me").first.click()
            page.wait_for_timeout(1000)
            touched = [frame.evaluate("() => window.__xss ?? null") for frame in page.frames]
            hrefs = page.eval_on_selector_all(
                "a", "links => links.map(a => a.getAttribute('href') || '')"
            )
            page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
        finally:
            browser.close()
    assert dialogs == []
    assert touched == [None] * len(touched)
    assert not any(h.strip().lower().startswith("javascript:") for h in hrefs)


def test_a_page_load_fetches_nothing_from_the_internet(chromium, services, pool):
    from urllib.parse import urlsplit

    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        try:
            page.goto(services)
            expect(page.get_by_text("Single-user mode")).to_be_visible()
            expect(page.locator('[data-testid="stApp"]')).to_have_attribute(
                "data-test-script-state", "notRunning"
            )
            icon = page.locator("link[rel='shortcut icon']").get_attribute("href")
            page.wait_for_timeout(2000)  # the favicon and late assets
        finally:
            browser.close()
    local = (None, "127.0.0.1", "localhost")  # None: a relative address
    assert icon and urlsplit(icon).hostname in local, icon
    assert requested
    elsewhere = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in local
    ]
    assert elsewhere == []
