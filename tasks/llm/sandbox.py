"""The Jinja2 environment prompts render in: the context's data only, and a work budget per render.

A template sees keys of objects and items of lists, never a method or attribute of a Python value,
and never prints a Python object. Every render spends from one budget: each pass of a loop or a
macro costs the expressions in its body, and calls, operators and the items filters go through
cost a step each; text built by filters, `~`, `+` and `%` counts as characters. Operations that
would build a huge value in one go (wide padding, a growing replace, big numbers) are refused
before they run. The limits are deterministic, so a template the submit check accepts renders the
same way in the worker.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import re
import types
from collections.abc import Callable, Iterable, Iterator, Sized
from contextvars import ContextVar
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.filters import FILTERS
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.visitor import NodeTransformer

MAX_STEPS = 100_000
MAX_CHARS = 4_000_000
MAX_NUMBER_BITS = 4_096
MAX_CALL_DEPTH = 64  # macros calling macros, recursive loops: well inside Python's own limit
# What all the renders checking one batch or bulk submission may spend together: a hundred
# full-budget renders (a few seconds of CPU), or 100 steps a row for the largest batch.
MAX_BATCH_STEPS = 100 * MAX_STEPS
MAX_BATCH_CHARS = 100 * MAX_CHARS
# The largest value a filter's size argument may take: padding width, chunk count, JSON indent.
_SIZE_ARGS = {
    "width": 1_000,
    "linecount": 10_000,
    "slices": 10_000,
    "indent": 16,
    "precision": 100,  # round(-10**7) computes 10**10**7
}
_MAX_FORMAT_WIDTH = 1_000
# Filters that cost more per character than copying it (textwrap, URL regexes).
_CHAR_WEIGHT = {"wordwrap": 50, "urlize": 10, "striptags": 4, "title": 4, "wordcount": 4}
# Methods of Python values people reach for, and the filter that does the same.
_FILTER_FOR = {
    "items": "items",
    "keys": "list",
    "upper": "upper",
    "lower": "lower",
    "title": "title",
    "capitalize": "capitalize",
    "strip": "trim",
    "replace": "replace",
    "format": "format",
    "join": "join",
    "count": "length",
    "__len__": "length",
}
_CONTEXT_ARGS = frozenset({"environment", "env", "eval_ctx", "context"})
_DATA_SCALARS = (str, int, float, bool, type(None))


class TemplateTooExpensive(SecurityError):
    """The render went past its work budget; the message names the limit."""


class _Meter:
    __slots__ = ("chars", "depth", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.chars = 0
        self.depth = 0

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_STEPS:
            raise TemplateTooExpensive(
                f"more than {MAX_STEPS} steps (each pass of a loop or macro costs the "
                f"expressions in it; filters cost the items they go through) (limit {MAX_STEPS})"
            )

    def build(self, count: int) -> None:
        self.chars += count
        if self.chars > MAX_CHARS:
            raise TemplateTooExpensive(
                f"builds more than {MAX_CHARS} characters of text (limit {MAX_CHARS})"
            )

    def charge(self, value: Any, weight: int = 1) -> Any:
        if isinstance(value, str):
            self.build(len(value) * weight)
        elif isinstance(value, Sized):
            self.step(len(value))
        return value


class Spent:
    """What several renders spent together (each in its own metered block); over() names the
    batch limit passed, if any."""

    __slots__ = ("chars", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.chars = 0

    def add(self, meter: _Meter) -> None:
        self.steps += meter.steps
        self.chars += meter.chars

    def over(self) -> str | None:
        if self.steps > MAX_BATCH_STEPS:
            return f"more than {MAX_BATCH_STEPS} steps across its rows (limit {MAX_BATCH_STEPS})"
        if self.chars > MAX_BATCH_CHARS:
            return (
                f"builds more than {MAX_BATCH_CHARS} characters of text across its rows "
                f"(limit {MAX_BATCH_CHARS})"
            )
        return None


_METER: ContextVar[_Meter] = ContextVar("llmjobs_render_meter")


@contextlib.contextmanager
def metered(spent: Spent | None = None) -> Iterator[_Meter]:
    """A fresh work budget for the renders inside the block; what they spent is added to spent
    when the block ends, however it ends."""
    token = _METER.set(meter := _Meter())
    try:
        yield meter
    finally:
        _METER.reset(token)
        if spent is not None:
            spent.add(meter)


def _meter() -> _Meter:
    try:
        return _METER.get()
    except LookupError:
        raise TemplateTooExpensive("rendered outside a metered block") from None


def _each(items: Iterable[Any]) -> Iterator[Any]:
    meter = _meter()
    for item in items:
        meter.step()
        yield item


def _objects(value: Any, meter: _Meter) -> str | None:
    """The kind of the first Python object (not data) inside value, or None; walks containers
    without recursion and charges what it walks."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _DATA_SCALARS):
            continue
        if isinstance(item, dict):
            meter.step(len(item))
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            meter.step(len(item))
            pending.extend(item)
        elif isinstance(item, jinja2.Undefined):
            str(item)  # StrictUndefined: raises the missing value's own error
        else:
            return type(item).__name__
    return None


def _printable(value: Any) -> Any:
    """Jinja's finalize: what `{{ }}` prints must be data, never a Python object's repr."""
    found = _objects(value, _meter())
    if found is not None:
        raise SecurityError(
            f"cannot print a {found} (only text, numbers, lists and objects; "
            "a filter's sequence needs |list or |join)"
        )
    return value


def _lazy(value: Any) -> bool:
    """A sequence a filter returned without reading it (map, select, reverse, items...)."""
    return isinstance(value, types.GeneratorType) or (
        isinstance(value, Iterator) and type(value).__module__ == "builtins"
    )


def _as_data(value: Any, meter: _Meter, *, undefined_ok: bool = False) -> Any:
    """Value as a filter or an operator may take it: data, with a lazy sequence or a range read
    into a list (paid for per item), never a Python object; an undefined value only where
    undefined_ok (the value `default` replaces)."""
    if isinstance(value, jinja2.Undefined):
        if not undefined_ok:
            str(value)  # StrictUndefined: raises the missing value's own error
        return value
    if isinstance(value, range):
        meter.step(len(value))
        return list(value)
    if _lazy(value):
        value = list(_each(value))
    found = _objects(value, meter)
    if found is not None:
        raise SecurityError(f"a filter or operator cannot take a {found}")
    return value


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: Any, values: Any) -> None:
    """Refuse a %-format that would build a huge string: a wide field, or many fields each
    filled with a long value."""
    if not isinstance(fmt, str):
        return
    fields = 0
    for match in _PRINTF.finditer(fmt):
        fields += 1
        for part in match.groups():
            if part == "*" or (part and int(part) > _MAX_FORMAT_WIDTH):
                raise TemplateTooExpensive(
                    f"format width or precision above {_MAX_FORMAT_WIDTH} "
                    f"(limit {_MAX_FORMAT_WIDTH})"
                )
    if fields:
        given = values.values() if isinstance(values, dict) else values
        given = given if isinstance(given, list | tuple) or isinstance(values, dict) else [given]
        longest = max((len(str(v)) for v in given), default=0)
        _meter().build(len(fmt) + fields * longest)


def _bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _before_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        found = len(s) + 1 if old == "" else s.count(old)
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        _meter().build(len(s) + found * max(len(new) - len(old), 0))


def _before_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):
        raise SecurityError("sum takes numbers only")


def _before_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(value, kwargs or args)


def _before_join(value: Any, d: Any = "", attribute: Any = None) -> None:
    if isinstance(d, str) and isinstance(value, list | tuple | dict | str):
        _meter().build(len(d) * max(len(value) - 1, 0))


def _before_wordwrap(
    s: Any, width: Any = 79, *args: Any, wrapstring: Any = None, **kw: Any
) -> None:
    if isinstance(s, str) and isinstance(wrapstring, str) and isinstance(width, int):
        _meter().build(len(s) + (len(s) // max(width, 1) + 1) * len(wrapstring))


def _before_indent(s: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    if isinstance(s, str):
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _meter().build(len(s) + (s.count("\n") + 1) * max(pad, 0))


# Checks made before the filter runs, with the filter's own arguments (its value first).
_BEFORE: dict[str, Callable[..., None]] = {
    "replace": _before_replace,
    "sum": _before_sum,
    "format": _before_format,
    "join": _before_join,
    "wordwrap": _before_wordwrap,
    "indent": _before_indent,
}


def _metered_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    try:
        names = [p.name for p in inspect.signature(func).parameters.values()]
    except (TypeError, ValueError):  # a C function (abs, escape): its value comes first
        names = []
    if names and names[0] in _CONTEXT_ARGS:
        names = names[1:]
    # Jinja marks filters it passes a context, environment or eval context to first.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    sized = [(n, i, _SIZE_ARGS[n]) for i, n in enumerate(names) if n in _SIZE_ARGS and i >= 1]
    before = _BEFORE.get(name)
    weight = _CHAR_WEIGHT.get(name, 1)

    def run(*args: Any, **kwargs: Any) -> Any:
        meter = _meter()
        meter.step()
        own = [_as_data(v, meter, undefined_ok=i == 0) for i, v in enumerate(args[skip:])]
        kwargs = {k: _as_data(v, meter) for k, v in kwargs.items()}
        args = (*args[:skip], *own)
        if own and isinstance(own[0], str):
            meter.build(len(own[0]) * weight)
        for param, index, most in sized:
            given = kwargs.get(param, own[index] if index < len(own) else None)
            size = len(given) if isinstance(given, str) else given
            if isinstance(size, int | float) and abs(size) > most:
                raise TemplateTooExpensive(f"{name}: {param} beyond {most} (limit {most})")
        if before is not None:
            before(*own, **kwargs)
        result = func(*args, **kwargs)
        if isinstance(result, str):  # a list it returns holds what its input held, paid for
            meter.build(len(result))
        return result

    run.__dict__.update(getattr(func, "__dict__", {}))  # keeps Jinja's pass_* marker
    return run


def _metered_test(func: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        meter = _meter()
        meter.step()
        for item in (*args, *kwargs.values()):
            meter.charge(item)
        return func(*args, **kwargs)

    run.__dict__.update(getattr(func, "__dict__", {}))
    return run


def _compared(value: Any) -> Any:
    """A comparison's operand, charged: `in` and `==` walk whole strings and lists."""
    return _meter().charge(value)


def _wrap(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _pay_per_pass(node: nodes.For | nodes.Macro | nodes.CallBlock) -> None:
    """Each pass through a body that runs many times pays for every expression in it."""
    size = sum(1 for part in node.body for _ in part.find_all(nodes.Expr))
    cost = _wrap(nodes.Const(size, lineno=node.lineno), "_llmjobs_cost")
    node.body.insert(0, nodes.ExprStmt(cost, lineno=node.lineno))


class _Metering(NodeTransformer):
    """Counts each loop iteration and what `~` builds, in the compiled template itself."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _wrap(node.iter, "_llmjobs_each")
        _pay_per_pass(node)
        return node

    def visit_Macro(self, node: nodes.Macro) -> nodes.Node:
        self.generic_visit(node)
        _pay_per_pass(node)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(n, "_llmjobs_text") for n in node.nodes]
        return _wrap(node, "_llmjobs_built")

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _wrap(node.expr, "_llmjobs_compared")
        for operand in node.ops:
            operand.expr = _wrap(operand.expr, "_llmjobs_compared")
        return node

    def visit_FilterBlock(self, node: nodes.FilterBlock) -> nodes.Node:
        node.body = [self.visit(n) for n in node.body]
        return node

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node:
        node.body = [self.visit(n) for n in node.body]
        return node

    def visit_CallBlock(self, node: nodes.CallBlock) -> nodes.Node:
        node.body = [self.visit(n) for n in node.body]
        _pay_per_pass(node)
        return node


def _at_render(func: Callable[[Any], Any]) -> Callable[..., Any]:
    """The meter's own filters, marked so that Jinja never runs them while compiling."""
    return jinja2.pass_context(lambda context, value: func(value))


def _cost(size: int) -> None:
    _meter().step(size)


def _built(value: Any) -> Any:
    return _meter().charge(value)


class PromptSandbox(SandboxedEnvironment):
    """Jinja's sandbox, reduced to the context's data and metered (see the module's doc)."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset()

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=_at_render(_printable),
        )
        self.globals.pop("lipsum", None)  # paragraphs of filler: no use in a prompt, costly
        self.globals["range"] = _range
        self.filters = {name: _metered_filter(name, f) for name, f in FILTERS.items()}
        for name, func in [
            ("each", _each),
            ("text", _printable),
            ("built", _built),
            ("compared", _compared),
            ("cost", _cost),
        ]:
            self.filters[f"_llmjobs_{name}"] = _at_render(func)
        self.tests = {name: _metered_test(t) for name, t in self.tests.items()}

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict):
            return self._key(obj, attribute)
        if isinstance(obj, (*_DATA_SCALARS, list, tuple, range)):
            return self._missing(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, dict):
            return self._key(obj, argument)
        if isinstance(obj, str | list | tuple | range):
            if isinstance(argument, int | slice) and not isinstance(argument, bool):
                try:
                    return _meter().charge(obj[argument])
                except IndexError:
                    pass
            return self._missing(obj, argument)
        if isinstance(obj, _DATA_SCALARS):
            return self._missing(obj, argument)
        return super().getitem(obj, argument)

    def _key(self, obj: dict[Any, Any], key: Any) -> Any:
        try:
            return obj[key]
        except (KeyError, TypeError):
            return self._missing(obj, key)

    def _missing(self, obj: Any, name: Any) -> jinja2.Undefined:
        """Undefined; for a Python method's name, a message saying which filter does the job."""
        if not (isinstance(name, str) and hasattr(obj, name)):
            return self.undefined(obj=obj, name=name)
        instead = _FILTER_FOR.get(name)
        hint = (
            f"{name!r} is a method of Python's {type(obj).__name__}, and a template sees data only"
        )
        if instead:
            hint += f": use the |{instead} filter"
        return self.undefined(hint=hint, obj=obj, name=name)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        meter = _meter()
        meter.step()
        if isinstance(__obj, jinja2.runtime.LoopContext) and args:
            args = (_each(args[0]), *args[1:])  # a recursive loop's next level
        if meter.depth >= MAX_CALL_DEPTH:
            raise TemplateTooExpensive(
                f"macros or loops call themselves more than {MAX_CALL_DEPTH} deep "
                f"(limit {MAX_CALL_DEPTH})"
            )
        meter.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            meter.depth -= 1
        if isinstance(result, str):  # a macro's output; a range is paid for as it is walked
            meter.build(len(result))
        return result

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        meter = _meter()
        meter.step()
        if op == "**" and isinstance(right, int) and right > 0:
            if _bits(left) * right > MAX_NUMBER_BITS or right > MAX_NUMBER_BITS:
                _too_big()
        elif op == "*":
            if _bits(left) + _bits(right) > MAX_NUMBER_BITS + 1:
                _too_big()
            sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
            counts = [v for v in (left, right) if isinstance(v, int)]
            if sizes and counts:
                meter.build(sizes[0] * max(counts[0], 0))
        elif op == "%":
            _check_printf(left, right)
        if not (isinstance(left, int | float) and isinstance(right, int | float)):
            left, right = _as_data(left, meter), _as_data(right, meter)
        result = _BINOPS[op](left, right)
        if isinstance(result, int) and result.bit_length() > MAX_NUMBER_BITS:
            _too_big()
        return meter.charge(result)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_STEPS:
        raise TemplateTooExpensive(f"a range of more than {MAX_STEPS} numbers (limit {MAX_STEPS})")
    return numbers


def _too_big() -> None:
    raise TemplateTooExpensive(f"a number above 2**{MAX_NUMBER_BITS} (limit {MAX_NUMBER_BITS})")


def compile_template(source: str) -> tuple[jinja2.Template, frozenset[str]]:
    """The metered template and the names of the variables it uses.

    Raises jinja2.TemplateSyntaxError, and RecursionError for a template nested too deeply.
    """
    tree = ENV.parse(source)
    used = frozenset(meta.find_undeclared_variables(tree))
    return ENV.from_string(_Metering().visit(tree)), used


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}

ENV = PromptSandbox()
