"""The prompt sandbox: a work budget per render, the context's data only, no Python object
printed. Each refusal is an InvalidInput naming the template and the limit."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
from jinja2.filters import FILTERS

from tasks.errors import InvalidInput, InvalidRows
from tasks.llm import sandbox
from tasks.llm.rendering import MAX_CONTEXT_DEPTH, MAX_PROMPT_CHARS, render
from tasks.outputs import MAX_BULK_ROWS

PYTHON_REPR = re.compile(
    r" at 0x|<(built-in|bound method|function|class|generator|Macro|LoopContext|Namespace)"
    r"|jinja2\.|Undefined|range\("
)
BIG = {"s": "a" * 30_000, "xs": list(range(5_000))}  # within the 64 KiB a context may have

COSTLY = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}x",
    "loops over the context": "{% for x in xs %}{% for y in xs %}{% endfor %}{% endfor %}x",
    "a loop with a large body": "{% for i in range(100000) %}"
    + "{% set v = i %}" * 50
    + "{% endfor %}x",
    "recursive macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "branching macro": "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "macro called in a loop": "{% macro f() %}{% for i in range(1000) %}.{% endfor %}"
    "{% endmacro %}{% for i in range(1000) %}{% set x = f() %}{% endfor %}x",
    "recursive loop": "{% for x in [1] recursive %}{{ loop(range(100000)) }}{% endfor %}",
    "join over a large range in a loop": "{% for i in range(1000) %}{% set x = range(100000)"
    "|join %}{% endfor %}x",
    "list over a large range": "{{ range(100000)|list|length }}",
    "map over a large range": "{{ range(100000)|map('string')|map('upper')|join|length }}",
    "sort in a loop": "{% for i in range(100) %}{{ xs|sort|length }}{% endfor %}",
    "string growth in a loop": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "string growth with +": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "set accumulation of a list": "{% set ns = namespace(x=[]) %}{% for i in range(50000) %}"
    "{% set ns.x = ns.x + [i] %}{% endfor %}{{ ns.x|length }}",
    "repeated filter over a big string": "{% for i in range(1000) %}{% set t = s|upper %}"
    "{% endfor %}x",
    "slow filter over a big string": "{% for i in range(100) %}{% set t = s|wordwrap(1) %}"
    "{% endfor %}x",
    "membership test over a big string": "{% for i in range(1000) %}{% if 'zz' in s %}{% endif %}"
    "{% endfor %}x",
    "huge padding": "{{ 'x'|center(1000000000) }}",
    "huge padding through map": "{{ ['x']|map('center', 1000000000)|join }}",
    "huge format width": "{{ '%999999999s'|format(1) }}",
    "huge format width with %": "{{ '%999999999s' % 1 }}",
    "format width from an argument": "{{ '%*s'|format(999999999, 1) }}",
    "growing replace": "{{ s|replace('a', s) }}",
    "replace of the empty string": "{{ s|replace('', s) }}",
    "huge batch padding": "{{ range(3)|batch(1000000000, 'x')|list|length }}",
    "huge slice count": "{{ range(3)|slice(1000000000, 'x')|list|length }}",
    "huge JSON indent": "{{ xs|tojson(indent=1000000) }}",
    "huge negative rounding precision": "{{ 12345|round(-10000000) }}",
    "huge named format width": "{{ '%(a)-999999999s' % {'a': 1} }}",
    "huge range": "{{ range(1000000000)|length }}",
    "long join separator": "{{ range(50000)|join(s) }}",
    "long wrap string": "{{ s|wordwrap(1, wrapstring=s) }}",
    "many long format fields": "{{ ('%s' * 1000) % ((s,) * 1000) }}",
    "many long named format fields": "{{ ('%(a)s' * 1000) % {'a': s} }}",
    "many long format filter fields": "{{ ('%s' * 1000)|format(*((s,) * 1000)) }}",
    "repetition": "{{ 'a' * 100000000 }}",
    "huge power": "{{ ((2 ** 64) ** 64) ** 64 }}",
    "squaring in a loop": "{% set ns = namespace(x=3) %}{% for i in range(40) %}"
    "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
}


@pytest.mark.parametrize("template", COSTLY.values(), ids=COSTLY.keys())
def test_costly_templates_stop_with_a_clear_error(template):
    with pytest.raises(InvalidInput) as caught:
        render(template, BIG)
    assert caught.value.field == "template"
    assert caught.value.message.startswith("template too expensive: ")
    assert "(limit " in caught.value.message


def test_a_filters_lazy_sequence_is_read_as_a_list():
    context = {"xs": [1, 2, 3], "d": {"a": 1}}
    assert render("{{ xs|map('string')|string }}", context) == "['1', '2', '3']"
    assert (
        render("{{ xs|select('odd')|list }} {{ range(3)|string }}", context) == "[1, 3] [0, 1, 2]"
    )
    assert render("{{ xs|reverse|join }} {{ d|items|list }}", context) == "321 [('a', 1)]"


def test_a_filter_that_asserts_on_its_arguments_is_a_clear_error():
    with pytest.raises(InvalidInput, match="cannot render: AssertionError"):
        render("{{ 'abc'|truncate(1, end='xyz') }}", {})


def test_sum_adds_numbers_only():
    # Adding lists or text one by one costs quadratic time inside a single filter call.
    with pytest.raises(InvalidInput, match="sum takes numbers only"):
        render("{{ range(5000)|batch(1)|sum(start=[])|length }}", {})
    assert render("{{ xs|sum }} {{ xs|sum(start=0.5) }}", {"xs": [1, 2]}) == "3 3.5"


def test_the_step_budget_stops_at_its_limit():
    compiled, _ = sandbox.compile_template(COSTLY["nested loops"])
    with sandbox.metered() as meter, pytest.raises(sandbox.TemplateTooExpensive):
        compiled.render()
    assert meter.steps == sandbox.MAX_STEPS + 1


def test_a_loop_pass_costs_the_expressions_in_its_body():
    light, _ = sandbox.compile_template("{% for x in xs %}{{ x }}{% endfor %}")
    heavy, _ = sandbox.compile_template("{% for x in xs %}{{ x }}{{ x }}{{ x }}{% endfor %}")
    spent = []
    for compiled in (light, heavy):
        with sandbox.metered() as meter:
            compiled.render(xs=list(range(100)))
        spent.append(meter.steps)
    assert spent[1] > spent[0] >= 100


def test_the_output_stops_at_the_prompt_limit():
    with pytest.raises(InvalidInput, match=f"renders to more than {MAX_PROMPT_CHARS}"):
        render("{% for i in range(30000) %}{{ s[:100] }}{% endfor %}", BIG)


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("{% for k, v in d|items %}{{k}}={{v}} {% endfor %}", {"d": {"a": 1, "b": 2}}, "a=1 b=2 "),
        (
            "{% for x in xs %}{{ loop.index }}:{{ x.name|upper }}{{ ', ' if not loop.last }}"
            "{% endfor %}",
            {"xs": [{"name": "a"}, {"name": "b"}]},
            "1:A, 2:B",
        ),
        ("{{ d.keys }} {{ d['items'] }}", {"d": {"keys": "K", "items": "I"}}, "K I"),
        (
            "{{ '%5.2f'|format(n) }} {{ xs|join(', ') }} {{ n * 2 }}",
            {"n": 3.14159, "xs": [1, 2]},
            " 3.14 1, 2 6.28318",
        ),
        (
            "{{ s[:3] }} {{ xs[0] }} {{ xs|length }} {{ xs[-1] }}",
            {"s": "hello", "xs": [1, 2, 3]},
            "hel 1 3 3",
        ),
        (
            "{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}"
            "{{ ns.n }}",
            {"xs": [1, 2, 3]},
            "6",
        ),
        (
            "{% macro item(x) %}- {{ x }}{% endmacro %}"
            "{% for x in xs %}{{ item(x) }}\n{% endfor %}",
            {"xs": ["a", "b"]},
            "- a\n- b\n",
        ),
        (
            "{{ xs|map(attribute='a')|join(',') }} {{ xs|selectattr('a')|list|length }}",
            {"xs": [{"a": 1}, {"a": 2}]},
            "1,2 2",
        ),
        (
            "{{ xs }} {{ d }}",
            {"xs": [1, "a"], "d": {"k": [True, None]}},
            "[1, 'a'] {'k': [True, None]}",
        ),
        ("{{ range(3)|list }} {{ 1000000|filesizeformat }}", {}, "[0, 1, 2] 1.0 MB"),
    ],
)
def test_ordinary_templates_render_as_before(template, context, expected):
    assert render(template, context) == expected


@pytest.mark.parametrize(
    "template",
    [
        "Summarise {{ doc.title }} for {{ audience }}",
        "{{ doc['title'] }}",
        "{{ doc|attr('title') }}",
        "{{ doc.upper() }}",
        "{{ n.real }}",
        "{{ xs.append }}",
        "{{ d.items() }}",
        "{{ d.get('a') }}",
        "{{ doc.__class__ }}",
    ],
)
def test_a_template_sees_data_never_a_method_of_a_value(template):
    context = {"doc": "", "audience": "me", "n": 1, "xs": [1], "d": {"a": 1}}
    with pytest.raises(InvalidInput) as caught:
        render(template, context)
    assert (caught.value.field, caught.value.message.split(":")[0]) == (
        "context",
        "undefined value",
    )
    assert "0x" not in str(caught.value)


@pytest.mark.parametrize(
    "template",
    [
        "{{ range }}",
        "{{ [range] }}",
        "{{ {'a': dict} }}",
        "{{ range ~ '' }}",
        "{{ [range]|join }}",
        "{{ range|string }}",
        "{{ cycler|pprint }}",
        "{{ '%s' % namespace }}",
        "{{ '%s'|format(joiner) }}",
        "{{ xs|map('upper') }}",
        "{{ cycler(1, 2).next }}",
        "{% for x in xs %}{{ loop.cycle }}{% endfor %}",
        "{% for x in xs %}{{ loop }}{% endfor %}",
        "{{ namespace(a=1) }}",
        "{% macro f() %}x{% endmacro %}{{ f }}",
        "{% macro f() %}x{% endmacro %}{{ f ~ '' }}",
        "{{ lipsum() }}",
        "{{ xs|map('string')|string }}",
        "{{ xs|select('odd')|trim }}",
        "{{ xs|reverse|string }}",
        "{{ d|items|string }}",
        "{{ '%s' % (xs|select('odd')) }}",
        "{{ '%s'|format(xs|map('string')) }}",
        "{% for x in xs %}{{ loop|string }}{% endfor %}",
        "{% for x in xs %}{{ loop|pprint }}{% endfor %}",
        "{% for x in xs %}{{ '%s' % loop }}{% endfor %}",
        "{% for x in xs %}{{ '%(a)s'|format(a=loop) }}{% endfor %}",
        "{{ '%r' % d.missing }}",
        "{{ cycler(1, 2)|list }}",
    ],
)
def test_no_python_object_is_ever_printed(template):
    # Refused, or rendered as data (a lazy sequence read as a list): never an object's repr.
    try:
        prompt = render(template, {"xs": [1, 2, 3], "d": {"a": 1}})
    except InvalidInput as refused:
        assert refused.field in ("template", "context")
        prompt = str(refused)
    assert not PYTHON_REPR.search(prompt), prompt


def test_contract_with_jinja_filters():
    """The sandbox finds each filter's value after the context Jinja passes it first, by the
    marker Jinja's pass_* decorators set. If this fails, Jinja changed that marker: teach
    `_metered_filter` in tasks/llm/sandbox.py the new one (pyproject pins the tested range)."""

    @jinja2.pass_eval_context
    def marked(eval_ctx, value):
        return value

    assert getattr(marked, "jinja_pass_arg", None) is not None
    assert set(FILTERS) <= set(sandbox.ENV.filters)
    for name, func in FILTERS.items():
        wrapped = sandbox.ENV.filters[name]
        assert getattr(wrapped, "jinja_pass_arg", None) == getattr(func, "jinja_pass_arg", None)


def test_the_readme_states_the_limits_applied():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for stated in (
        f"{sandbox.MAX_STEPS:,} steps",
        f"{sandbox.MAX_CHARS:,} characters",
        f"{sandbox.MAX_CALL_DEPTH} calls deep",
        f"2**{sandbox.MAX_NUMBER_BITS}",
        f"nested more than {MAX_CONTEXT_DEPTH} levels",
        f"{sandbox.MAX_BATCH_STEPS:,} steps",
        f"{sandbox.MAX_BATCH_CHARS:,} characters",
        f"at most {MAX_BULK_ROWS:,} rows",
        f"the first {InvalidRows.MAX_REPORTED_ROWS} bad rows",
    ):
        assert stated in readme


def test_a_method_name_gets_the_filter_that_does_its_job():
    with pytest.raises(InvalidInput) as caught:
        render("{% for k, v in d.items() %}{{ k }}{% endfor %}", {"d": {"a": 1}})
    assert caught.value.message == (
        "undefined value: 'items' is a method of Python's dict, and a template sees data only: "
        "use the |items filter"
    )
    # A key of that name is data, and wins.
    assert render("{{ d.items }}", {"d": {"items": "mine"}}) == "mine"


def test_renders_add_what_they_spent_even_when_they_fail(monkeypatch):
    spent = sandbox.Spent()
    render("{{ (a ~ a)|length }}", {"a": "x" * 1000}, spent)
    assert spent.chars >= 2000 and spent.over() is None
    with pytest.raises(InvalidInput, match="undefined value"):
        render("{% for i in range(5000) %}{% endfor %}{{ a.b }}", {"a": "x"}, spent)
    assert spent.steps > 5000
    monkeypatch.setattr(sandbox, "MAX_BATCH_CHARS", 1000)
    assert spent.over() == "builds more than 1000 characters of text across its rows (limit 1000)"
    monkeypatch.setattr(sandbox, "MAX_BATCH_STEPS", 5000)
    assert spent.over() == "more than 5000 steps across its rows (limit 5000)"
