"""Prompt templates: Jinja2 in a sandbox, the variables they use, and rendering with typed values.

Templates are written by users and rendered on the server, so they run in Jinja2's immutable sandbox with strict
undefined variables, and more besides: attributes and keys that begin with an underscore are refused when a
template is saved (the way out of any Python sandbox starts with `__class__`, `__globals__`, `__subclasses__`),
the sandbox refuses them again when it renders, and a rendering has limits, so that a template cannot keep a
server thread busy or fill its memory:

- every step that builds a value (`+`, `*`, `%`, `~`, a filter, a method, a captured block, printing a list) is
  checked before it builds: no string, and no list's text, longer than `MAX_VALUE`; where the size cannot be
  known beforehand (`replace`, `join`, `indent`, `format`, …) it is estimated from the arguments;
- what all steps build together is counted: `MAX_BUILT` (a list's items count four each), so that many values,
  each short enough, cannot fill the memory either;
- loops, calls (macros included: two recursive calls per call are 2ⁿ calls without any loop) and time are
  limited.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import math
import re
import time
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from backend.errors import Invalid
from backend.models.prompt import VARIABLE_TYPES

MAX_ITERATIONS = 10_000  # loop steps in one rendering, all loops together
MAX_CALLS = 50_000  # calls in one rendering; a macro's (or a recursive loop's) counts ten: it costs as much
MAX_SECONDS = 2.0  # one rendering's time, checked at every loop step and call
MAX_OUTPUT = 200_000  # characters of rendered text in one rendering, all messages together
MAX_VALUE = MAX_OUTPUT  # the longest string, list or text of a value that any step may build
MAX_BUILT = 10_000_000  # characters (a list's items: four each) that all steps of a rendering build together
MAX_REPEAT = 100_000  # the longest string or list that `*` may build, the widest field a format may pad to
MAX_EXPONENT = 256
MAX_BITS = 100_000  # the largest integer a product or power may build
MAX_DEPTH = 100  # lists in lists (or a namespace that holds itself) deeper than this are not printed
_WIDE_FIELD = re.compile(r"\d{6,}")  # a format width or precision of 100000 or more
_NESTED_FIELD = re.compile(r":[^}]*\{")  # "{:>{width}}": the width comes from an argument
_NUMBER = re.compile(r"\d+")
_SIZED = (str, list, tuple, dict, set, frozenset)


class _Budget:
    def __init__(self) -> None:
        self.iterations = MAX_ITERATIONS
        self.calls = MAX_CALLS
        self.built = MAX_BUILT
        self.deadline = time.monotonic() + MAX_SECONDS

    def in_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"the rendering took longer than {MAX_SECONDS:g} seconds")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("prompt_budget", default=None)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `for` loop of a template iterates through this (see `_guard_loops`)."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.iterations -= 1
            if budget.iterations < 0:
                raise SecurityError(f"loops ran more than {MAX_ITERATIONS} times")
            budget.in_time()
        yield item


def _weight(value: Any, *, indent: int = 0, limit: int = MAX_VALUE) -> int:
    """About how many characters `str(value)` (or JSON with this indent) has; counting stops past `limit`, so
    that measuring costs no more than building would."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and total <= limit:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SecurityError(f"values nested more than {MAX_DEPTH} deep are refused")
        total += depth * indent
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Namespace):
            total += 12
            stack.append((item._Namespace__attrs, depth + 1))  # type: ignore[attr-defined]
        elif isinstance(item, Mapping):
            total += 2
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
            total += 2 * len(item)
        elif isinstance(item, (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
            total += 2 + 2 * len(item)
            stack.extend((part, depth + 1) for part in item)
        else:
            total += 64  # the repr of an object: `<jinja2.utils.Cycler object at 0x…>`
    return total


def _refuse_longer(size: int, what: str = "text") -> None:
    if size > MAX_VALUE:
        raise SecurityError(f"{what} longer than {MAX_VALUE} characters is refused")


def _built(value: Any) -> Any:
    """A value a step has just built: not too long, and counted against the rendering's budget."""
    if isinstance(value, _SIZED):
        size = len(value)
        if size > MAX_VALUE:
            raise SecurityError(f"{'text' if isinstance(value, str) else 'a list'} longer than {MAX_VALUE} "
                                f"{'characters' if isinstance(value, str) else 'items'} is refused")
        _charge(size if isinstance(value, str) else 4 * size)
    return value


def _charge(size: int) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.built -= size
        if budget.built < 0:
            raise SecurityError(f"the rendering built more than {MAX_BUILT} characters")


def _check_format(text: Any, args: Iterable[Any] = ()) -> None:
    """A format string must not pad to a huge width, whether written in it or taken from an argument, nor repeat
    a long argument into a text that is too long."""
    if not isinstance(text, str):
        return
    if _WIDE_FIELD.search(text):
        raise SecurityError("format fields this wide are refused")
    values: list[Any] = []
    for arg in args:
        values.extend(arg.values() if isinstance(arg, Mapping) else [arg])
    padded = "*" in text or _NESTED_FIELD.search(text)
    if padded:
        _check_size(*values)
    fields = text.count("%") + text.count("{")
    widest = max((int(n) for n in _NUMBER.findall(text)), default=0)
    if padded:
        widest += max((abs(int(v)) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)),
                      default=0)
    longest = max((_weight(v) for v in values), default=0)
    _refuse_longer(len(text) + fields * (longest + widest), "formatted text")


def _check_size(*values: Any) -> None:
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_REPEAT:
            raise SecurityError(f"a size over {MAX_REPEAT} is refused")


def _check_text(*values: Any) -> None:
    """Values about to be turned into text."""
    for value in values:
        if not isinstance(value, (str, int, float)) or (isinstance(value, int) and value.bit_length() > 64):
            _refuse_longer(_weight(value))


def _check_number(op: str, left: Any, right: Any) -> None:
    if not (isinstance(left, int) and isinstance(right, int)):
        return
    if (op == "*" and left.bit_length() + right.bit_length() > MAX_BITS) or \
            (op == "**" and left.bit_length() * abs(right) > MAX_BITS):
        raise SecurityError(f"numbers over {MAX_BITS} bits are refused")


def _replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    old, new = str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, len(new) - len(old))


def _joined_size(items: list[Any], separator: Any) -> int:
    return sum(len(item) if isinstance(item, str) else _weight(item) for item in items) + \
        len(str(separator)) * max(0, len(items) - 1)


class _Generator(CodeGenerator):
    """`a ~ b` is joined by the environment, which checks its size, rather than by Jinja's `str_join`."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.joined((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _finalized(value: Any) -> Any:
    """Every `{{ … }}`: a value that is not text yet must not become too long a text."""
    if not isinstance(value, str):
        size = _weight(value)
        _refuse_longer(size)
        _charge(size)
    return value


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on what could exhaust memory or time (see the module's docstring)."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "+":
            if isinstance(left, _SIZED) and isinstance(right, _SIZED):
                _refuse_longer(len(left) + len(right), "text" if isinstance(left, str) else "a list")
        elif op == "*":
            sized, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(sized, (str, list, tuple)) and isinstance(count, int) and len(sized) * count > MAX_REPEAT:
                raise SecurityError(f"repetition longer than {MAX_REPEAT} is refused")
            _check_number(op, left, right)
        elif op == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponents over {MAX_EXPONENT} are refused")
            _check_number(op, left, right)
        elif op == "%":
            _check_format(left, right if isinstance(right, tuple) else (right,))
        return _built(super().call_binop(context, op, left, right))

    def joined(self, values: tuple[Any, ...]) -> str:
        _refuse_longer(sum(len(v) if isinstance(v, str) else _weight(v) for v in values))
        return _built("".join(map(str, values)))

    def concat(self, pieces: Iterable[str]) -> str:  # type: ignore[override]
        """What a captured block (`{% set x %}`, a macro, `{% filter %}`) printed, joined."""
        pieces = list(pieces)
        _refuse_longer(sum(map(len, pieces)))
        return _built("".join(pieces))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        if budget is not None:
            budget.calls -= 10 if isinstance(__obj, (Macro, LoopContext)) else 1
            if budget.calls < 0:
                raise SecurityError(f"more than {MAX_CALLS} calls are refused")
            budget.in_time()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):  # "x".ljust(10**9), "x".replace("x", "y" * 10**5), ", ".join(…)
            _check_size(*args, *kwargs.values())
            args = _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return _built(super().call(__context, __obj, *args, **kwargs))

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


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The size of what a string method will build, estimated before it builds; the arguments, with an iterable
    to join read once."""
    if name == "replace" and len(args) >= 2:
        _refuse_longer(_replaced_size(text, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1)))
    elif name == "join" and args:
        items = list(itertools.islice(args[0], MAX_VALUE + 1))
        _refuse_longer(_joined_size(items, text))
        args = (items, *args[1:])
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            _refuse_longer(len(text) + text.count("\t") * size)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _refuse_longer(len(text) * max(1, longest))
    return args


# Filters that only pick, count or arrange what they are given: they need no check of their input's text.
_ARRANGING = frozenset({"attr", "batch", "count", "d", "default", "dictsort", "first", "groupby", "items", "last",
                        "length", "list", "map", "max", "min", "reject", "rejectattr", "reverse", "select",
                        "selectattr", "slice", "sort", "unique", "random", "abs", "round", "int", "float", "sum"})


def _before_filter(name: str, value: Any, params: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[Any, tuple[Any, ...]]:
    """Checks before a filter runs; the value and arguments to run it with."""
    if name in ("center", "indent", "wordwrap", "truncate", "batch", "slice", "tojson"):
        _check_size(*params, *kwargs.values())
    if name == "format":
        _check_format(value, [*params, *kwargs.values()])
    if name == "join":
        value = list(itertools.islice(value, MAX_VALUE + 1))
        _refuse_longer(_joined_size(value, params[0] if params else kwargs.get("d", "")))
        return value, params
    if name in _ARRANGING:
        return value, params
    _check_text(value, *params, *kwargs.values())
    text = value if isinstance(value, str) else ""
    if name == "replace" and len(params) >= 2:
        _refuse_longer(_replaced_size(str(value), *params[:3]))
    elif name == "indent":
        width = params[0] if params else kwargs.get("width", 4)
        _refuse_longer(len(text) + (text.count("\n") + 1) * (len(width) if isinstance(width, str) else int(width)))
    elif name == "wordwrap":
        width = params[0] if params else kwargs.get("width", 79)
        wrap = params[2] if len(params) > 2 else kwargs.get("wrapstring") or "\n"
        lines = len(text) // max(1, int(width)) + text.count("\n") + 1
        _refuse_longer(len(text) + lines * len(str(wrap)))
    elif name == "urlize":
        extra = sum(_weight(v) for v in (*params, *kwargs.values()))
        _refuse_longer(len(text) + len(text.split()) * (80 + extra))
    elif name in ("tojson", "pprint"):
        indent = params[0] if params else kwargs.get("indent")
        _refuse_longer(_weight(value, indent=int(indent or 0) if name == "tojson" else 1))
    return value, params


def _sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    """Jinja's `sum`, but lists (`|sum(start=[])` flattens) are joined in one pass: `sum` would copy the growing
    list at every item."""
    if not isinstance(start, (list, tuple)):
        return _JINJA_SUM(environment, iterable, attribute=attribute, start=start)
    parts = list(iterable) if attribute is None else [environment.getitem(i, attribute) for i in iterable]
    if not all(isinstance(p, (list, tuple)) for p in parts):
        raise TypeError("sum() can only add lists to a list")
    _refuse_longer(len(start) + sum(map(len, parts)), "a list")
    return type(start)(itertools.chain(start, *parts))


def _guard_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    passes = getattr(original, "jinja_pass_arg", None)  # a filter given the environment or context first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        lead, (value, *params) = (args[:1], args[1:]) if passes is not None else ((), args)
        value, checked = _before_filter(name, value, tuple(params), kwargs)
        return _built(original(*lead, value, *checked, **kwargs))

    if passes is not None:
        guarded.jinja_pass_arg = passes  # type: ignore[attr-defined]
    return guarded


def _make_environment() -> PromptEnvironment:
    env = PromptEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                            finalize=_finalized)
    env.globals.pop("lipsum", None)  # text generation that nobody needs in a prompt
    env.filters["sum"] = _sum
    _sum.jinja_pass_arg = _JINJA_SUM.jinja_pass_arg  # type: ignore[attr-defined]
    for name, original in list(env.filters.items()):
        env.filters[name] = _guard_filter(name, original)
    env.filters["lp_counted"] = _counted
    return env


_JINJA_SUM = ImmutableSandboxedEnvironment().filters["sum"]
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
        if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
            return int(value)  # a whole number typed in a form comes as 100.0, and should print as 100
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

