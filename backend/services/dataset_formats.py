"""Reading a dataset file: its container (JSON lines, a JSON array, CSV, plain text; gzip or not; UTF-8 with or
without BOM), its format (Alpaca, ShareGPT, OpenAI messages, plain text, CSV with a column mapping), and every row
checked and normalized on the way — in one pass, with memory that does not grow with the file.

A normalized row is `{"messages": [{"role", "content"}, ...]}` or `{"text": ...}` (see backend/services/datasets.py).
Every problem is a `LineError` with the line number where its row starts.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy
import orjson

from backend.i18n import N_
from backend.services.line_errors import LineError

FORMATS = ("alpaca", "sharegpt", "openai", "text", "csv")
MAX_ERRORS = 1000  # kept in detail; beyond that they are only counted
# Rows whose 8-byte fingerprints are kept to count duplicates: about 8.5 bytes a row (the array's spare room
# included), sorted in place at the end, so 170 MB at this cap; past it duplicates are counted approximately.
MAX_DUPLICATE_TRACKING = 20_000_000
DUPLICATE_BLOCK = 1 << 20  # neighbours compared a block at a time: a 1 MB temporary, not one byte a row
HISTOGRAM_EDGES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)  # estimated tokens; the last bin is open
SNIFF_BYTES = 64 * 1024
CHUNK = 1024 * 1024

INVALID_JSON = N_("Invalid JSON: {reason}")
NOT_AN_OBJECT = N_("Expected a JSON object, found {kind}")
UNKNOWN_FORMAT = N_("Cannot tell the format of this row (fields: {fields}); expected messages (OpenAI), conversations "
                    "(ShareGPT), instruction and output (Alpaca) or text")
MISSING_FIELD = N_("Missing field {field}")
NOT_TEXT = N_("The field {field} must be text")
NOT_A_LIST = N_("The field {field} must be a list")
EMPTY_CONTENT = N_("Empty content in message {index}")
EMPTY_FIELD = N_("The field {field} is empty")
UNKNOWN_ROLE = N_("Unknown role {role} in message {index}; use system, user or assistant")
ROLE_ORDER = N_("Wrong role order at message {index}: {role} after {previous}; turns alternate user, assistant, "
                "with an optional system message first")
NO_ANSWER = N_("The conversation has no assistant message to learn from")
ENDS_WITH_USER = N_("The conversation ends with a user message; the last message must be the assistant's")
BAD_HISTORY = N_("history must be a list of [question, answer] pairs")
NOT_UTF8 = N_("The file is not UTF-8 text: {reason}; save it as UTF-8 and upload it again")
ARRAY_BROKEN = N_("The JSON array is broken here ({reason}); nothing after this line could be read")
NOT_GZIP = N_("The file is not valid gzip: {reason}")
GZIP_BROKEN = N_("The gzip file breaks off here ({reason}); the rows before this line were read, nothing after it "
                  "could be")
CSV_NO_COLUMNS = N_("No usable columns (found: {columns}); map the columns to fields, or name them instruction, "
                    "input, output (or prompt, response; or text)")
CSV_BAD_ROW = N_("Invalid CSV: {reason}")
CSV_UNKNOWN_COLUMN = N_("The mapping names a column {column} that the file does not have (found: {columns})")

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "bing": "assistant", "bard": "assistant", "model": "assistant", "system": "system"}
OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "developer": "system"}
# CSV column names that map to a field without a mapping, most specific first
CSV_AUTO = {
    "instruction": ("instruction", "prompt", "question", "query"),
    "input": ("input", "context"),
    "output": ("output", "response", "answer", "completion"),
    "system": ("system", "system_prompt"),
    "text": ("text", "content"),
}


class RowError(Exception):
    def __init__(self, message_id: str, **params: object) -> None:
        super().__init__(message_id)
        self.message_id = message_id
        self.params = params


# --- containers -------------------------------------------------------------------------------------------------


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped when it is gzip (by its magic number, not its name)."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return io.BufferedReader(GzipUntilDamage(raw), CHUNK)  # type: ignore[return-value]
    raw.seek(0)
    return raw


class GzipUntilDamage(io.RawIOBase):
    """A gzip file's bytes that end cleanly where the file is cut short or damaged, instead of an exception that
    would lose every row read so far. `damage` says what went wrong and `broken_line` on which line; a character
    split by the break is held back (so text decoding does not fail on it), and whether the data stopped
    mid-line is known (`mid_line`), so that a row cut in two is not taken for a whole one."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw = raw
        self.source = gzip.GzipFile(fileobj=raw, mode="rb")
        self.ready = memoryview(b"")
        self.held = b""  # the start of a UTF-8 character whose other bytes have not come yet
        self.damage: str | None = None
        self.newlines = 0
        self.delivered = 0  # bytes
        self.mid_line = False  # the last byte delivered was not a line end
        self.finished = False

    @property
    def broken_line(self) -> int:
        return self.newlines + 1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.ready:
            if self.finished:
                return 0
            try:
                chunk = self.source.read1(CHUNK)
            except (EOFError, OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
                self.damage, self.finished, self.held = str(error) or type(error).__name__, True, b""
                return 0
            if not chunk:
                chunk, self.held, self.finished = self.held, b"", True
            else:
                chunk, self.held = _split_character(self.held + chunk)
            if chunk:
                self.newlines += chunk.count(b"\n")
                self.delivered += len(chunk)
                self.mid_line = chunk[-1:] != b"\n"
                self.ready = memoryview(chunk)
        count = min(len(buffer), len(self.ready))
        buffer[:count] = self.ready[:count]
        self.ready = self.ready[count:]
        return count

    def close(self) -> None:
        self.source.close()
        self.raw.close()
        super().close()


def _split_character(data: bytes) -> tuple[bytes, bytes]:
    """`data` without a UTF-8 character cut off at its end, and that cut-off start."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the character's first
            needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            return (data[:-back], data[-back:]) if needed > back else (data, b"")
    return data, b""


def container_of(path: Path, filename: str | None = None) -> str:
    """"jsonl", "json" (an array), "csv" or "text": by the name's extension when it says, else by the content."""
    name = (filename or path.name).lower().removesuffix(".gz")
    for suffix, kind in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv"), (".tsv", "csv"),
                         (".txt", "text"), (".md", "text")):
        if name.endswith(suffix):
            return kind
    with open_binary(path) as file:
        head = file.read(SNIFF_BYTES).lstrip(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    first_line = head.split(b"\n", 1)[0]
    if b"," in first_line or b"\t" in first_line:
        return "csv"
    return "text"


def _json_lines(file: BinaryIO) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(file, 1):
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[3:]
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield number, RowError(INVALID_JSON, reason=str(error).split(":", 1)[0])


def _json_array(file: BinaryIO) -> Iterator[tuple[int, Any]]:
    """The items of a top-level JSON array, each with the line it starts on, read a chunk at a time."""
    decoder = json.JSONDecoder()
    text = io.TextIOWrapper(file, encoding="utf-8-sig")
    buffer, position, line, started, eof = "", 0, 1, False, False

    def fill() -> bool:
        nonlocal buffer, position, eof
        chunk = text.read(CHUNK)
        if not chunk:
            eof = True
            return False
        buffer, position = buffer[position:] + chunk, 0
        return True

    def skip_space() -> None:
        nonlocal position, line
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                if buffer[position] == "\n":
                    line += 1
                position += 1
            if position < len(buffer) or not fill():
                return

    fill()
    skip_space()
    if position >= len(buffer) or buffer[position] != "[":
        yield line, RowError(ARRAY_BROKEN, reason="[ expected")
        return
    position += 1
    while True:
        skip_space()
        if position >= len(buffer):
            yield line, RowError(ARRAY_BROKEN, reason="] expected")
            return
        if buffer[position] == "]":
            return
        if started:
            if buffer[position] != ",":
                yield line, RowError(ARRAY_BROKEN, reason=", expected")
                return
            position += 1
            skip_space()
        started = True
        while True:
            try:
                item, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as error:
                if eof or not fill():  # the item may go on in the next chunk
                    yield line, RowError(ARRAY_BROKEN, reason=error.msg)
                    return
        start_line = line
        line += buffer.count("\n", position, end)
        position = end
        yield start_line, item


def _csv_rows(file: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Each data row as a dict by header name; the header is line 1."""
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    sample = text.read(SNIFF_BYTES)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(_chain(sample, text), dialect, strict=True)  # a stray quote is a bad row, not text
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    yield 1, header  # the header first: the mapping is made from it
    previous_end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # the reader starts afresh on the next line
            yield previous_end + 1, RowError(CSV_BAD_ROW, reason=str(error))
            previous_end = reader.line_num
            continue
        start, previous_end = previous_end + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue
        yield start, dict(zip(header, cells, strict=False))


def _chain(first: str, rest: IO[str]) -> Iterator[str]:
    yield from io.StringIO(first + rest.readline())
    yield from rest


def _text_blocks(file: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Plain text: documents separated by blank lines, each starting on the line of its first text."""
    block: list[str] = []
    start = 0
    for number, raw in enumerate(io.TextIOWrapper(file, encoding="utf-8-sig"), 1):
        if raw.strip():
            if not block:
                start = number
            block.append(raw)
        elif block:
            yield start, {"text": "".join(block).strip()}
            block = []
    if block:
        yield start, {"text": "".join(block).strip()}


# --- formats ----------------------------------------------------------------------------------------------------


def detect_format(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or ("output" in record and "input" in record):
        return "alpaca"
    if "text" in record:
        return "text"
    return None


def _text(record: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = record.get(name)
    if value is None:
        if required:
            raise RowError(MISSING_FIELD, field=name)
        return ""
    if not isinstance(value, str):
        raise RowError(NOT_TEXT, field=name)
    return value


def _check_turns(messages: list[dict[str, str]]) -> dict[str, Any]:
    previous = None
    for index, message in enumerate(messages, 1):
        role = message["role"]
        if not message["content"].strip():
            raise RowError(EMPTY_CONTENT, index=index)
        expected_ok = (
            (role == "system" and previous is None)
            or (role == "user" and previous in (None, "system", "assistant"))
            or (role == "assistant" and previous == "user")
        )
        if not expected_ok:
            raise RowError(ROLE_ORDER, index=index, role=role, previous=previous or "start")
        previous = role
    if previous != "assistant":
        raise RowError(NO_ANSWER if "assistant" not in (m["role"] for m in messages) else ENDS_WITH_USER)
    return {"messages": messages}


def _content(value: Any, index: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: the text ones
        return "".join(p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") == "text")
    raise RowError(NOT_TEXT, field=f"content ({index})")


def normalize_openai(record: dict[str, Any]) -> dict[str, Any]:
    raw = record.get("messages")
    if raw is None:
        raise RowError(MISSING_FIELD, field="messages")
    if not isinstance(raw, list):
        raise RowError(NOT_A_LIST, field="messages")
    messages = []
    for index, message in enumerate(raw, 1):
        if not isinstance(message, dict):
            raise RowError(NOT_AN_OBJECT, kind=type(message).__name__)
        role = OPENAI_ROLES.get(message.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise RowError(UNKNOWN_ROLE, role=str(message.get("role")), index=index)
        messages.append({"role": role, "content": _content(message.get("content"), index)})
    return _check_turns(messages)


def normalize_sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    raw = record.get("conversations")
    if raw is None:
        raise RowError(MISSING_FIELD, field="conversations")
    if not isinstance(raw, list):
        raise RowError(NOT_A_LIST, field="conversations")
    messages = []
    system = record.get("system")
    if system:
        if not isinstance(system, str):
            raise RowError(NOT_TEXT, field="system")
        messages.append({"role": "system", "content": system})
    for index, turn in enumerate(raw, 1):
        if not isinstance(turn, dict):
            raise RowError(NOT_AN_OBJECT, kind=type(turn).__name__)
        speaker = turn.get("from")
        role = SHAREGPT_ROLES.get(speaker.lower()) if isinstance(speaker, str) else None
        if role is None:
            raise RowError(UNKNOWN_ROLE, role=str(speaker), index=index)
        value = turn.get("value")
        if value is None:
            raise RowError(MISSING_FIELD, field=f"value ({index})")
        if not isinstance(value, str):
            raise RowError(NOT_TEXT, field=f"value ({index})")
        messages.append({"role": role, "content": value})
    return _check_turns(messages)


def normalize_alpaca(record: dict[str, Any]) -> dict[str, Any]:
    instruction = _text(record, "instruction", required=False)
    extra = _text(record, "input", required=False)
    output = _text(record, "output")
    if not (instruction.strip() or extra.strip()):
        raise RowError(EMPTY_FIELD, field="instruction")
    if not output.strip():
        raise RowError(EMPTY_FIELD, field="output")
    messages = []
    system = _text(record, "system", required=False)
    if system.strip():
        messages.append({"role": "system", "content": system})
    history = record.get("history") or []
    if not isinstance(history, list):
        raise RowError(BAD_HISTORY)
    for pair in history:
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise RowError(BAD_HISTORY)
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = f"{instruction}\n\n{extra}" if instruction.strip() and extra.strip() else instruction or extra
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return _check_turns(messages)  # the history's turns too: an empty question or answer is a bad row


def normalize_text(record: dict[str, Any]) -> dict[str, Any]:
    text = _text(record, "text")
    if not text.strip():
        raise RowError(EMPTY_FIELD, field="text")
    return {"text": text}


NORMALIZERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "openai": normalize_openai, "sharegpt": normalize_sharegpt, "alpaca": normalize_alpaca, "text": normalize_text,
}


def csv_mapping(columns: list[str], mapping: dict[str, str] | None) -> dict[str, str]:
    """field → column: the user's mapping, or guessed from the column names."""
    if mapping:
        missing = [c for c in mapping.values() if c and c not in columns]
        if missing:
            raise RowError(CSV_UNKNOWN_COLUMN, column=missing[0], columns=", ".join(columns))
        return {k: v for k, v in mapping.items() if v}
    lowered = {c.lower(): c for c in columns}
    guessed = {}
    for target, names in CSV_AUTO.items():
        found = next((lowered[n] for n in names if n in lowered), None)
        if found is not None:
            guessed[target] = found
    if "output" in guessed and "instruction" in guessed:
        guessed.pop("text", None)
        return guessed
    if "text" in guessed:
        return {"text": guessed["text"]}
    raise RowError(CSV_NO_COLUMNS, columns=", ".join(columns))


def _csv_normalizer(mapping: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    if "text" in mapping and "output" not in mapping:
        column = mapping["text"]
        return lambda row: normalize_text({"text": row.get(column)})
    return lambda row: normalize_alpaca({field: row.get(column) for field, column in mapping.items()})


def _whole_records(records: Iterator[tuple[int, Any]], source: GzipUntilDamage) -> Iterator[tuple[int, Any]]:
    """The records of a gzip file, one behind: the last is left out when the file broke off in the middle of a line
    (that row, or its last line, was cut in two)."""
    previous: tuple[int, Any] | None = None
    for record in records:
        if previous is not None:
            yield previous
        previous = record
    if previous is not None and not (source.damage is not None and source.mid_line):
        yield previous


def _damage_errors(source: GzipUntilDamage | None) -> list[LineError]:
    if source is None or source.damage is None:
        return []
    return [LineError(source.broken_line, GZIP_BROKEN if source.delivered else NOT_GZIP, {"reason": source.damage})]


def fingerprint(encoded: bytes) -> int:
    """The 8-byte fingerprint by which rows are told apart: of a normalized row as written (no line end)."""
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest())


def repeated_rows(fingerprints: array[int]) -> numpy.ndarray[Any, numpy.dtype[numpy.bool_]]:
    """For each row, whether an earlier row has its fingerprint (the first of equal rows is not a repeat). About 25
    bytes a row while it works (the order of a stable sort, the sorted copy), one byte a row for the answer."""
    view = numpy.frombuffer(fingerprints, dtype=numpy.uint64)
    repeats = numpy.zeros(len(view), dtype=numpy.bool_)
    if len(view) > 1:
        order = numpy.argsort(view, kind="stable")  # equal fingerprints keep their rows' order: the first stays
        ordered = view[order]
        repeats[order[1:][ordered[1:] == ordered[:-1]]] = True
    return repeats


def count_duplicates(fingerprints: array[int]) -> int:
    """Rows whose fingerprint an earlier row has: sorted in place (no copy, unlike numpy.unique, which took ~65
    bytes a row), then equal neighbours counted a block at a time."""
    if len(fingerprints) < 2:
        return 0
    view = numpy.frombuffer(fingerprints, dtype=numpy.uint64)  # the array's own memory
    view.sort()
    duplicates = 0
    for start in range(0, len(view) - 1, DUPLICATE_BLOCK):
        end = min(start + DUPLICATE_BLOCK + 1, len(view))
        duplicates += int(numpy.count_nonzero(view[start + 1:end] == view[start:end - 1]))
    return duplicates


# --- the pass ---------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    rows: int = 0
    turns: int = 0  # messages other than system ones
    characters: int = 0
    tokens: int = 0  # estimated (UTF-8 bytes / 4), unless a tokenizer counted them
    max_tokens: int = 0
    duplicates: int = 0
    duplicates_exact: bool = True  # False past MAX_DUPLICATE_TRACKING rows
    histogram: list[int] = field(default_factory=lambda: [0] * (len(HISTOGRAM_EDGES) + 1))
    roles: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "turns": self.turns, "characters": self.characters,
            "tokens": self.tokens, "tokens_estimated": True,
            "mean_tokens": round(self.tokens / self.rows, 1) if self.rows else 0, "max_tokens": self.max_tokens,
            "duplicates": self.duplicates, "duplicates_exact": self.duplicates_exact,
            "histogram": {"edges": list(HISTOGRAM_EDGES), "counts": self.histogram},
        }


@dataclass
class Report:
    format: str
    container: str
    stats: Stats
    errors: list[LineError]
    error_count: int
    sha256: str = ""
    size: int = 0  # bytes written
    preview: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # CSV: the header's column names
    mapping: dict[str, str] = field(default_factory=dict)  # CSV: field → column, as given or guessed

    @property
    def rows(self) -> int:
        return self.stats.rows


PREVIEW_ROWS = 20


def read_dataset(path: Path, *, filename: str | None = None, format: str | None = None,
                 mapping: dict[str, str] | None = None, out: BinaryIO | None = None) -> Report:
    """One pass over the file: detect, check and normalize every row; good rows are written to `out` (JSON lines)
    when given. Memory stays flat whatever the file's size, bar the duplicate fingerprints (about 8.5 bytes a row,
    up to MAX_DUPLICATE_TRACKING rows)."""
    try:
        return _read(path, filename=filename, format=format, mapping=mapping, out=out)
    except UnicodeDecodeError as error:
        return Report(format=format or "text", container="?", stats=Stats(), error_count=1,
                      errors=[LineError(1, NOT_UTF8, {"reason": f"byte {error.start}: {error.reason}"})])


def _read(path: Path, *, filename: str | None, format: str | None, mapping: dict[str, str] | None,
          out: BinaryIO | None) -> Report:
    container = container_of(path, filename)
    if format == "csv":
        container = "csv"
    errors: list[LineError] = []
    error_count = 0
    stats = Stats()
    fingerprints = array("Q")  # 8 bytes a row: duplicates are counted at the end
    digest = hashlib.sha256()
    size = 0
    preview: list[dict[str, Any]] = []
    normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = NORMALIZERS.get(format or "")
    chosen = format if format in NORMALIZERS else None
    histogram, edges = stats.histogram, HISTOGRAM_EDGES
    dumps = orjson.dumps
    columns: list[str] = []
    used: dict[str, str] = {}

    with open_binary(path) as file:
        records = {"jsonl": _json_lines, "json": _json_array, "csv": _csv_rows, "text": _text_blocks}[container](file)
        gunzip = getattr(file, "raw", None)
        damaged = gunzip if isinstance(gunzip, GzipUntilDamage) else None
        if damaged is not None:
            records = _whole_records(records, damaged)
        if container == "csv":
            header = next(records, None)
            if header is None:
                broken = _damage_errors(damaged)
                return Report(format="csv", container=container, stats=stats, errors=broken, error_count=len(broken))
            columns = list(header[1])
            try:
                used = csv_mapping(columns, mapping)
            except RowError as problem:
                return Report(format="csv", container=container, stats=stats, error_count=1, columns=columns,
                              errors=[LineError(1, problem.message_id, problem.params)])
            normalize = _csv_normalizer(used)
            chosen = "csv"
        elif container == "text":
            normalize, chosen = normalize_text, "text"
        for line, record in records:
            try:
                if isinstance(record, RowError):
                    raise record
                if normalize is None:  # the first row that says what it is decides for the file
                    chosen = detect_format(record)
                    if chosen is None:
                        if not isinstance(record, dict):
                            raise RowError(NOT_AN_OBJECT, kind=type(record).__name__)
                        raise RowError(UNKNOWN_FORMAT, fields=", ".join(list(record)[:8]))
                    normalize = NORMALIZERS[chosen]
                if not isinstance(record, dict):
                    raise RowError(NOT_AN_OBJECT, kind=type(record).__name__)
                row = normalize(record)
            except RowError as problem:
                error_count += 1
                if len(errors) < MAX_ERRORS:
                    errors.append(LineError(line, problem.message_id, problem.params))
                continue
            encoded = dumps(row)
            stats.rows += 1
            if "messages" in row:
                chars = 0
                nbytes = 0
                for message in row["messages"]:
                    content = message["content"]
                    chars += len(content)
                    nbytes += len(content.encode())
                    if message["role"] != "system":
                        stats.turns += 1
            else:
                chars = len(row["text"])
                nbytes = len(row["text"].encode())
            stats.characters += chars
            tokens = (nbytes + 3) // 4
            stats.tokens += tokens
            if tokens > stats.max_tokens:
                stats.max_tokens = tokens
            bucket = 0
            while bucket < len(edges) and tokens >= edges[bucket]:
                bucket += 1
            histogram[bucket] += 1
            if stats.rows <= MAX_DUPLICATE_TRACKING:
                fingerprints.append(fingerprint(encoded))
            else:
                stats.duplicates_exact = False
            if len(preview) < PREVIEW_ROWS:
                preview.append(row)
            if out is not None:
                encoded += b"\n"
                out.write(encoded)
                digest.update(encoded)
                size += len(encoded)
        broken = _damage_errors(damaged)  # past MAX_ERRORS too: it says why the rows stop
        errors += broken
        error_count += len(broken)
    stats.duplicates = count_duplicates(fingerprints)
    return Report(format=chosen or format or "openai", container=container, stats=stats, errors=errors,
                  error_count=error_count, sha256=digest.hexdigest(), size=size, preview=preview, columns=columns,
                  mapping=used)
