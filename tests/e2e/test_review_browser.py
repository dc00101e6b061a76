"""The Review page in a real browser: a reviewer makes a queue, reviews two items with reasons
and a comment, sees the progress, and a screenshot is saved into docs/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from db import outputs as outputs_db
from tasks import accounts
from tasks.testing import create_test_llm_output
from tests.e2e.conftest import CHROMIUM_ARGS, ROOT

pytestmark = pytest.mark.slow
SHOT = ROOT / "docs" / "screenshots" / "review.png"
ANSWERS = [
    "**Recursion** is when a function calls itself on a smaller piece of the problem, until "
    "the piece is so small the answer is obvious.",
    "A *closure* is a function together with the variables it captured where it was made.",
    "A **hash map** stores values under keys and finds them in about the same time however "
    "many there are.",
]


def _settled(page) -> None:
    """Wait for the script run (its reruns included) to finish."""
    app = page.locator('[data-testid="stApp"]')
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    page.wait_for_timeout(300)
    expect(app).to_have_attribute("data-test-script-state", "notRunning")


def _review(page, thumbs: str, reason: str, comment: str) -> None:
    _settled(page)  # the last item's controls, left until the run ends, are gone
    page.get_by_test_id("stRadio").filter(has_text="Thumbs").get_by_text(thumbs).click()
    page.get_by_test_id("stMultiSelect").filter(has_text="Reasons").click()
    page.get_by_role("option", name=reason, exact=True).click()
    page.keyboard.press("Escape")
    box = page.get_by_role("textbox", name="Comment")
    box.fill(comment)
    box.press("Control+Enter")
    page.get_by_role("button", name="Save and next").click()


def test_a_reviewer_makes_a_queue_and_reviews_two_items(chromium, services, pool):
    analyst = accounts.create_user(pool, "ana")
    ids = []
    for concept, answer in zip(("recursion", "closures", "hash maps"), ANSWERS, strict=True):
        output = create_test_llm_output(
            pool,
            analyst,
            context={"concept": concept},
            format="markdown",
            model="openai/gpt-4o-mini",
            raw_response=answer,
        )
        ids.append(output.id)
    with pool.connection() as conn:
        conn.execute(
            "UPDATE llm_outputs"
            " SET prompt = 'Explain ' || (context->>'concept') || ' to a beginner'"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # tall enough to show the item and its controls (the page scrolls inside itself)
        page = browser.new_page(viewport={"width": 1440, "height": 1500})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # the first page load imports the model libraries
        try:
            page.goto(f"{services}/review")
            name = page.get_by_role("textbox", name="Name")
            name.fill("Beginner explanations")
            name.press("Enter")
            page.get_by_role("button", name="Make queue").click()
            expect(page.get_by_text("0 of 3 reviewed")).to_be_visible()
            expect(page.get_by_text("Recursion is when a function", exact=False)).to_be_visible()

            _review(page, "Thumbs down", "incomplete", "No base case mentioned")
            expect(page.get_by_text("1 of 3 reviewed")).to_be_visible()
            expect(page.get_by_text("A closure is a function", exact=False)).to_be_visible()

            _review(page, "Thumbs up", "great", "Short and right")
            expect(page.get_by_text("2 of 3 reviewed")).to_be_visible()
            expect(page.get_by_text("You reviewed 2 and skipped 0", exact=False)).to_be_visible()
            expect(page.get_by_text("A hash map stores values", exact=False)).to_be_visible()
            expect(page.get_by_test_id("stException")).to_have_count(0)
            expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
            # the third item's controls in use, not saved, for the screenshot
            _settled(page)
            page.get_by_test_id("stRadio").filter(has_text="Thumbs").get_by_text(
                "Thumbs down"
            ).click()
            page.get_by_test_id("stMultiSelect").filter(has_text="Reasons").click()
            page.get_by_role("option", name="too long", exact=True).click()
            page.keyboard.press("Escape")
            _settled(page)
            page.get_by_role("heading", name="Beginner explanations").scroll_into_view_if_needed()
            page.wait_for_timeout(300)  # icons and colours drawn
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
        finally:
            browser.close()
    with pool.connection() as conn:
        first, second = (outputs_db.get_output(conn, i) for i in ids[:2])
    assert (first.feedback, first.feedback_reasons) == ("thumbs_down", ["incomplete"])
    assert first.feedback_comment == "No base case mentioned"
    assert (second.feedback, second.feedback_reasons) == ("thumbs_up", ["great"])
    assert second.feedback_comment == "Short and right"
    assert SHOT.stat().st_size > 10_000
