"""How the Submit page words a refused request: variables to fill in, a template's syntax error
with its line, column and what was expected, and other errors without `field:` prefixes."""

from __future__ import annotations

import pytest

from dashboard import forms
from tasks.errors import InvalidInput
from tasks.llm import rendering


def _template_problem(template: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        rendering.check_template(template)
    return forms.problem(caught.value, template)


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("Explain {{ concept ", "line 1, column 19: the template ends too early: expected `}}`"),
        ("Hi\n{{ a + }}", "line 2, column 8: `}}` was not expected here"),
        ("{{ x y }}", "line 1, column 6: expected `}}` but found `y`"),
        ("{% foo %}", "line 1, column 4: there is no tag `{% foo %}`"),
        (
            "a {% for x in y %} b",
            "line 1, column 21: the `{% for %}` block is never closed: expected `{% endfor %}`",
        ),
        (
            "a {% endif %}",
            "line 1, column 6: `{% endif %}` closes nothing: no `{% if %}` block is open",
        ),
        (
            "{{ }}",
            "line 1, column 4: expected a value (a variable, text or a number) but found `}}`",
        ),
        ("{{ a[ }}", "line 1, column 7: expected `]` but found `}`"),
        ("x\n  {# note", "line 2, column 3: a comment `{#` is never closed: expected `#}`"),
        (
            "{% if x %}a{% endfor %}",
            "line 1, column 15: `{% endfor %}` cannot close the open `{% if %}` block: "
            "expected `{% endif %}`",
        ),
    ],
)
def test_a_syntax_error_names_line_column_and_what_was_expected(template, words):
    assert _template_problem(template) == f"The template has a mistake on {words}."


def test_missing_variables_are_named_without_prefixes():
    with pytest.raises(InvalidInput) as caught:
        rendering.render("{{ concept }} for {{ audience }}", {"concept": "x"})
    assert forms.problem(caught.value) == "Fill in: audience"


def test_other_errors_name_their_field_in_words():
    assert forms.problem(InvalidInput("context", "is not valid JSON: oops")) == (
        "The context is not valid JSON: oops."
    )
    assert forms.problem(InvalidInput("context", "undefined value: 'x'")) == "Undefined value: 'x'"


@pytest.mark.parametrize(
    ("cost", "full", "short"),
    [
        (None, "–", "–"),
        (0, "$0", "$0"),
        (0.0034, "$0.0034", "$0.0034"),
        (0.381234, "$0.381234", "$0.38"),
        (1234.5, "$1234.5", "$1,234.50"),
    ],
)
def test_costs_read_in_full_and_in_short(cost, full, short):
    from dashboard import ui

    assert (ui.dollars(cost), ui.dollars_short(cost)) == (full, short)
