"""JSON Schemas at the door (tasks.llm.schemas.check_schema) and answers against them
(validation_errors), and the values the offline models make for a schema (tasks.llm.instances)."""

from __future__ import annotations

import json

import pytest

from tasks.errors import InvalidInput
from tasks.llm import instances, schemas

REVIEW = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 80},
        "risks": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["summary", "risks", "score"],
    "additionalProperties": False,
}


def _refused(schema) -> str:
    with pytest.raises(InvalidInput) as caught:
        schemas.check_schema(schema)
    assert caught.value.field == "json_schema"
    return caught.value.message


def test_a_good_schema_is_taken_as_a_dict_or_its_json_text():
    assert schemas.check_schema(REVIEW) == REVIEW
    assert schemas.check_schema(json.dumps(REVIEW)) == REVIEW


def _branching(levels: int) -> dict:
    defs = {
        f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}, {"$ref": f"#/$defs/a{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"a{levels}"] = False
    return {"$defs": defs, "$ref": "#/$defs/a0"}


def _deep(levels: int) -> dict:
    schema: dict = {}
    for _ in range(levels):
        schema = {"items": schema}
    return schema


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ("[1, 2]", "a JSON Schema is a JSON object"),
        ("{not json", "not valid JSON"),
        ([{"type": "string"}], "a JSON Schema is a JSON object"),
        ({"type": "strin"}, "$.type: 'strin' is not valid"),
        ({"properties": {"a": {"minimum": "one"}}}, "$.properties.a.minimum: 'one' is not"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "only Draft 2020-12"),
        ({"$ref": "https://example.com/s.json"}, "points outside the schema"),
        ({"$ref": "#/$defs/missing"}, "cannot be used"),
        ({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}, "without end"),
        ({"patternProperties": {"^x": {}}}, "patternProperties is not supported"),
        ({"pattern": "(?=a)b"}, "not supported (invalid perl operator"),
        ({"pattern": r"(a)\1"}, "without look-around or back-references"),
        ({"pattern": "a" * 1001}, "at most 1000 characters"),
        ({"enum": ["x" * 70_000]}, "a schema may take at most 65,536 bytes"),
        (_deep(40), "nested more than 32 levels"),
        ("[" * 100_000, "nested more than 32 levels"),
        ({"const": "a\x00b"}, "contains a NUL character"),
        ({"const": "\ud800"}, "is not valid Unicode text"),
        (_branching(40), "too expensive to check answers against"),
        ({"type": "number", "minimum": float("nan")}, "a number JSON cannot carry"),
        ('{"type": "number", "maximum": Infinity}', "a number JSON cannot carry"),
        ('{"maximum": 1.8e308}', "a number JSON cannot carry"),
        ('{"minimum": ' + "9" * 5000 + "}", "too many digits"),
        ({"minimum": 10**5000}, "a number JSON cannot carry"),
        (
            {"type": "array", "uniqueItems": True, "minItems": 5000},
            "$: uniqueItems over at least 5,000 items",
        ),
    ],
)
def test_a_bad_schema_is_refused_naming_the_problem(schema, says):
    assert says in _refused(schema)


def test_answers_break_a_schema_with_paths_and_words():
    errors = schemas.validation_errors(REVIEW, {"summary": "s", "risks": [1], "score": 7, "x": 0})
    found = {(e.path, e.message) for e in errors}
    assert ("$.risks[0]", "1 is not of type 'string'") in found
    assert ("$.score", "7 is greater than the maximum of 5") in found
    assert any(e.path == "$" and "'x' was unexpected" in e.message for e in errors)
    assert schemas.validation_errors(REVIEW, {"summary": "s", "risks": ["r"], "score": 3}) == []


def test_a_pattern_is_matched_in_linear_time():
    # Python's backtracking engine takes exponential time on this; RE2 answers at once
    schema = schemas.check_schema({"type": "string", "pattern": "^(a+)+$"})
    [error] = schemas.validation_errors(schema, "a" * 50_000 + "!")
    assert "does not match the pattern '^(a+)+$'" in error.message
    assert len(error.message) < 400  # the answer is cut in the message


def test_comparisons_of_unique_items_are_paid_for():
    schema = {"type": "array", "uniqueItems": True}
    with pytest.raises(schemas.SchemaTooExpensive):
        schemas.validation_errors(schema, [{"n": i} for i in range(20_000)])
    assert schemas.validation_errors(schema, [{"n": i} for i in range(200)]) == []


def test_at_most_five_errors_are_reported():
    schema = {"type": "array", "items": {"type": "integer"}}
    assert len(schemas.validation_errors(schema, ["x"] * 50)) == schemas.MAX_REPORTED_ERRORS


@pytest.mark.parametrize(
    "schema",
    [
        REVIEW,
        {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5}},
        {
            "$defs": {"tag": {"enum": ["a", "b"]}},
            "type": "object",
            "properties": {
                "tags": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/tag"},
                    "minItems": 2,
                    "maxItems": 2,
                }
            },
            "required": ["tags"],
        },
        {"anyOf": [{"type": "string", "minLength": 30}, {"type": "integer"}]},
        {
            "type": "object",
            "required": ["id", "ok"],
            "properties": {"id": {"type": "integer", "minimum": 10}, "ok": {"const": True}},
        },
        {"type": ["null", "boolean"]},
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$"},
                "ids": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "minItems": 3,
                    "uniqueItems": True,
                },
                "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "uniqueItems": True},
            },
            "required": ["name", "ids"],
        },
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "child": {"$ref": "#"}},
            "required": ["name"],
        },
    ],
)
def test_the_offline_value_of_a_schema_validates_and_follows_the_words(schema):
    value = instances.instance(schema, ["tell", "me", "about", "tide", "pools"])
    assert schemas.validation_errors(schema, value) == []
    assert instances.instance(schema, ["tell", "me", "about", "tide", "pools"]) == value


def test_the_offline_value_stays_small_whatever_the_schema_asks():
    many = instances.instance({"type": "array", "minItems": 10**9}, ["w"])
    assert len(many) == instances.MAX_MADE_ITEMS
    long = instances.instance({"type": "string", "minLength": 10**9}, ["w"])
    assert len(long) <= instances.MAX_MADE_CHARS + 10


def test_the_broken_value_breaks_the_schema():
    good = instances.instance(REVIEW, ["words"])
    assert schemas.validation_errors(REVIEW, instances.broken(REVIEW, good))
