"""The prompts of a batch comparison, parsed from what a user pastes or uploads: plain text, CSV, JSON lines or JSON.

Parsing goes on past a bad line wherever the format allows (it cannot inside a broken JSON array or CSV quote): every
problem comes back with its line number, so that a user can fix a file in one go. Messages are translated where
they are shown, hence a message id and parameters, not a string.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

from backend.i18n import N_
from backend.services.line_errors import LineError

MAX_PROMPTS = 1000

# Column (CSV) or key (JSON) names of the prompt, most specific first: in Alpaca-style data ("instruction", "input",
# "output") the instruction is the prompt and the input only its optional context.
PROMPT_FIELDS = ("prompt", "question", "instruction", "input")
SYSTEM_FIELDS = ("system", "system_prompt", "system prompt")
CSV_DELIMITERS = (",", "\t", ";")  # Excel writes ";" where "," is the decimal separator

NOT_UTF8 = N_("The file is not UTF-8 text (the first bad byte is on line {bad_line}); save it as UTF-8 and try again")
INVALID_JSON = N_("Invalid JSON: {reason}")
ARRAY_NOT_CLOSED = N_("The JSON array is not closed with ]")
MISSING_COMMA = N_("Expected , or ] after an item of the JSON array")
TEXT_AFTER_ARRAY = N_("Unexpected text after the end of the JSON array")
NOT_AN_ITEM = N_("Expected a prompt: text, or an object with a prompt field")
NO_PROMPT_FIELD = N_("No prompt field (found: {fields}); name it prompt, question, instruction or input")
FIELD_NOT_TEXT = N_("The {field} field must be text")
EMPTY_PROMPT = N_("Empty prompt")
NO_PROMPT_COLUMN = N_("No prompt column (found: {columns}); name one column prompt, question, instruction or input")
TOO_MANY_CELLS = N_("This row has {cells} cells but the header only {columns}; put cells that contain the separator "
                    "in double quotes")
INVALID_CSV = N_("Invalid CSV: {reason}")
TOO_MANY_PROMPTS = N_("More than {max} prompts: only the first {max} are kept")

Format = Literal["text", "csv", "json"]  # "json" covers both a JSON array and JSON lines


@dataclass(frozen=True)
class PromptLine:
    line: int  # 1-based line number in the source (for CSV: the row's first line; the header is line 1)
    prompt: str
    system: str | None = None  # an optional per-prompt system prompt


PromptListError = LineError


class _TooMany(Exception):
    """Raised by _Collector once a prompt goes beyond MAX_PROMPTS: nothing after it matters."""


class _Collector:
    def __init__(self) -> None:
        self.lines: list[PromptLine] = []
        self.errors: list[PromptListError] = []

    def error(self, line: int, message_id: str, **params: object) -> None:
        self.errors.append(PromptListError(line, message_id, params))

    def add(self, line: int, prompt: str, system: str | None = None) -> None:
        # Surrounding whitespace and line endings are an artefact of the file, not part of what to ask.
        prompt = prompt.strip()
        if not prompt:
            self.error(line, EMPTY_PROMPT)
            return
        if len(self.lines) >= MAX_PROMPTS:
            self.error(line, TOO_MANY_PROMPTS, max=MAX_PROMPTS)
            raise _TooMany
        self.lines.append(PromptLine(line, prompt, (system or "").strip() or None))


def parse_prompts(data: bytes | str, *, filename: str | None = None) -> tuple[list[PromptLine], list[PromptListError]]:
    """The prompts in `data`, and a list of problems, each on its line.

    The format comes from the extension when a filename is given (.csv/.tsv, .jsonl/.ndjson/.json, .txt), otherwise
    from the content: a JSON array, JSON lines (the first line starts with "{"), CSV whose header has a prompt column
    (`prompt`, `question`, `instruction` or `input`, any case; with an optional `system` column), else plain text
    with one prompt per non-empty line. JSON items are text, or objects with one of those keys and an optional
    `system`. Blank lines are skipped; prompts are stripped of surrounding whitespace. Beyond MAX_PROMPTS prompts,
    an error at the first line beyond the limit, and only the first MAX_PROMPTS are kept.
    """
    out = _Collector()
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.error(1, NOT_UTF8, bad_line=data.count(b"\n", 0, exc.start) + 1)
            return out.lines, out.errors
    else:
        text = data
    text = text.removeprefix("\ufeff")
    # One line-ending convention, so that line numbers agree with what an editor shows (str.splitlines would also
    # split on form feeds and Unicode separators).
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        match _detect(text, filename):
            case "json":
                _parse_json(text, out)
            case "csv":
                _parse_csv(text, out)
            case "text":
                _parse_text(text, out)
    except _TooMany:
        pass
    return out.lines, out.errors


_JSON_ARRAY_START = re.compile(r"\[\s*([{\"\]]|$)")


def _detect(text: str, filename: str | None) -> Format:
    suffix = PurePath(filename).suffix.lower() if filename else ""
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    if suffix == ".txt":
        return "text"
    start = text.lstrip()
    # "[" alone would also take a text prompt such as "[INST] Hello" for JSON: an array must open on an item.
    if _JSON_ARRAY_START.match(start) or start.startswith("{"):
        return "json"
    first_line = start.split("\n", 1)[0]
    if any(_prompt_column(_header(first_line, d)) is not None for d in CSV_DELIMITERS):
        return "csv"
    return "text"


def _parse_text(text: str, out: _Collector) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            out.add(number, line)


# --- JSON ----------------------------------------------------------------------------------------------------------

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n]*")


def _parse_json(text: str, out: _Collector) -> None:
    start = _WHITESPACE.match(text)
    position = start.end() if start else 0
    if text.startswith("[", position):
        _parse_json_array(text, position, out)
        return
    # A single object spread over several lines (pretty-printed) is one item, not a broken JSON-lines file.
    if "\n" in text.strip():
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            _item(whole, _line_at(text, position), out)
            return
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            out.error(number, INVALID_JSON, reason=exc.msg)
            continue
        _item(value, number, out)


def _parse_json_array(text: str, position: int, out: _Collector) -> None:
    """Item by item with raw_decode, to know the line each item starts on (json.loads does not tell)."""
    line = _line_at(text, position)
    position += 1  # the "["
    expect_item = True
    while True:
        line, position = _skip_space(text, position, line)
        if position >= len(text):
            out.error(line, ARRAY_NOT_CLOSED)
            return
        char = text[position]
        if char == "]":  # also after a trailing comma: strict JSON refuses it, but what was meant is clear
            line, position = _skip_space(text, position + 1, line)
            if position < len(text):
                out.error(line, TEXT_AFTER_ARRAY)
            return
        if not expect_item:
            if char != ",":
                out.error(line, MISSING_COMMA)
                return
            position += 1
            expect_item = True
            continue
        try:
            value, end = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            # Where one item is broken, where the next begins is guesswork: stop with what came before.
            out.error(exc.lineno, INVALID_JSON, reason=exc.msg)
            return
        _item(value, line, out)
        line += text.count("\n", position, end)
        position = end
        expect_item = False


def _skip_space(text: str, position: int, line: int) -> tuple[int, int]:
    match = _WHITESPACE.match(text, position)
    end = match.end() if match else position
    return line + text.count("\n", position, end), end


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _item(value: Any, line: int, out: _Collector) -> None:
    if isinstance(value, str):
        out.add(line, value)
        return
    if not isinstance(value, dict):
        out.error(line, NOT_AN_ITEM)
        return
    keys = {str(k).strip().lower(): k for k in value}
    prompt_key = next((keys[name] for name in PROMPT_FIELDS if name in keys), None)
    if prompt_key is None:
        out.error(line, NO_PROMPT_FIELD, fields=", ".join(map(str, value)) or "{}")
        return
    system_key = next((keys[name] for name in SYSTEM_FIELDS if name in keys), None)
    prompt, system = value[prompt_key], value.get(system_key) if system_key is not None else None
    for key, text in ((prompt_key, prompt), (system_key, system)):
        if text is not None and not isinstance(text, str):
            out.error(line, FIELD_NOT_TEXT, field=key)
            return
    if prompt is None:  # "prompt": null is no prompt
        prompt = ""
    out.add(line, prompt, system)


# --- CSV -----------------------------------------------------------------------------------------------------------


def _header(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _prompt_column(header: list[str]) -> int | None:
    names = [cell.strip().lower() for cell in header]
    return next((names.index(name) for name in PROMPT_FIELDS if name in names), None)


def _system_column(header: list[str]) -> int | None:
    names = [cell.strip().lower() for cell in header]
    return next((names.index(name) for name in SYSTEM_FIELDS if name in names), None)


def _parse_csv(text: str, out: _Collector) -> None:
    first_line = text.lstrip("\n").split("\n", 1)[0]
    # The delimiter is the one under which the header has a prompt column; "," when none does.
    delimiter = next((d for d in CSV_DELIMITERS if _prompt_column(_header(first_line, d)) is not None), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    prompt_col = system_col = None
    row_start = 1
    try:
        for row in reader:
            line, row_start = row_start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = row
                prompt_col, system_col = _prompt_column(row), _system_column(row)
                if prompt_col is None:
                    columns = ", ".join(cell.strip() for cell in row if cell.strip())
                    out.error(line, NO_PROMPT_COLUMN, columns=columns)
                    return
                continue
            if len(row) > len(header):
                out.error(line, TOO_MANY_CELLS, cells=len(row), columns=len(header))
                continue
            assert prompt_col is not None
            prompt = row[prompt_col] if prompt_col < len(row) else ""
            system = row[system_col] if system_col is not None and system_col < len(row) else None
            out.add(line, prompt, system)
    except csv.Error as exc:
        out.error(row_start, INVALID_CSV, reason=str(exc))
