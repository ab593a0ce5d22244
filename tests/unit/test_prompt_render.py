"""Prompt templates: variables found in order, typed values and defaults, missing variables named, and a sandbox
that refuses the ways out to Python internals and work that would exhaust the server."""

from __future__ import annotations

import pytest

from backend.errors import Invalid
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


@pytest.mark.parametrize(("template", "reason"), [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loops ran more than"),
    ("{{ 'x' * 1000000000 }}", "repetition longer than"),
    ("{{ 9 ** 99999999 }}", "exponents over"),
    ("{{ 'x'.ljust(1000000000) }}", "a size over"),
    ("{{ 'x' | center(1000000000) }}", "a size over"),
    ("{{ '{:>1000000000}'.format(1) }}", "format fields this wide"),
    ("{{ '{:>{w}}'.format(1, w=1000000000) }}", "a size over"),
    ("{{ '%*s' % (1000000000, 'x') }}", "a size over"),
    ("{% for i in range(9000) %}{{ 'x' * 90 }}{% endfor %}", "longer than 200000 characters"),
    ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recurses too deeply"),
])
def test_work_that_would_exhaust_the_server_is_refused(template: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        render(template)


def test_ordinary_templates_still_work() -> None:
    assert render("{% for i in range(3) %}{{ loop.index }}{% endfor %} {{ 'ab' * 2 }} {{ '%05d' % 42 }} "
                  "{{ '{:>4}'.format(7) }} {{ 2 ** 10 }} {{ 'a,b'.split(',') | join('+') }}") == \
        "123 abab 00042    7 1024 a+b"


def test_readable_rendering_for_diffs() -> None:
    lines = readable([{"role": "system", "content": "Be brief.\nBe kind."}, {"role": "user", "content": "{{ q }}"}],
                     [{"name": "q", "type": "string", "default": "Why?"}])
    assert lines == ["[system]", "Be brief.", "Be kind.", "", "[user]", "{{ q }}", "", "[variables]",
                     'q: string = "Why?"']
