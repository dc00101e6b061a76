from __future__ import annotations

import pytest

from tasks.errors import InvalidInput
from tasks.llm.rendering import MAX_CONTEXT_BYTES, MAX_TEMPLATE_BYTES, check_template, render


def test_renders_variables_and_filters():
    assert render("Explain {{ concept | upper }} to {{who}}", {"concept": "ai", "who": "me"}) == (
        "Explain AI to me"
    )


def test_loops_and_nested_values():
    template = "{% for s in steps %}{{ loop.index }}. {{ s.name }}\n{% endfor %}"
    assert render(template, {"steps": [{"name": "a"}, {"name": "b"}]}) == "1. a\n2. b\n"


def test_check_template_lists_variables():
    assert check_template("{{a}} {{ b.c }} {% for x in items %}{{x}}{% endfor %}") == {
        "a",
        "b",
        "items",
    }


@pytest.mark.parametrize(
    ("template", "context", "field", "fragment"),
    [
        ("Explain {{concept}} to {{who}}", {}, "context", "missing variables: concept, who"),
        ("{{ user.name }}", {"user": {}}, "context", "undefined value"),
        ("{{ unclosed", {}, "template", "syntax error on line 1"),
        ("{% for x in %}", {}, "template", "syntax error"),
        ("", {}, "template", "is empty"),
        ("   ", {}, "template", "is empty"),
        ("{{ x }}", {"x": ""}, "template", "renders to an empty prompt"),
        ("{{ ''.__class__.__mro__ }}", {}, "context", "undefined value"),
        ("{{ cycler.__init__.__globals__ }}", {}, "template", "not allowed in the sandbox"),
        ("{{ x.__class__.__subclasses__() }}", {"x": 1}, "context", "undefined value"),
        ("{{ 'a' * 100000000 }}", {}, "template", "template too expensive"),
        ("{{ 10 ** 100000 }}", {}, "template", "template too expensive"),
        ("{{ 1 / 0 }}", {}, "template", "ZeroDivisionError"),
        ("a\x00b", {}, "template", "NUL"),
        ("a\ud800b", {}, "template", "lone surrogate"),
        ("{{x}}", {"x": "\udfff"}, "context", "not valid JSON"),
        ("{{x}}", [], "context", "must be a JSON object"),
        ("{{x}}", {"x": "a\x00"}, "context", "NUL"),
    ],
)
def test_refusals_name_the_field(template, context, field, fragment):
    with pytest.raises(InvalidInput) as caught:
        render(template, context)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_size_bounds():
    with pytest.raises(InvalidInput, match="larger than 32 KiB"):
        check_template("x" * (MAX_TEMPLATE_BYTES + 1))
    with pytest.raises(InvalidInput, match="larger than 64 KiB"):
        render("{{x}}", {"x": "y" * MAX_CONTEXT_BYTES})
    assert render("{{x}}", {"x": "y" * 1000}) == "y" * 1000


def test_no_autoescape_for_prompts():
    assert render("{{x}}", {"x": "<b>&</b>"}) == "<b>&</b>"
