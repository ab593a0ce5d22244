"""Prompts of a batch comparison parsed from pasted text or an uploaded file, with every problem on its line."""

from __future__ import annotations

import json
import re

import pytest

from backend.i18n import catalogue
from backend.services import prompt_lists
from backend.services.prompt_lists import MAX_PROMPTS, PromptLine, PromptListError, parse_prompts


def prompts(data: bytes | str, filename: str | None = None) -> list[tuple[int, str, str | None]]:
    lines, errors = parse_prompts(data, filename=filename)
    assert errors == [], [(e.line, e.text("en")) for e in errors]
    return [(p.line, p.prompt, p.system) for p in lines]


def problems(data: bytes | str, filename: str | None = None) -> list[tuple[int, str]]:
    return [(e.line, e.message_id) for e in parse_prompts(data, filename=filename)[1]]


# --- plain text --------------------------------------------------------------------------------------------------


def test_text_is_one_prompt_per_non_empty_line() -> None:
    text = "What is 2+2?\n\n  Name a prime.  \r\n\t\nTranslate 'cat' to French\n"
    assert prompts(text, "list.txt") == prompts(text) == [
        (1, "What is 2+2?", None), (3, "Name a prime.", None), (5, "Translate 'cat' to French", None)]


def test_text_keeps_commas_and_brackets() -> None:
    assert prompts("[INST] Hello, world\nA, B and C") == [(1, "[INST] Hello, world", None), (2, "A, B and C", None)]


def test_old_mac_line_endings() -> None:
    assert prompts("one\rtwo\r\rthree") == [(1, "one", None), (2, "two", None), (4, "three", None)]


def test_a_form_feed_is_not_a_line_break() -> None:
    assert prompts("a\x0cb\nc") == [(1, "a\x0cb", None), (2, "c", None)]


def test_empty_input() -> None:
    assert parse_prompts("") == ([], [])
    assert parse_prompts(b"\n  \n") == ([], [])
    assert parse_prompts(b"", filename="x.csv") == ([], [])
    assert parse_prompts("[]") == ([], [])


# --- encoding ----------------------------------------------------------------------------------------------------


def test_utf8_with_and_without_bom() -> None:
    expected = [(1, "你好", None), (2, "café", None)]
    assert prompts("你好\ncafé".encode()) == expected
    assert prompts(b"\xef\xbb\xbf" + "你好\ncafé".encode()) == expected
    assert prompts("\ufeff你好\ncafé") == expected


def test_a_bom_does_not_hide_a_csv_header() -> None:
    assert prompts(b"\xef\xbb\xbfPrompt,notes\nhi,x\n") == [(2, "hi", None)]


def test_not_utf8_is_one_error_at_line_1() -> None:
    data = "first\nsecond ü\n".encode("latin-1")
    lines, errors = parse_prompts(data)
    assert lines == []
    assert [(e.line, e.message_id, e.params) for e in errors] == [(1, prompt_lists.NOT_UTF8, {"bad_line": 2})]
    assert "line 2" in errors[0].text("en")
    assert problems("hello".encode("utf-16")) == [(1, prompt_lists.NOT_UTF8)]


# --- CSV ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["prompt", "Prompt", " PROMPT ", "question", "Input", "instruction"])
def test_csv_prompt_column_names(column: str) -> None:
    data = f"id,{column},expected\n1,Hello,x\n2,Bye,y\n"
    assert prompts(data, "p.csv") == prompts(data) == [(2, "Hello", None), (3, "Bye", None)]


def test_csv_prefers_the_instruction_to_its_input() -> None:
    data = "instruction,input,output\nSummarize,Some text,\n"
    assert prompts(data) == [(2, "Summarize", None)]


def test_csv_system_column() -> None:
    data = "prompt,system\nHi,Be brief\nHo,\n"
    assert prompts(data) == [(2, "Hi", "Be brief"), (3, "Ho", None)]
    assert prompts("System_Prompt,Question\nBe brief,Hi\n") == [(2, "Hi", "Be brief")]


def test_csv_quoted_multi_line_cells_keep_the_row_start_line() -> None:
    data = 'prompt,note\n"Write a poem\nabout the sea, in 3 lines",a\n\n"Say ""hi""",b\nlast,c\n'
    assert prompts(data, "p.csv") == [
        (2, "Write a poem\nabout the sea, in 3 lines", None), (5, 'Say "hi"', None), (6, "last", None)]


def test_csv_with_windows_line_endings() -> None:
    data = b'prompt\r\n"two\r\nlines"\r\nnext\r\n'
    assert prompts(data, "p.csv") == [(2, "two\nlines", None), (4, "next", None)]


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_csv_other_separators(delimiter: str) -> None:
    data = f"id{delimiter}prompt\n1{delimiter}Hello, world\n"
    assert prompts(data) == prompts(data, "p.csv") == [(2, "Hello, world", None)]


def test_tsv_extension() -> None:
    assert prompts("prompt\tx\nHello\t1\n", "p.tsv") == [(2, "Hello", None)]


def test_csv_without_a_prompt_column_names_the_columns() -> None:
    lines, errors = parse_prompts("id,text,answer\n1,Hello,x\n", filename="p.csv")
    assert lines == []
    assert [(e.line, e.message_id) for e in errors] == [(1, prompt_lists.NO_PROMPT_COLUMN)]
    assert errors[0].params == {"columns": "id, text, answer"}
    assert "id, text, answer" in errors[0].text("en")


def test_csv_header_after_blank_lines() -> None:
    assert prompts("\n\nprompt\nhi\n", "p.csv") == [(4, "hi", None)]
    assert problems("\n\nname\nhi\n", "p.csv") == [(3, prompt_lists.NO_PROMPT_COLUMN)]


def test_csv_bad_rows_are_reported_and_the_rest_kept() -> None:
    data = "prompt,system\nfine,\n  ,sys\nextra,s,oops\n,,\nshort\n"
    lines, errors = parse_prompts(data, filename="p.csv")
    assert [(p.line, p.prompt) for p in lines] == [(2, "fine"), (6, "short")]  # ",," at line 5 is a blank row
    assert [(e.line, e.message_id) for e in errors] == [
        (3, prompt_lists.EMPTY_PROMPT), (4, prompt_lists.TOO_MANY_CELLS)]
    assert errors[1].params == {"cells": 3, "columns": 2}


def test_csv_unclosed_quote() -> None:
    lines, errors = parse_prompts('prompt\nok\n"never closed\nmore\n', filename="p.csv")
    assert [p.prompt for p in lines] == ["ok"]
    assert [(e.line, e.message_id) for e in errors] == [(3, prompt_lists.INVALID_CSV)]


# --- JSON lines --------------------------------------------------------------------------------------------------


def test_jsonl_strings_and_objects() -> None:
    data = ('{"prompt": "Hi"}\n\n"Just text"\n{"Question": "Why?", "system": "Be brief"}\n'
            '{"instruction": "Do", "input": "x"}\n')
    expected = [(1, "Hi", None), (3, "Just text", None), (4, "Why?", "Be brief"), (5, "Do", None)]
    assert prompts(data, "p.jsonl") == prompts(data) == prompts(data, "p.ndjson") == expected


def test_jsonl_bad_lines_each_reported() -> None:
    data = "\n".join([
        '{"prompt": "good"}',
        '{"prompt": "broken"',
        "42",
        '["a list"]',
        '{"text": "no prompt", "id": 3}',
        '{"prompt": "   "}',
        '{"prompt": 7}',
        '{"prompt": "ok", "system": ["x"]}',
        "{}",
        '{"prompt": null}',
        '{"prompt": "also good", "system": null}',
    ])
    lines, errors = parse_prompts(data, filename="p.jsonl")
    assert [(p.line, p.prompt) for p in lines] == [(1, "good"), (11, "also good")]
    assert [(e.line, e.message_id) for e in errors] == [
        (2, prompt_lists.INVALID_JSON),
        (3, prompt_lists.NOT_AN_ITEM),
        (4, prompt_lists.NOT_AN_ITEM),
        (5, prompt_lists.NO_PROMPT_FIELD),
        (6, prompt_lists.EMPTY_PROMPT),
        (7, prompt_lists.FIELD_NOT_TEXT),
        (8, prompt_lists.FIELD_NOT_TEXT),
        (9, prompt_lists.NO_PROMPT_FIELD),
        (10, prompt_lists.EMPTY_PROMPT),
    ]
    by_line = {e.line: e for e in errors}
    assert by_line[5].params == {"fields": "text, id"}
    assert by_line[7].params == {"field": "prompt"}
    assert by_line[8].params == {"field": "system"}
    assert by_line[9].params == {"fields": "{}"}


def test_json_lines_in_a_file_named_json() -> None:
    assert prompts('{"prompt": "a"}\n{"prompt": "b"}\n', "p.json") == [(1, "a", None), (2, "b", None)]


def test_a_pretty_printed_object_is_one_item() -> None:
    assert prompts('{\n  "prompt": "Hi",\n  "system": "Be brief"\n}\n') == [(1, "Hi", "Be brief")]


# --- JSON array --------------------------------------------------------------------------------------------------


def test_json_array_items_keep_their_lines() -> None:
    data = json.dumps(["first", {"prompt": "second", "system": "sys"}, {"input": "third"}], indent=2)
    # [ / "first", / { / "prompt" / "system" / }, / { / "input" / } / ]
    assert prompts(data, "p.json") == prompts(data) == [(2, "first", None), (3, "second", "sys"), (7, "third", None)]


def test_json_array_on_one_line() -> None:
    assert prompts('["a", "b"]') == [(1, "a", None), (1, "b", None)]


def test_json_array_with_a_trailing_comma() -> None:
    assert prompts('[\n"a",\n"b",\n]') == [(2, "a", None), (3, "b", None)]


def test_json_array_bad_items() -> None:
    data = '[\n  "ok",\n  3,\n  {"q": "x"},\n  "",\n  {"prompt": "fine"}\n]\n'
    lines, errors = parse_prompts(data)
    assert [(p.line, p.prompt) for p in lines] == [(2, "ok"), (6, "fine")]
    assert [(e.line, e.message_id) for e in errors] == [
        (3, prompt_lists.NOT_AN_ITEM), (4, prompt_lists.NO_PROMPT_FIELD), (5, prompt_lists.EMPTY_PROMPT)]


def test_json_array_broken_in_the_middle_keeps_what_came_before() -> None:
    lines, errors = parse_prompts('[\n"a",\n"b"\n"c"\n]', filename="p.json")
    assert [p.prompt for p in lines] == ["a", "b"]
    assert [(e.line, e.message_id) for e in errors] == [(4, prompt_lists.MISSING_COMMA)]
    lines, errors = parse_prompts('[\n"a",\n{"prompt": "b",\n]', filename="p.json")
    assert [p.prompt for p in lines] == ["a"]
    assert [(e.line, e.message_id) for e in errors] == [(4, prompt_lists.INVALID_JSON)]


def test_json_array_not_closed_or_followed_by_text() -> None:
    assert problems('["a",\n"b"\n') == [(3, prompt_lists.ARRAY_NOT_CLOSED)]
    lines, errors = parse_prompts('["a"]\n\nmore')
    assert [p.prompt for p in lines] == ["a"]
    assert [(e.line, e.message_id) for e in errors] == [(3, prompt_lists.TEXT_AFTER_ARRAY)]


# --- detection and the limit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('["a"]', [(1, "a", None)]),  # a JSON array
        ('{"prompt": "a"}', [(1, "a", None)]),  # JSON lines
        ("prompt\na", [(2, "a", None)]),  # CSV
        ('"a"\n"b"', [(1, '"a"', None), (2, '"b"', None)]),  # quoted lines are text, not JSON strings
        ("[INST] a", [(1, "[INST] a", None)]),  # text that starts like an array
        ("a,b\nc", [(1, "a,b", None), (2, "c", None)]),  # CSV-like but no prompt column: text
    ],
)
def test_detection_without_a_filename(data: str, expected: list[tuple[int, str, str | None]]) -> None:
    assert prompts(data) == expected


def test_the_extension_wins_over_the_content() -> None:
    assert prompts('{"prompt": "a"}', "notes.txt") == [(1, '{"prompt": "a"}', None)]
    assert prompts("prompt\na", "p.TXT") == [(1, "prompt", None), (2, "a", None)]
    assert problems("just text", "p.jsonl") == [(1, prompt_lists.INVALID_JSON)]
    assert prompts("prompt\na", "data.md") == [(2, "a", None)]  # unknown extension: by content


def test_at_most_max_prompts() -> None:
    data = "\n".join(f"prompt {i}" for i in range(MAX_PROMPTS + 5))
    lines, errors = parse_prompts(data)
    assert len(lines) == MAX_PROMPTS
    assert lines[-1] == PromptLine(MAX_PROMPTS, f"prompt {MAX_PROMPTS - 1}")
    assert [(e.line, e.message_id, e.params) for e in errors] == [
        (MAX_PROMPTS + 1, prompt_lists.TOO_MANY_PROMPTS, {"max": MAX_PROMPTS})]


def test_the_limit_counts_prompts_not_lines() -> None:
    rows = [f'"line one\nline two {i}"' for i in range(MAX_PROMPTS)]
    lines, errors = parse_prompts("prompt\n" + "\n".join(rows), filename="p.csv")
    assert len(lines) == MAX_PROMPTS and errors == []
    items = [{"prompt": f"p{i}"} for i in range(MAX_PROMPTS + 1)]
    lines, errors = parse_prompts(json.dumps(items, indent=1), filename="p.json")
    assert len(lines) == MAX_PROMPTS
    assert [(e.line, e.message_id) for e in errors] == [(3 * MAX_PROMPTS + 2, prompt_lists.TOO_MANY_PROMPTS)]


def test_errors_before_the_limit_are_kept() -> None:
    data = "{bad\n" + "\n".join(f'"p{i}"' for i in range(MAX_PROMPTS + 1))
    assert problems(data, "p.jsonl") == [
        (1, prompt_lists.INVALID_JSON), (MAX_PROMPTS + 2, prompt_lists.TOO_MANY_PROMPTS)]


# --- messages ----------------------------------------------------------------------------------------------------


def test_messages_are_translated_with_their_values() -> None:
    error = PromptListError(5, prompt_lists.TOO_MANY_PROMPTS, {"max": 1000})
    assert error.text("en") == "More than 1000 prompts: only the first 1000 are kept"
    zh = error.text("zh")
    assert zh == catalogue("zh")[prompt_lists.TOO_MANY_PROMPTS].format(max=1000)
    assert "1000" in zh and zh != error.text("en")
    assert PromptListError(1, prompt_lists.EMPTY_PROMPT).text("zh") == catalogue("zh")["Empty prompt"]


def test_every_reported_message_formats_in_both_languages() -> None:
    cases = ["a\xff".encode("latin-1"), '{"x": 1}\n{bad\n3\n{"prompt": 1}\n{"prompt": ""}', "id\n1",
             'prompt,b\n"a",b,c\n', '["a" "b"]', '["a"', '["a"] x', 'prompt\n"x']
    seen = set()
    for data in cases:
        for error in parse_prompts(data)[1] + parse_prompts(data, filename="p.csv")[1]:
            seen.add(error.message_id)
            for language in ("en", "zh"):
                assert not re.search(r"\{[a-z_]+\}", error.text(language)), error
    assert len(seen) >= 10
