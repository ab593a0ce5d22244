"""Prompt templates: variables found in order, typed values and defaults, missing variables named, and a sandbox
that refuses the ways out to Python internals and work that would exhaust the server."""

from __future__ import annotations

import tracemalloc

import pytest

from backend.errors import Invalid
from backend.services import prompt_render
from backend.services.prompt_render import detect_variables, readable, render_messages, variable_specs


def render(template: str, values: dict | None = None, specs: list[dict] | None = None) -> str:
    messages = [{"role": "user", "content": template}]
    return render_messages(messages, variable_specs([template], specs), values or {})[0]["content"]


def test_variables_are_found_in_order_of_first_appearance_and_loops_guess_json() -> None:
    found = detect_variables(["You are {{ persona }}.", "{% for item in items %}{{ item }} {{ persona }}{% endfor %}"
                              "{{ question | upper }}{% set local = 1 %}{{ local }}{{ range(2) | list }}"])
    assert found == [("persona", "string"), ("items", "json"), ("question", "string")]


def test_render_fills_every_message_with_typed_values() -> None:
    messages = [{"role": "system", "content": "Answer in {{ language }}."},
                {"role": "user", "content": "{% if formal %}Dear sir, {% endif %}{{ n + 1 }} items: "
                                            "{{ items | join(', ') }}"}]
    specs = variable_specs([m["content"] for m in messages], [
        {"name": "formal", "type": "boolean"}, {"name": "n", "type": "number"}, {"name": "items", "type": "json"},
        {"name": "language", "type": "string", "default": "English"}])
    assert [s["type"] for s in specs] == ["string", "boolean", "number", "json"]
    rendered = render_messages(messages, specs, {"formal": "false", "n": "41", "items": '["a", "b"]'})
    assert rendered == [{"role": "system", "content": "Answer in English."},
                        {"role": "user", "content": "42 items: a, b"}]
    assert render_messages(messages, specs, {"formal": True, "n": 1.5, "items": ["x"], "language": "French"})[1][
        "content"] == "Dear sir, 2.5 items: x"
    # a form's number field gives 100.0 for 100: a whole number prints as one
    assert render("{{ n }} {{ m }}", {"n": 100.0, "m": 0.5}, [{"name": "n", "type": "number"},
                                                             {"name": "m", "type": "number"}]) == "100 0.5"


def test_a_missing_variable_is_named() -> None:
    with pytest.raises(Invalid, match="Missing variables: question, context"):
        render("{{ question }} {{ context }} {{ known }}", {"known": "k"})


def test_an_undefined_attribute_of_a_value_is_named() -> None:
    with pytest.raises(Invalid, match="has no attribute 'name'"):
        render("{{ user.name }}", {"user": "{}"}, [{"name": "user", "type": "json"}])


def test_wrong_types_are_refused_with_the_variable_named() -> None:
    with pytest.raises(Invalid, match="Variable n must be a number"):
        render("{{ n }}", {"n": "many"}, [{"name": "n", "type": "number"}])
    with pytest.raises(Invalid, match="Variable flag must be true or false"):
        render("{{ flag }}", {"flag": "maybe"}, [{"name": "flag", "type": "boolean"}])
    with pytest.raises(Invalid, match="Variable data must be JSON"):
        render("{{ data }}", {"data": "{oops"}, [{"name": "data", "type": "json"}])
    with pytest.raises(Invalid, match="Variable n must be a number"):  # a default is checked when saved
        variable_specs(["{{ n }}"], [{"name": "n", "type": "number", "default": "lots"}])
    with pytest.raises(Invalid, match="Variable other does not appear in the messages"):
        variable_specs(["{{ n }}"], [{"name": "other"}])


def test_a_syntax_error_names_the_message_and_line() -> None:
    with pytest.raises(Invalid, match="Message 2, line 2: "):
        detect_variables(["fine {{ a }}", "line one\n{% if %}"])


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c.__name__ }}{% endfor %}",
    "{{ ''['__class__'] }}",
    "{{ joiner.__init__.__globals__['__builtins__'] }}",
    "{{ namespace.__init__.__globals__ }}",
])
def test_escapes_are_refused_when_the_template_is_read(template: str) -> None:
    with pytest.raises(Invalid, match="names that begin with an underscore reach Python internals"):
        variable_specs([template], None)


@pytest.mark.parametrize("template", [
    "{{ ''|attr('__class__') }}",
    "{% set name = '__cla' ~ 'ss__' %}{{ ''[name] }}",
    "{% for c in (''|attr('__class__')|attr('__mro__'))[1]|attr('__subclasses__')() %}{{ c }}{% endfor %}",
    "{{ (cycler|attr('__init__'))|attr('__globals__') }}",
])
def test_escapes_built_at_render_time_are_refused_by_the_sandbox(template: str) -> None:
    with pytest.raises(Invalid, match="was refused: access to attribute '__"):
        render(template)


def test_the_immutable_sandbox_refuses_changing_a_value() -> None:
    with pytest.raises(Invalid, match="was refused"):
        render("{{ items.append(1) }}", {"items": "[]"}, [{"name": "items", "type": "json"}])


S = "{% set s = 'x' * 100000 %}"  # a string as long as `*` may build
LONG_LIST = S + "{% set l = [s, s, s, s, s, s, s, s, s, s] %}{% set l = [l, l, l, l, l, l, l, l, l, l] %}"
DOUBLING = "{% set ns = namespace(s='x' * 100000) %}{% for i in range(40) %}{% set ns.s = ns.s OP ns.s %}{% endfor %}"


@pytest.mark.parametrize(("template", "reason"), [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loops ran more than"),
    ("{{ 'x' * 1000000000 }}", "repetition longer than"),
    ("{{ 9 ** 99999999 }}", "exponents over"),
    ("{{ range(1000000000) | length }}", "Range too big"),
    ("{{ ((10 ** 256) ** 256) ** 256 > 1 }}", "numbers over"),
    ("{{ 'x'.ljust(1000000000) }}", "a size over"),
    ("{{ 'x' | center(1000000000) }}", "a size over"),
    ("{{ '{:>1000000000}'.format(1) }}", "format fields this wide"),
    ("{{ '{:>{w}}'.format(1, w=1000000000) }}", "a size over"),
    ("{{ '%*s' % (1000000000, 'x') }}", "a size over"),
    ("{% for i in range(9000) %}{{ 'x' * 90 }}{% endfor %}", "longer than 200000 characters"),
    ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recurses too deeply"),
    # strings and lists that double: refused as soon as one would pass the limit
    (DOUBLING.replace("OP", "~") + "{{ ns.s | length }}", "text longer than 200000"),
    (DOUBLING.replace("OP", "+") + "{{ ns.s | length }}", "text longer than 200000"),
    ("{% set ns = namespace(l=[1] * 100000) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
     "a list longer than 200000"),
    ("{% set ns = namespace(n=10 ** 256) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
     "numbers over"),
    # filters and methods that grow a string, estimated before they build it
    ("{% set s = ('x' * 100000) | replace('x', 'x' * 100) %}{{ s | length }}", "text longer than 200000"),
    (S + "{{ s.replace('x', s) | length }}", "text longer than"),
    (S + "{{ s.join(range(100) | map('string')) | length }}", "text longer than"),
    (S + "{{ ([s] * 100000) | join | length }}", "text longer than"),
    ("{{ ('\\n' * 100000) | indent('x' * 100000) | length }}", "text longer than"),
    (S + "{{ s | wordwrap(1, wrapstring=s) | length }}", "text longer than"),
    ("{{ ('\\t' * 100000).expandtabs(100000) | length }}", "text longer than"),
    (S + "{{ s.translate({120: s}) | length }}", "text longer than"),
    (S + "{{ ('{0}' * 30000).format(s) | length }}", "formatted text longer than"),
    ("{{ ('{:>99999}' * 1000).format(*range(1000)) | length }}", "formatted text longer than"),
    # a list of many references to one long string, printed or turned into text
    (S + "{{ [s] * 100000 }}", "text longer than"),
    (LONG_LIST + "{{ l }}", "text longer than"),
    (LONG_LIST + "{{ 'a' ~ l }}", "text longer than"),
    (LONG_LIST + "{{ l | upper | length }}", "text longer than"),
    (LONG_LIST + "{{ l | tojson | length }}", "text longer than"),
    (LONG_LIST + "{{ '%s' % (l,) }}", "formatted text longer than"),
    (S + "{% set ns = namespace(a=s) %}{% set ns.b = ns %}{{ ns }}", "nested more than 100 deep"),
    # what captured blocks and macros print, joined
    (S + "{% set x %}{% for i in range(10000) %}{{ s }}{% endfor %}{% endset %}{{ x | length }}", "text longer than"),
    (S + "{% filter upper %}{% for i in range(10000) %}{{ s }}{% endfor %}{% endfilter %}", "text longer than"),
    # many values, each short enough
    ("{{ (range(100000) | map('center', 100000) | list) | length }}", "built more than 10000000 characters"),
    # 2^40 calls without a loop
    ("{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(40) }}",
     "more than 50000 calls"),
])
def test_work_that_would_exhaust_the_server_is_refused(template: str, reason: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt_render, "MAX_SECONDS", 600.0)  # each is refused by its own limit, not by time
    tracemalloc.start()
    try:
        with pytest.raises(Invalid, match=reason):
            render(template)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32_000_000  # refused before it built: the attacks above would take from 1 GB to 10^17 bytes


def test_a_rendering_that_takes_too_long_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt_render, "MAX_SECONDS", 0.0)
    with pytest.raises(Invalid, match="took longer than 0 seconds"):
        render("{% for i in range(3) %}{{ i }}{% endfor %}")


def test_ordinary_templates_still_work() -> None:
    assert render("{% for i in range(3) %}{{ loop.index }}{% endfor %} {{ 'ab' * 2 }} {{ '%05d' % 42 }} "
                  "{{ '{:>4}'.format(7) }} {{ 2 ** 10 }} {{ 'a,b'.split(',') | join('+') }}") == \
        "123 abab 00042    7 1024 a+b"
    # what the limits must not refuse: lists and strings built in a loop, filters given the environment
    assert render("{% set ns = namespace(items=[], text='') %}{% for i in range(1000) %}"
                  "{% set ns.items = ns.items + [i] %}{% set ns.text = ns.text ~ 'x' * 10 %}{% endfor %}"
                  "{{ ns.items | length }} {{ ns.text | length }} {{ 'a'.join(['b'] * 99999) | length }}") == \
        "1000 10000 199997"
    assert render("{{ 'hello world'|wordwrap(5) }}|{{ 'hello world foo'|truncate(9) }}|{{ [[1], [2]]|sum(start=[]) }}|"
                  "{{ [1, 2]|sum }}|{{ {'a': [1]}|tojson }}|{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}|"
                  "{{ 'a' ~ 1 ~ [2] }}|{{ '{} {}'.format(99999, 99999) }}") == \
        'hello\nworld|hello...|[1, 2]|3|{"a": [1]}|<1>|a1[2]|99999 99999'


def test_readable_rendering_for_diffs() -> None:
    lines = readable([{"role": "system", "content": "Be brief.\nBe kind."}, {"role": "user", "content": "{{ q }}"}],
                     [{"name": "q", "type": "string", "default": "Why?"}])
    assert lines == ["[system]", "Be brief.", "Be kind.", "", "[user]", "{{ q }}", "", "[variables]",
                     'q: string = "Why?"']
