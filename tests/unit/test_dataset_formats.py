"""Dataset files: every container and format, each malformed case reported on its line, normalized rows."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import orjson
import pytest

from backend.services.dataset_formats import read_dataset


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def rows_of(tmp_path: Path, name: str, content: str | bytes, **kwargs: object):
    out = io.BytesIO()
    report = read_dataset(write(tmp_path, name, content), out=out, **kwargs)  # type: ignore[arg-type]
    rows = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return report, rows


def errors(report) -> list[tuple[int, str]]:
    return [(e.line, e.text()) for e in report.errors]


CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def test_openai_messages_jsonl(tmp_path: Path) -> None:
    content = "\n".join(json.dumps(r) for r in [
        {"messages": [{"role": "system", "content": "Be kind."}, *CHAT]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Parts"}]},
                      {"role": "assistant", "content": "ok"}]},
    ])
    report, rows = rows_of(tmp_path, "chat.jsonl", content)
    assert report.format == "openai" and report.container == "jsonl" and not report.errors
    assert rows[0]["messages"][0] == {"role": "system", "content": "Be kind."}
    assert rows[1]["messages"][0] == {"role": "user", "content": "Parts"}
    assert report.stats.rows == 2 and report.stats.turns == 4


def test_sharegpt_with_system(tmp_path: Path) -> None:
    record = {"system": "You are terse.", "conversations": [{"from": "human", "value": "2+2?"},
                                                             {"from": "gpt", "value": "4"}]}
    report, rows = rows_of(tmp_path, "data.json", json.dumps([record, record], indent=2))
    assert (report.format, report.container) == ("sharegpt", "json")
    assert rows[0]["messages"] == [{"role": "system", "content": "You are terse."},
                                   {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert report.stats.duplicates == 1


def test_alpaca_with_input_and_history(tmp_path: Path) -> None:
    record = {"instruction": "Translate", "input": "chat", "output": "猫", "history": [["hi", "hello"]]}
    report, rows = rows_of(tmp_path, "alpaca.jsonl", "\ufeff" + json.dumps(record, ensure_ascii=False))  # with a BOM
    assert report.format == "alpaca" and not report.errors
    assert rows[0]["messages"] == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "Translate\n\nchat"}, {"role": "assistant", "content": "猫"}]


def test_plain_text_documents_are_separated_by_blank_lines(tmp_path: Path) -> None:
    report, rows = rows_of(tmp_path, "corpus.txt", "First document\nstill first.\n\n\nSecond one.\n")
    assert report.format == "text"
    assert rows == [{"text": "First document\nstill first."}, {"text": "Second one."}]


def test_csv_with_guessed_and_explicit_mapping(tmp_path: Path) -> None:
    content = 'question,answer\n"What is 2+2?","4"\n"Multi\nline?","yes, it is"\n'
    report, rows = rows_of(tmp_path, "qa.csv", content)
    assert report.format == "csv" and not report.errors
    assert rows[1]["messages"] == [{"role": "user", "content": "Multi\nline?"},
                                   {"role": "assistant", "content": "yes, it is"}]
    report, rows = rows_of(tmp_path, "qa2.csv", "q;a\nhi;there\n", mapping={"instruction": "q", "output": "a"})
    assert rows == [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "there"}]}]
    report, _ = rows_of(tmp_path, "bad.csv", "foo,bar\n1,2\n")
    assert errors(report)[0][0] == 1 and "No usable columns (found: foo, bar)" in errors(report)[0][1]
    report, _ = rows_of(tmp_path, "bad2.csv", "q,a\n1,2\n", mapping={"instruction": "nope", "output": "a"})
    assert "column nope" in errors(report)[0][1]


def test_gzip_is_read_whatever_its_name(tmp_path: Path) -> None:
    data = gzip.compress(json.dumps({"text": "zipped"}).encode())
    _, rows = rows_of(tmp_path, "data.jsonl.gz", data)
    assert rows == [{"text": "zipped"}]
    _, rows = rows_of(tmp_path, "mystery.bin", data)
    assert rows == [{"text": "zipped"}]


def test_bad_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps({"messages": CHAT}),                                                          # 1 ok
        "{not json",                                                                             # 2
        "",                                                                                      # 3 blank: skipped
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),              # 4 no answer
        json.dumps({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}),  # 5
        json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]}),  # 6
        json.dumps({"messages": [{"role": "robot", "content": "q"}]}),                           # 7 unknown role
        json.dumps([1, 2]),                                                                      # 8 not an object
        json.dumps({"messages": "nope"}),                                                        # 9 not a list
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                                 {"role": "user", "content": "again"}]}),                        # 10 ends with user
        json.dumps({"messages": CHAT}),                                                          # 11 ok
    ]
    report, rows = rows_of(tmp_path, "mixed.jsonl", "\n".join(lines))
    assert len(rows) == 2 and report.error_count == 8
    found = errors(report)
    assert [line for line, _ in found] == [2, 4, 5, 6, 7, 8, 9, 10]
    messages = dict(found)
    assert messages[2].startswith("Invalid JSON")
    assert "no assistant message" in messages[4]
    assert "Wrong role order at message 1: assistant after start" in messages[5]
    assert "Empty content in message 1" in messages[6]
    assert "Unknown role robot in message 1" in messages[7]
    assert "Expected a JSON object, found list" in messages[8]
    assert "must be a list" in messages[9]
    assert "ends with a user message" in messages[10]


def test_alpaca_missing_and_empty_fields(tmp_path: Path) -> None:
    lines = [json.dumps({"instruction": "x", "output": "y"}), json.dumps({"instruction": "x"}),
             json.dumps({"instruction": "x", "output": ""}), json.dumps({"instruction": 3, "output": "y"})]
    report, rows = rows_of(tmp_path, "a.jsonl", "\n".join(lines))
    assert len(rows) == 1
    assert errors(report) == [(2, "Missing field output"), (3, "The field output is empty"),
                              (4, "The field instruction must be text")]


def test_a_broken_json_array_stops_at_its_line(tmp_path: Path) -> None:
    content = '[\n  {"text": "one"},\n  {"text": "two"}\n  {"text": "three"}\n]'
    report, rows = rows_of(tmp_path, "arr.json", content)
    assert rows == [{"text": "one"}, {"text": "two"}]
    assert errors(report)[0][0] == 4 and "broken" in errors(report)[0][1]


def test_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    report, rows = rows_of(tmp_path, "latin.txt", "caf\xe9 au lait".encode("latin-1"))
    assert rows == [] and "not UTF-8" in errors(report)[0][1]


def test_unknown_rows_and_format_override(tmp_path: Path) -> None:
    report, _ = rows_of(tmp_path, "x.jsonl", json.dumps({"foo": 1}))
    assert "Cannot tell the format" in errors(report)[0][1]
    report, rows = rows_of(tmp_path, "y.jsonl", json.dumps({"text": "t", "instruction": "i", "output": "o"}),
                           format="text")
    assert rows == [{"text": "t"}]


@pytest.mark.parametrize("tokens", [0, 15, 16, 100, 9000])
def test_histogram_bins(tmp_path: Path, tokens: int) -> None:
    report, _ = rows_of(tmp_path, "h.jsonl", json.dumps({"text": "abcd" * max(tokens, 1)}))
    assert sum(report.stats.histogram) == 1 and report.stats.max_tokens == max(tokens, 1)


def test_sharegpt_malformed_turns(tmp_path: Path) -> None:
    def row(*turns: tuple[str, str | None], **extra: object) -> str:
        return json.dumps({**extra, "conversations": [{"from": f, **({} if v is None else {"value": v})}
                                                      for f, v in turns]})

    lines = [
        row(("human", "q"), ("gpt", "a")),                                      # 1 ok
        row(("robot", "q"), ("gpt", "a")),                                      # 2 unknown from
        row(("gpt", "a"), ("human", "q")),                                      # 3 wrong order
        row(("human", ""), ("gpt", "a")),                                       # 4 empty value
        row(("human", None), ("gpt", "a")),                                     # 5 missing value
        row(("human", "q"), ("gpt", "a"), ("human", "q"), ("human", "again")),  # 6 two user turns
        row(("system", "s"), ("human", "q"), ("gpt", "a"), system="also"),     # 7 two system messages
        row(("human", "q"), ("gpt", "   ")),                                    # 8 blank answer
    ]
    report, rows = rows_of(tmp_path, "sg.jsonl", "\n".join(lines))
    assert report.format == "sharegpt" and len(rows) == 1
    assert errors(report) == [
        (2, "Unknown role robot in message 1; use system, user or assistant"),
        (3, "Wrong role order at message 1: assistant after start; turns alternate user, assistant, with an optional "
            "system message first"),
        (4, "Empty content in message 1"),
        (5, "Missing field value (1)"),
        (6, "Wrong role order at message 4: user after user; turns alternate user, assistant, with an optional "
            "system message first"),
        (7, "Wrong role order at message 2: system after system; turns alternate user, assistant, with an optional "
            "system message first"),
        (8, "Empty content in message 2"),
    ]


def test_plain_text_rows_with_empty_text(tmp_path: Path) -> None:
    lines = [json.dumps({"text": "a document"}), json.dumps({"text": ""}), json.dumps({"text": " \n "}),
             json.dumps({"text": None}), json.dumps({"text": 5})]
    report, rows = rows_of(tmp_path, "t.jsonl", "\n".join(lines))
    assert report.format == "text" and rows == [{"text": "a document"}]
    assert errors(report) == [(2, "The field text is empty"), (3, "The field text is empty"),
                              (4, "Missing field text"), (5, "The field text must be text")]


def test_alpaca_history_must_be_pairs_of_non_empty_turns(tmp_path: Path) -> None:
    base = {"instruction": "Now?", "output": "Yes."}
    lines = [json.dumps({**base, "history": [["Before?", "No."]]}),  # 1 ok
             json.dumps({**base, "history": "Before? No."}),         # 2 not a list
             json.dumps({**base, "history": [["only a question"]]}),  # 3 not a pair
             json.dumps({**base, "history": [["q", 1]]}),             # 4 not text
             json.dumps({**base, "history": [["", ""]]}),              # 5 empty turns (were accepted)
             json.dumps({**base, "history": [["q", " "]]}),            # 6 empty answer in the history
             json.dumps({**base, "system": "s", "history": [["", "a"]]})]  # 7 counted after the system message
    report, rows = rows_of(tmp_path, "h.jsonl", "\n".join(lines))
    assert len(rows) == 1 and len(rows[0]["messages"]) == 4
    history = "history must be a list of [question, answer] pairs"
    assert errors(report) == [(2, history), (3, history), (4, history), (5, "Empty content in message 1"),
                              (6, "Empty content in message 2"), (7, "Empty content in message 2")]


def test_broken_csv_rows_are_reported_on_their_lines(tmp_path: Path) -> None:
    content = ('instruction,output\n'
               '"ok","fine"\n'                     # 2
               'q,' + "x" * 140_000 + '\n'         # 3 a field past the csv module's limit
               '"multi\nline",yes\n'               # 4-5 a good row over two lines, after the bad one
               'last,"never closed\nstill open\n')  # 6 a quote that never closes (was taken as text)
    report, rows = rows_of(tmp_path, "broken.csv", content)
    assert [r["messages"][0]["content"] for r in rows] == ["ok", "multi\nline"]
    assert errors(report) == [(3, "Invalid CSV: field larger than field limit (131072)"),
                              (6, "Invalid CSV: unexpected end of data")]


def test_a_truncated_gzip_keeps_the_rows_before_the_break(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"row {i} " + "é" * 40}, ensure_ascii=False) for i in range(3000)]
    whole = gzip.compress("\n".join(lines).encode())
    report, rows = rows_of(tmp_path, "cut.jsonl.gz", whole[:len(whole) // 2])
    assert 0 < len(rows) < 3000
    assert rows == [json.loads(line) for line in lines[:len(rows)]]  # every row before the break, none cut in two
    assert report.error_count == 1
    line, text = errors(report)[0]
    assert line == len(rows) + 1 and text.startswith("The gzip file breaks off here (Compressed file ended")
    # the same break in a JSON array, and in plain text (where a document cut in two is not kept)
    array = gzip.compress(("[\n" + ",\n".join(lines) + "\n]").encode())
    report, rows = rows_of(tmp_path, "cut.json.gz", array[:len(array) // 2])
    assert 0 < len(rows) < 3000 and errors(report)[-1][0] == len(rows) + 2  # the "[" is line 1
    assert [e.message_id for e in report.errors] == ["The gzip file breaks off here ({reason}); the rows before "
                                                     "this line were read, nothing after it could be"]
    text = gzip.compress("\n\n".join(f"document {i} " + "é" * 40 for i in range(3000)).encode())
    report, rows = rows_of(tmp_path, "cut.txt.gz", text[:len(text) // 2])
    assert rows == [{"text": f"document {i} " + "é" * 40} for i in range(len(rows))]
    assert errors(report)[0][0] in (2 * len(rows) + 1, 2 * len(rows))  # the break on a document or a blank line


def test_invalid_gzip(tmp_path: Path) -> None:
    report, rows = rows_of(tmp_path, "fake.jsonl.gz", b"\x1f\x8bnot really gzip at all")
    assert rows == [] and errors(report) == [(1, "The file is not valid gzip: Unknown compression method")]
    data = bytearray(gzip.compress("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(100)).encode()))
    data[-6] ^= 0xFF  # the checksum at the end: every row arrives, then the file turns out damaged
    report, rows = rows_of(tmp_path, "crc.jsonl.gz", bytes(data))
    assert len(rows) == 100 and errors(report)[0][0] == 101 and "CRC check failed" in errors(report)[0][1]


def test_json_array_with_a_bom_plain_and_gzipped(tmp_path: Path) -> None:
    records = [{"messages": CHAT}, {"messages": [{"role": "user", "content": "q"}]}, {"messages": CHAT}]
    content = "\ufeff" + json.dumps(records, indent=1)
    for name, data in (("a.json", content.encode()), ("a.json.gz", gzip.compress(content.encode()))):
        report, rows = rows_of(tmp_path, name, data)
        assert (report.container, report.format, len(rows)) == ("json", "openai", 2)
        second_item_line = content.split("\n").index(" {", 2) + 1  # where the second object starts
        assert errors(report) == [(second_item_line, "The conversation has no assistant message to learn from")]


def test_duplicates_are_counted_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from array import array

    from backend.services import dataset_formats

    monkeypatch.setattr(dataset_formats, "DUPLICATE_BLOCK", 4)
    values = array("Q", [7, 3, 9, 3, 3, 1, 9, 2, 8, 5, 4, 6, 0, 2**64 - 1, 2**64 - 1])
    expected = len(values) - len(set(values))  # 3 twice more, 9 and the largest once more: 4
    assert dataset_formats.count_duplicates(values) == expected == 4  # the three 3s straddle a block's end
    assert dataset_formats.count_duplicates(array("Q", [1])) == 0
    assert dataset_formats.count_duplicates(array("Q")) == 0
