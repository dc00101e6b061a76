from __future__ import annotations

import json

import pytest

from tasks.llm.formats import ParseError, parse
from tasks.llm.rendering import MAX_CONTEXT_DEPTH


def test_text_and_markdown_kept_as_is():
    assert parse("text", "  hello  ") == "  hello  "
    assert parse("markdown", "# T\n\n<b>x</b>") == "# T\n\n<b>x</b>"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("[1, 2]", [1, 2]),
        ("42", 42),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"a": 1}\n```', {"a": 1}),
    ],
)
def test_json_parsed(raw, value):
    assert parse("json", raw) == value


@pytest.mark.parametrize("raw", ["", "not json", '{"a": 1', 'Here: {"a": 1}', "NaNx"])
def test_invalid_json_raises_with_parser_message(raw):
    with pytest.raises(ParseError, match="not valid JSON"):
        parse("json", raw)


@pytest.mark.parametrize(
    ("raw", "forbidden"),
    [
        ("<p>hi</p><script>alert(1)</script>", "<script"),
        ('<img src="x" onerror="alert(1)">', "onerror"),
        ('<a href="javascript:alert(1)">x</a>', "javascript:"),
        ('<iframe src="https://example.org"></iframe>', "<iframe"),
        ("<style>body{}</style><p>x</p>", "<style"),
    ],
)
def test_html_sanitized(raw, forbidden):
    cleaned = parse("html", raw)
    assert forbidden not in cleaned


def test_html_keeps_safe_markup():
    assert (
        parse("html", "<h2>T</h2><p><strong>b</strong></p>")
        == "<h2>T</h2><p><strong>b</strong></p>"
    )


@pytest.mark.parametrize("levels", [MAX_CONTEXT_DEPTH + 1, 300, 10_000])
def test_json_answer_nested_too_deeply_is_a_parse_error(levels):
    raw = "[" * levels + "]" * levels
    with pytest.raises(ParseError, match=f"nested too deeply \\(at most {MAX_CONTEXT_DEPTH}"):
        parse("json", raw)


def test_json_answer_at_the_nesting_limit_is_kept():
    raw = "[" * MAX_CONTEXT_DEPTH + "]" * MAX_CONTEXT_DEPTH
    assert json.dumps(parse("json", raw)) == raw.replace("][", "], [")
