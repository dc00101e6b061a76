"""JSON Schemas of json outputs: checked when they are submitted, and every answer validated.

A schema is a JSON Schema of Draft 2020-12 (jsonschema's Draft202012Validator). What a schema may
hold is bounded, so that neither its check nor the validation of an answer can pin a core:

- its size (MAX_SCHEMA_BYTES as compact JSON) and nesting (MAX_SCHEMA_DEPTH levels);
- references stay inside the schema (`$ref: "#/$defs/x"`); nothing is ever fetched;
- `pattern` is matched by RE2 (google-re2: linear time, no look-around or back-references);
  `patternProperties`, whose keys the library matches with Python's backtracking engine, is
  refused;
- each validation spends at most MAX_STEPS keyword evaluations (a schema whose branches multiply,
  `anyOf` of `anyOf`s, stops there), and `uniqueItems` pays for the comparisons it makes.

A schema that passes `check_schema` validates some sample values within the budget; one that
still runs out on an answer fails that output with a message saying so (SchemaTooExpensive).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

from tasks.errors import InvalidInput
from tasks.llm.rendering import nesting

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_STEPS = 30_000
MAX_PATTERN_CHARS = 1_000
# The most items uniqueItems can compare within the budget (it pays n * n / 16 steps).
_MAX_UNIQUE_ITEMS = int((16 * MAX_STEPS) ** 0.5)
# The errors an answer's failure reports, and that a re-ask sends back to the model.
MAX_REPORTED_ERRORS = 5
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DIALECTS = {DIALECT, DIALECT + "#"}


class SchemaTooExpensive(ValueError):
    """Validating against this schema took more than its budget of steps."""


@dataclass(frozen=True)
class SchemaError:
    """One way an answer breaks its schema: where (a JSON path such as `$.risks[0]`) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# steps left to the validation running in this context (None: not metered)
_budget: ContextVar[list[int] | None] = ContextVar("schema_budget", default=None)


def _spend(steps: int) -> None:
    left = _budget.get()
    if left is None:
        return
    left[0] -= steps
    if left[0] < 0:
        raise SchemaTooExpensive(
            f"validating against this schema takes more than {MAX_STEPS:,} steps"
        )


def _metered(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        _spend(1)
        return keyword(validator, value, instance, schema) or iter(())

    return run


def _unique_items(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if value and isinstance(instance, list):
            _spend(len(instance) * len(instance) // 16 + 1)  # the comparisons it may make
        return keyword(validator, value, instance, schema) or iter(())

    return run


@cache
def _options() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported to the user, not to stderr
    options.max_mem = 8 << 20
    return options


@cache
def compiled_pattern(pattern: str) -> Any:
    """A schema's `pattern` compiled by RE2 (re2.error when RE2 cannot take it)."""
    import re2

    return re2.compile(pattern, options=_options())


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    _spend(1 + len(instance) // 1000 if isinstance(instance, str) else 1)
    if validator.is_type(instance, "string") and compiled_pattern(pattern).search(instance) is None:
        yield ValidationError(f"{_short(instance)} does not match the pattern {pattern!r}")


@cache
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    keywords = {name: _metered(fn) for name, fn in Draft202012Validator.VALIDATORS.items()}
    keywords["uniqueItems"] = _metered(
        _unique_items(Draft202012Validator.VALIDATORS["uniqueItems"])
    )
    keywords["pattern"] = _metered(_pattern)
    return validators.extend(Draft202012Validator, keywords)


def _validator(schema: dict[str, Any]) -> Any:
    from referencing import Registry

    # An empty registry: a reference outside the schema is unresolvable, never fetched.
    return _validator_class()(schema, registry=Registry())


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += (
            f"[{part}]"
            if isinstance(part, int)
            else (f".{part}" if str(part).isidentifier() else f"[{json.dumps(str(part))}]")
        )
    return path


def _walk(node: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any], str, Any]]:
    """(where, the object, keyword, value) of each keyword in the schema, iteratively."""
    pending = [(node, where)]
    while pending:
        current, at = pending.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                yield at, current, key, value
                pending.append((value, f"{at}.{key}" if key.isidentifier() else f"{at}[{key!r}]"))
        elif isinstance(current, list):
            pending.extend((item, f"{at}[{i}]") for i, item in enumerate(current))


def given(schema: Any) -> bool:
    """Whether a request gives a schema: None, {} and an empty or blank text give none."""
    if schema is None or schema == {}:
        return False
    return not (isinstance(schema, str) and not schema.strip())


def check_optional(schema: Any, field: str = "json_schema") -> dict[str, Any] | None:
    """check_schema for a schema that may be absent (see given): None when it is."""
    return check_schema(schema, field) if given(schema) else None


def check_schema(schema: Any, field: str = "json_schema") -> dict[str, Any]:
    """The schema, if it is one this system can ask for and validate answers against; otherwise
    InvalidInput naming the field and the problem in words."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise InvalidInput(field, f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
        except RecursionError:
            raise InvalidInput(field, f"nested more than {MAX_SCHEMA_DEPTH} levels") from None
        except ValueError:  # an integer of more digits than Python converts
            raise InvalidInput(field, "holds a number with too many digits") from None
    if not isinstance(schema, dict):
        raise InvalidInput(field, 'a JSON Schema is a JSON object, such as {"type": "object"}')
    if nesting(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        raise InvalidInput(field, f"nested more than {MAX_SCHEMA_DEPTH} levels")
    try:
        text = json.dumps(schema, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or an infinity (JSON has neither), or an integer too long
        raise InvalidInput(
            field, "holds a number JSON cannot carry (NaN, Infinity, or too many digits)"
        ) from None
    if "\\u0000" in text or "\x00" in text:
        raise InvalidInput(field, "contains a NUL character")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(field, "is not valid Unicode text") from None
    if size > MAX_SCHEMA_BYTES:
        raise InvalidInput(
            field, f"{size:,} bytes; a schema may take at most {MAX_SCHEMA_BYTES:,} bytes"
        )
    problem = _problem(text)
    if problem is not None:
        raise InvalidInput(field, problem)
    return schema


@cache
def _problem(text: str) -> str | None:
    """What makes a schema (its compact JSON, within the size and depth bounds) unusable, in
    words, or None. Remembered: a stored schema checked again at each use (a library version's,
    an agent's) costs its check once per process."""
    schema = json.loads(text)
    dialect = schema.get("$schema")
    if dialect is not None and dialect not in _DIALECTS:
        return f"$schema {_short(dialect)}: only Draft 2020-12 ({DIALECT}) is supported"
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as JsonSchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except JsonSchemaError as exc:
        return f"{_path(exc.path)}: {exc.message}"
    for at, node, keyword, value in _walk(schema):
        if keyword in ("$ref", "$dynamicRef") and isinstance(value, str):
            if not value.startswith("#"):
                return (
                    f"{at}: {keyword} {_short(value)} points outside the schema; only references "
                    "inside it (#/$defs/...) are allowed"
                )
        elif keyword == "patternProperties":
            return (
                f"{at}: patternProperties is not supported; name the properties, or use "
                "propertyNames with a pattern and additionalProperties"
            )
        elif keyword == "pattern" and isinstance(value, str):
            problem = _pattern_problem(at, value)
            if problem is not None:
                return problem
        elif (
            keyword == "minItems"
            and isinstance(value, int)
            and value > _MAX_UNIQUE_ITEMS
            and node.get("uniqueItems") is True
        ):
            return (
                f"{at}: uniqueItems over at least {value:,} items: checking an answer would "
                f"take more than {MAX_STEPS:,} steps (at most {_MAX_UNIQUE_ITEMS} items)"
            )
    from tasks.llm.instances import instance

    token = _budget.set([MAX_STEPS])  # one budget for all the samples
    try:
        for sample in (None, {}, [], "", 0, instance(schema, ["sample"])):
            _errors(schema, sample)
    except SchemaTooExpensive as exc:
        return f"too expensive to check answers against: {exc}"
    except RecursionError:
        return "it refers to itself without end"
    except Exception as exc:  # an unresolvable reference, above all
        return f"cannot be used: {_short(str(exc), 200)}"
    finally:
        _budget.reset(token)
    return None


def _pattern_problem(at: str, pattern: str) -> str | None:
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"{at}: a pattern may take at most {MAX_PATTERN_CHARS} characters"
    import re2

    try:
        compiled_pattern(pattern)
    except re2.error as exc:
        problem = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        return (
            f"{at}: the pattern {_short(pattern)} is not supported ({problem}); patterns are "
            "matched in linear time, without look-around or back-references"
        )
    return None


def validation_errors(schema: dict[str, Any], value: Any) -> list[SchemaError]:
    """How value breaks the schema: the first MAX_REPORTED_ERRORS errors, the deepest first
    (empty: it validates). Raises SchemaTooExpensive past the budget of steps."""
    token = _budget.set([MAX_STEPS])
    try:
        return _errors(schema, value)
    except RecursionError:
        raise SchemaTooExpensive("the schema refers to itself without end") from None
    finally:
        _budget.reset(token)


def _errors(schema: dict[str, Any], value: Any) -> list[SchemaError]:
    found = []
    for error in _validator(schema).iter_errors(value):
        found.append(SchemaError(_path(error.absolute_path), _cut(error.message)))
        if len(found) >= MAX_REPORTED_ERRORS:
            break
    return found


def describe(errors: list[SchemaError]) -> str:
    """The errors in one line, as a failure message or a re-ask shows them."""
    return "; ".join(str(error) for error in errors)
