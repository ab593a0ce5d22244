"""Prompt templates: Jinja2 in a sandbox, the variables they use, and rendering with typed values.

Templates are written by users and rendered on the server, so they run in Jinja2's immutable sandbox with strict
undefined variables, and more besides: attributes and keys that begin with an underscore are refused when a
template is saved (the way out of any Python sandbox starts with `__class__`, `__globals__`, `__subclasses__`),
the sandbox refuses them again when it renders, and loops, repetition and the rendered text have limits, so that
a template cannot keep a server thread busy or fill its memory.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backend.errors import Invalid
from backend.models.prompt import VARIABLE_TYPES

MAX_ITERATIONS = 10_000  # loop steps in one rendering, all loops together
MAX_OUTPUT = 200_000  # characters of rendered text in one rendering, all messages together
MAX_REPEAT = 100_000  # the longest string or list that `*` may build, the widest field a format may pad to
MAX_EXPONENT = 256
_WIDE_FIELD = re.compile(r"\d{6,}")  # a format width or precision of 100000 or more
_NESTED_FIELD = re.compile(r":[^}]*\{")  # "{:>{width}}": the width comes from an argument


class _Budget:
    def __init__(self) -> None:
        self.iterations = MAX_ITERATIONS


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("prompt_budget", default=None)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `for` loop of a template iterates through this (see `_guard_loops`)."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.iterations -= 1
            if budget.iterations < 0:
                raise SecurityError(f"loops ran more than {MAX_ITERATIONS} times")
        yield item


def _check_format(text: Any, args: Iterable[Any] = ()) -> None:
    """A format string must not pad to a huge width, whether written in it or taken from an argument."""
    if not isinstance(text, str):
        return
    if _WIDE_FIELD.search(text):
        raise SecurityError("format fields this wide are refused")
    if "*" in text or _NESTED_FIELD.search(text):
        _check_size(*args)


def _check_size(*values: Any) -> None:
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_REPEAT:
            raise SecurityError(f"a size over {MAX_REPEAT} is refused")


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on what could exhaust memory: repetition, powers, padding."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            sized, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(sized, (str, list, tuple)) and isinstance(count, int) and len(sized) * count > MAX_REPEAT:
                raise SecurityError(f"repetition longer than {MAX_REPEAT} is refused")
        elif op == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponents over {MAX_EXPONENT} are refused")
        elif op == "%":
            _check_format(left, right if isinstance(right, tuple) else (right,))
        return super().call_binop(context, op, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(__obj, "__self__", None), str):  # "x".ljust(10**9), "x".zfill(10**9)
            _check_size(*args, *kwargs.values())
        return super().call(__context, __obj, *args, **kwargs)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # At once, not an undefined value that fails only when printed: `x|attr('__class__')|attr('__mro__')`
        # would otherwise fail as "undefined has no attribute", hiding what was refused.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(text, [*args, *kwargs.values()])
            return wrapped(*args, **kwargs)

        return checked


def _sized_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
        if name == "format":
            _check_format(value, [*args, *kwargs.values()])
        else:
            _check_size(*args, *kwargs.values())
        return original(value, *args, **kwargs)

    return guarded


def _make_environment() -> PromptEnvironment:
    env = PromptEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.pop("lipsum", None)  # text generation that nobody needs in a prompt
    for name in ("center", "indent", "wordwrap", "truncate", "format", "batch", "slice"):
        env.filters[name] = _sized_filter(name, env.filters[name])
    env.filters["lp_counted"] = _counted
    return env


ENV = _make_environment()
GLOBALS = frozenset(ENV.globals)


# --- templates ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    template: Any  # jinja2.Template
    variables: tuple[str, ...]  # undeclared names, in the order they first appear
    iterated: frozenset[str]  # variables a `for` loops over: most likely JSON lists


def _refuse_private(ast: nodes.Template, where: int) -> None:
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem):
            if not (isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
                continue
            name = node.arg.value
        elif isinstance(node, nodes.Name):
            name = node.name
        else:
            continue
        if name.startswith("_"):
            raise Invalid("Message {n}: {name} is refused: names that begin with an underscore reach Python "
                          "internals", n=where, name=name)


def _guard_loops(ast: nodes.Template) -> None:
    """Every loop iterates through `_counted`, so that all loops of a rendering share one budget."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, "lp_counted", [], [], None, None, lineno=loop.lineno)


@lru_cache(maxsize=512)
def _compile(source: str) -> tuple[Any, tuple[str, ...], frozenset[str]] | tuple[str, int | None]:
    """The template, its variables and the looped ones; or (error, line) when it does not parse."""
    try:
        ast = ENV.parse(source)
    except TemplateSyntaxError as error:
        return (error.message or str(error), error.lineno)
    undeclared = meta.find_undeclared_variables(ast) - GLOBALS
    ordered = tuple(dict.fromkeys(n.name for n in ast.find_all(nodes.Name) if n.name in undeclared))
    iterated = frozenset(loop.iter.name for loop in ast.find_all(nodes.For)
                         if isinstance(loop.iter, nodes.Name) and loop.iter.name in undeclared)
    _refuse_private(ast, 0)
    _guard_loops(ast)
    return ENV.from_string(ast), ordered, iterated


def compile_message(source: str, *, where: int) -> Compiled:
    """Parse and check one message's template (`where`: its number, for the error)."""
    try:
        result = _compile(source)
    except Invalid as error:
        raise Invalid(error.message, **{**error.params, "n": where}) from None
    if len(result) == 2:
        message, line = result
        raise Invalid("Message {n}, line {line}: {error}", n=where, line=line or 1, error=message)
    template, variables, iterated = result
    return Compiled(template=template, variables=variables, iterated=iterated)


def detect_variables(contents: Iterable[str]) -> list[tuple[str, str]]:
    """`(name, guessed type)` of every variable the templates use, in order of first appearance; a variable that
    a loop iterates over is guessed to be JSON, any other to be a string."""
    found: dict[str, str] = {}
    for index, content in enumerate(contents, start=1):
        compiled = compile_message(content, where=index)
        for name in compiled.variables:
            found.setdefault(name, "json" if name in compiled.iterated else "string")
    return list(found.items())


# --- values ---------------------------------------------------------------------------------------------------

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


def coerce(name: str, type_: str, value: Any) -> Any:
    """A value as its variable's type wants it; text from a form is parsed (`"3"` → 3, `"[1, 2]"` → [1, 2])."""
    if type_ == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, bool)):
            return json.dumps(value) if isinstance(value, bool) else str(value)
        raise Invalid("Variable {name} must be text", name=name)
    if type_ == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value
        if isinstance(value, str):
            text = value.strip()
            for parse in (int, float):
                try:
                    number = parse(text)
                except ValueError:
                    continue
                if math.isfinite(number):
                    return number
        raise Invalid("Variable {name} must be a number", name=name)
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
            return value.strip().lower() in TRUE
        raise Invalid("Variable {name} must be true or false", name=name)
    if type_ == "json":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise Invalid("Variable {name} must be JSON: {error}", name=name, error=str(error)) from None
        return value
    raise Invalid("Unknown variable type {type}: use {known}", type=type_, known=", ".join(VARIABLE_TYPES))


def variable_specs(contents: list[str], given: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The variables of a version: every variable the messages use, with the type, default and description given
    for it (defaults checked against their types), in order of first appearance."""
    detected = detect_variables(contents)
    names = {name for name, _ in detected}
    by_name: dict[str, dict[str, Any]] = {}
    for spec in given or []:
        if spec["name"] not in names:
            raise Invalid("Variable {name} does not appear in the messages", name=spec["name"])
        by_name[spec["name"]] = spec
    specs = []
    for name, guessed in detected:
        spec = by_name.get(name, {})
        type_ = spec.get("type") or guessed
        if type_ not in VARIABLE_TYPES:
            raise Invalid("Unknown variable type {type}: use {known}", type=type_, known=", ".join(VARIABLE_TYPES))
        default = spec.get("default")
        if default is not None and not (type_ != "json" and default == ""):
            default = coerce(name, type_, default)
        entry: dict[str, Any] = {"name": name, "type": type_, "default": default}
        if (spec.get("description") or "").strip():
            entry["description"] = spec["description"].strip()[:500]
        specs.append(entry)
    return specs


def render_messages(messages: list[dict[str, str]], specs: list[dict[str, Any]],
                    values: dict[str, Any]) -> list[dict[str, str]]:
    """The messages with the variables filled in: given values (coerced to their types), else the defaults.
    Every missing variable is named; a template that reaches for Python internals is refused."""
    context: dict[str, Any] = {}
    missing = []
    for spec in specs:
        name = spec["name"]
        value = values.get(name)
        if value is None or (value == "" and spec.get("default") not in (None, "")):
            value = spec.get("default")
        if value is None:
            missing.append(name)
            continue
        context[name] = coerce(name, spec.get("type") or "string", value)
    if missing:
        raise Invalid("Missing variables: {names}", names=", ".join(missing))
    token = _budget.set(_Budget())
    try:
        rendered, total = [], 0
        for index, message in enumerate(messages, start=1):
            compiled = compile_message(message["content"], where=index)
            text = _render_one(compiled, context, index, total)
            total += len(text)
            rendered.append({"role": message["role"], "content": text})
        return rendered
    finally:
        _budget.reset(token)


def _render_one(compiled: Compiled, context: dict[str, Any], index: int, used: int) -> str:
    parts: list[str] = []
    size = used
    try:
        for piece in compiled.template.generate(context):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise Invalid("The rendered prompt is longer than {limit} characters", limit=MAX_OUTPUT)
            parts.append(piece)
    except SecurityError as error:
        raise Invalid("Message {n} was refused: {error}", n=index, error=str(error)) from None
    except UndefinedError as error:
        raise Invalid("Message {n}: {error}", n=index, error=str(error)) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise Invalid("Message {n} could not be rendered: {error}", n=index, error=str(error)) from None
    except RecursionError:
        raise Invalid("Message {n} could not be rendered: it recurses too deeply", n=index) from None
    return "".join(parts)


def readable(messages: list[dict[str, str]], specs: list[dict[str, Any]]) -> list[str]:
    """Lines for a diff: each message under its role, then the variables with their types and defaults."""
    lines: list[str] = []
    for message in messages:
        lines.append(f"[{message['role']}]")
        lines.extend(message["content"].splitlines() or [""])
        lines.append("")
    if specs:
        lines.append("[variables]")
        for spec in specs:
            default = "" if spec.get("default") is None else f" = {json.dumps(spec['default'], ensure_ascii=False)}"
            lines.append(f"{spec['name']}: {spec.get('type') or 'string'}{default}")
    return lines

