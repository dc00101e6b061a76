"""Empty pages say what to do next: a link to Submit for everyone, and for an admin a button that
loads the demo month, after which the page shows it."""

from __future__ import annotations

import pytest

from tasks import demo

EMPTY_PAGES = (
    "dashboard/outputs.py",
    "dashboard/analytics.py",
    "dashboard/leaderboard.py",
    "dashboard/batches.py",
    "dashboard/queues.py",
)


def _links(at) -> list[str]:
    return [str(e.proto.label) for e in at.main.get("page_link")]


def _demo_buttons(at) -> list:
    return [b for b in at.button if str(b.key).endswith("_load_demo")]


@pytest.mark.parametrize("page", EMPTY_PAGES[:-1])  # Queues is for admins only
def test_an_analyst_is_sent_to_submit(app_as, analyst, page):
    at = app_as(analyst, page)
    assert not at.exception
    assert "Submit a prompt" in _links(at)
    assert not _demo_buttons(at)


@pytest.mark.parametrize("page", EMPTY_PAGES)
def test_an_admin_may_also_load_demo_data(app_as, admin, page):
    at = app_as(admin, page)
    assert not at.exception
    assert "Submit a prompt" in _links(at)
    assert len(_demo_buttons(at)) == 1


def test_loading_demo_data_fills_analytics(app_as, pool, admin):
    at = app_as(admin, "dashboard/analytics.py")
    [button] = _demo_buttons(at)
    button.click().run()
    assert not at.exception
    assert demo.is_loaded(pool)
    figures = {m.label: m.value for m in at.metric}
    assert int(figures["Outputs"].replace(",", "")) > 300
    assert not _demo_buttons(at)


def test_loading_demo_data_fills_outputs(app_as, pool, admin):
    at = app_as(admin, "dashboard/outputs.py")
    _demo_buttons(at)[0].click().run()
    assert not at.exception
    assert any(len(frame.value) > 0 for frame in at.dataframe)
    assert "Submit a prompt" not in _links(at)


def test_no_button_once_demo_data_is_loaded(app_as, pool, admin):
    demo.seed(pool)
    for page in EMPTY_PAGES[:-1]:  # the queues stay empty: demo data queues nothing
        at = app_as(admin, page)
        assert not at.exception
        assert not _demo_buttons(at) and "Submit a prompt" not in _links(at), page
