"""A deterministic JSON value for a JSON Schema: what the offline models answer when asked for one.

The value follows the keywords analysts' schemas use: `type`, `properties` (every property),
`items` and `prefixItems`, `enum` and `const`, bounds of numbers, strings and arrays, local
`$ref`s, and the first branch of `anyOf`/`oneOf`/`allOf`. Strings are drawn from the words given
(the prompt), so two prompts get different values. A schema beyond that may get a value that does
not validate; the worker validates every answer anyway.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 12  # a recursive schema stops here
MAX_ITEMS = 3  # items of an array with no minItems
# The most a value makes, whatever the schema asks (minItems, minLength): a schema asking for
# more gets a value that does not validate, never a huge one.
MAX_MADE_ITEMS = 100
MAX_MADE_CHARS = 2_000


def instance(schema: Any, words: list[str]) -> Any:
    """A value for schema (a Draft 2020-12 JSON Schema), its strings taken from words."""
    return _value(schema, schema, words or ["answer"], 0, [0])


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}
    return node


def _text(words: list[str], turn: list[int], schema: dict[str, Any]) -> str:
    low = min(_count(schema.get("minLength"), 0), MAX_MADE_CHARS)
    high = schema.get("maxLength")
    high = _count(high, 0) if high is not None else None
    start = turn[0] % len(words)
    turn[0] += 1
    text = " ".join(words[start : start + 6]) or words[0]
    if high is not None:
        text = text[:high]
    while len(text) < low:
        text += " " + words[(start + len(text)) % len(words)]
    text = text[: max(low, high if high is not None else len(text))]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        text = _matching(pattern, [text, *words, *(w.lower() for w in words), "a", "abc", "0"])
    return text


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _matching(pattern: str, candidates: list[str]) -> str:
    """The first candidate the pattern matches (the first candidate when none does)."""
    from tasks.llm.schemas import compiled_pattern

    try:
        compiled = compiled_pattern(pattern)
    except Exception:  # a pattern the schema check refuses
        return candidates[0]
    return next((c for c in candidates if compiled.search(c) is not None), candidates[0])


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 0 if low is None else low
    if "exclusiveMinimum" in schema and "minimum" not in schema:
        value = low + 1 if integer else low + 0.5
    if high is not None and value > high:
        value = high
    if "exclusiveMaximum" in schema and "maximum" not in schema and value >= high:
        value = high - 1 if integer else high - 0.5
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0:
        value = math.ceil(value / step) * step
    return math.ceil(value) if integer else value


def _value(schema: Any, root: Any, words: list[str], depth: int, turn: list[int]) -> Any:
    if schema is True or not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None if depth > MAX_DEPTH else _text(words, turn, {})
    if "$ref" in schema and isinstance(schema["$ref"], str):
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        return _value({**_resolve(root, schema["$ref"]), **merged}, root, words, depth + 1, turn)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combined in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(combined)
        if isinstance(branches, list) and branches and isinstance(branches[0], dict):
            rest = {k: v for k, v in schema.items() if k != combined}
            return _value({**branches[0], **rest}, root, words, depth + 1, turn)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        if "properties" in schema or "required" in schema:
            kind = "object"
        elif "items" in schema or "prefixItems" in schema:
            kind = "array"
        else:
            kind = "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = [n for n in schema.get("required") or [] if isinstance(n, str)]
        # an optional property is left out below the top levels, or where it refers elsewhere
        # (a recursive schema's `child` would nest to the depth limit)
        names = [
            n
            for n in properties
            if n in required
            or (depth < 2 and not (isinstance(properties[n], dict) and "$ref" in properties[n]))
        ] + [n for n in required if n not in properties]
        return {
            name: _value(properties.get(name, {}), root, words, depth + 1, turn) for name in names
        }
    if kind == "array":
        prefix = schema.get("prefixItems") or []
        low = _count(schema.get("minItems"), 1)
        high = schema.get("maxItems")
        count = max(len(prefix), min(max(low, 1), MAX_ITEMS) if high is None else min(high, 1))
        count = min(max(count, low), MAX_MADE_ITEMS)
        items = schema.get("items", {})
        made = [
            _value(prefix[i] if i < len(prefix) else items, root, words, depth + 1, turn)
            for i in range(count)
        ]
        return _distinct(made) if schema.get("uniqueItems") is True else made
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _text(words, turn, schema)


def _distinct(items: list[Any]) -> list[Any]:
    """Items made distinct where they repeat: numbers counted up, text numbered."""
    seen: list[Any] = []
    for item in items:
        step = 0
        while item in seen and step < len(items):
            step += 1
            if isinstance(item, int | float) and not isinstance(item, bool):
                item = item + 1
            elif isinstance(item, str):
                item = f"{item} {step}"
        seen.append(item)
    return seen


def broken(schema: Any, good: Any) -> Any:
    """A value that breaks schema where a model typically does: a required property left out,
    else a number given as text, else a value of another type."""
    if isinstance(good, dict) and isinstance(schema, dict):
        required = [n for n in schema.get("required") or [] if n in good]
        if required:
            return {k: v for k, v in good.items() if k != required[-1]}
        for name, value in good.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                return {**good, name: str(value)}
    return {"answer": good} if not isinstance(good, dict) else [good]
