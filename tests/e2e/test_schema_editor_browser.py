"""The Submit page's JSON Schema editor in a real browser: choose the json format, type a schema,
see it checked, and save a screenshot of the editor and its check into docs/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.conftest import CHROMIUM_ARGS, ROOT

pytestmark = pytest.mark.slow
SHOT = ROOT / "docs" / "screenshots" / "schema-editor.png"
# as a person would type it, short enough to be seen whole in the editor
SCHEMA = """{
  "type": "object",
  "properties": {
    "summary": {"type": "string"},
    "score": {"type": "integer", "maximum": 5},
    "risks": {"type": "array"}
  },
  "required": ["summary", "score"]
}"""


def test_the_schema_editor_checks_what_is_typed(chromium, services):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # the first page load imports the model libraries
        try:
            page.goto(services)
            expect(page.get_by_role("textbox", name="Template")).to_be_visible()
            concept = page.get_by_role("textbox", name="concept", exact=True)
            concept.fill("recursion")
            concept.press("Control+Enter")
            schema = page.get_by_role("textbox", name="JSON Schema (optional)")
            expect(schema).to_have_count(0)  # a text answer takes no schema
            page.get_by_test_id("stSelectbox").filter(has_text="Format").click()
            page.get_by_role("option", name="json", exact=True).click()
            expect(schema).to_be_visible()
            expect(page.get_by_test_id("stAlert")).to_have_count(0)  # nothing said before typing
            schema.fill(SCHEMA)
            schema.press("Control+Enter")
            check = page.get_by_text("Valid JSON Schema", exact=False)
            expect(check).to_be_visible()
            expect(check).to_contain_text(
                "an object with summary (required), score (required), risks"
            )
            expect(page.get_by_test_id("stException")).to_have_count(0)
            expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
            page.wait_for_timeout(300)  # the check's icon and colours drawn
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
        finally:
            browser.close()
    assert SHOT.stat().st_size > 10_000
