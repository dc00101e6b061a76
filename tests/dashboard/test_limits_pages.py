"""Provider limits in the dashboard (AppTest): the Limits page lists, sets and clears limits for
admins only, refuses bad values naming the field and writing nothing."""

from __future__ import annotations

import pytest

from tasks import limits

LIMITS = "dashboard/limits.py"
SAVE = "FormSubmitter:limits_set-Save"


def _texts(elements) -> str:
    """The elements' text as a person reads it (markdown escapes dropped)."""
    return " ".join(str(e.value) for e in elements).replace("\\", "")


def _saved(pool) -> list[tuple]:
    return [
        (lim.pattern, lim.rpm, lim.tpm, lim.max_concurrent, lim.source, lim.updated_by)
        for lim in limits.list_limits(pool)
    ]


def _fill(at, model: str, rpm=None, tpm=None, concurrent=None) -> None:
    at.text_input(key="limits_set_model").input(model)
    for field, value in (("rpm", rpm), ("tpm", tpm), ("concurrent", concurrent)):
        at.number_input(key=f"limits_set_{field}").set_value(value)
    at.button(key=SAVE).click().run()
    assert not at.exception


def _form(at) -> tuple:
    return (
        at.text_input(key="limits_set_model").value,
        *(at.number_input(key=f"limits_set_{f}").value for f in ("rpm", "tpm", "concurrent")),
    )


# The Limits page.


def test_an_analyst_cannot_open_the_limits_page(app_as, pool, analyst, admin):
    limits.set_limit(pool, admin, "openai/", rpm=50)
    at = app_as(analyst, LIMITS)
    assert not at.exception
    assert "Admins only" in _texts(at.error)
    assert not at.main.button and not at.text_input and not at.dataframe
    assert "openai/" not in _texts(at.main.markdown)


def test_an_admin_sets_a_limit_and_the_form_is_emptied(app_as, pool, admin):
    at = app_as(admin, LIMITS)
    assert not at.exception
    assert "No limits yet" in _texts(at.info)
    text = _texts(at.markdown) + _texts(at.caption)
    assert "A change applies to running workers at once" in text
    assert "one you clear comes back when a worker restarts, unless an admin sets that" in text

    _fill(at, "  openai/gpt-4o ", rpm=500, tpm=30_000)
    assert _saved(pool) == [("openai/gpt-4o", 500, 30_000, None, "admin", "root-admin")]
    assert "Limit openai/gpt-4o set" in _texts(at.success)
    assert _form(at) == ("", None, None, None)
    [table] = [d.value for d in at.dataframe]
    assert table.to_dict("records") == [
        {
            "Model or prefix": "openai/gpt-4o",
            "Requests per minute": "500",
            "Tokens per minute": "30,000",
            "Calls in flight": "–",
            "Source": "admin",
            "Set by": "root-admin",
            "When": table["When"][0],
        }
    ]
    assert table["When"][0].endswith(" UTC")

    # a prefix, then the same prefix again: its three caps are replaced
    _fill(at, "anthropic/", concurrent=4)
    _fill(at, "anthropic/", rpm=50)
    assert _saved(pool)[0] == ("anthropic/", 50, None, None, "admin", "root-admin")
    assert [d.value["Model or prefix"].tolist() for d in at.dataframe] == [
        ["anthropic/", "openai/gpt-4o"]
    ]


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"model": "open ai", "rpm": 5}, "Model or prefix: the model or prefix must be a model"),
        ({"model": "", "rpm": 5}, "Model or prefix: the model or prefix is empty"),
        ({"model": "openai/x", "rpm": 0}, "Requests per minute (rpm): rpm must be from 1 to"),
        ({"model": "openai/x", "tpm": -5}, "Tokens per minute (tpm): tpm must be from 1 to"),
        (
            {"model": "openai/x", "rpm": 5, "concurrent": 100_001},
            "Calls in flight (concurrent): concurrent must be from 1 to 100,000",
        ),
        ({"model": "openai/x"}, "Give at least one cap"),
    ],
)
def test_bad_values_are_refused_naming_the_field_and_nothing_is_written(
    app_as, pool, admin, values, said
):
    at = app_as(admin, LIMITS)
    _fill(at, **values)
    assert said in _texts(at.error)
    assert not at.success
    assert _saved(pool) == []
    # what was typed stays, to be corrected
    typed = (values["model"], *(values.get(f) for f in ("rpm", "tpm", "concurrent")))
    assert _form(at) == typed


def test_clearing_asks_first_and_an_environment_limit_is_said_to_come_back(app_as, pool, admin):
    limits.set_limit(pool, admin, "openai/", rpm=50)
    with pool.connection() as conn:  # as a worker writes LLMJOBS_MODEL_LIMITS at its start
        conn.execute(
            "INSERT INTO llmjobs_model_limits (pattern, tpm, source, updated_by)"
            " VALUES ('anthropic/', 9000, 'env', 'LLMJOBS_MODEL_LIMITS')"
        )
    at = app_as(admin, LIMITS)
    table = at.dataframe[0].value
    assert table[["Model or prefix", "Source", "Set by"]].values.tolist() == [
        ["anthropic/", "env", "LLMJOBS_MODEL_LIMITS"],
        ["openai/", "admin", "root-admin"],
    ]

    at.selectbox(key="limits_chosen").set_value("anthropic/").run()
    at.button(key="limits_clear").click().run()
    assert not at.exception
    asked = _texts(at.warning)
    assert "Clear the limit of anthropic/?" in asked
    assert "it comes back when a worker restarts" in asked
    assert len(_saved(pool)) == 2  # nothing cleared yet
    at.button(key="limits_clear_no").click().run()
    assert not at.warning and len(_saved(pool)) == 2

    at.selectbox(key="limits_chosen").set_value("openai/").run()
    at.button(key="limits_clear").click().run()
    asked = _texts(at.warning)
    assert "Clear the limit of openai/?" in asked and "comes back" not in asked
    at.button(key="limits_clear_yes").click().run()
    assert not at.exception
    assert "Limit openai/ cleared" in _texts(at.success)
    assert [p[0] for p in _saved(pool)] == ["anthropic/"]
    assert not at.warning
    assert at.dataframe[0].value["Model or prefix"].tolist() == ["anthropic/"]


def test_edit_copies_a_limit_into_the_form_and_saving_makes_it_the_admins(app_as, pool, admin):
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO llmjobs_model_limits (pattern, rpm, tpm, source, updated_by)"
            " VALUES ('anthropic/', 50, 9000, 'env', 'LLMJOBS_MODEL_LIMITS')"
        )
    at = app_as(admin, LIMITS)
    at.button(key="limits_edit").click().run()
    assert _form(at) == ("anthropic/", 50, 9000, None)
    at.number_input(key="limits_set_rpm").set_value(80)
    at.button(key=SAVE).click().run()
    assert _saved(pool) == [("anthropic/", 80, 9000, None, "admin", "root-admin")]
