"""The `<think>…</think>` parser: incremental, split tags, lone closing tags, corrections, whitespace."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from backend.providers.reasoning import Piece, ThinkTagParser, split_reasoning


def apply(pieces: Iterable[Piece], answer: str = "", reasoning: str = "") -> tuple[str, str]:
    """What a consumer does with the pieces: returns the resulting (answer, reasoning)."""
    for piece in pieces:
        assert piece.text, f"empty piece {piece!r}"
        if piece.kind == "text":
            answer += piece.text
        elif piece.kind == "reasoning":
            reasoning += piece.text
        else:
            assert piece.kind == "correction"
            assert answer == piece.text, "a correction moves exactly the answer emitted so far"
            assert reasoning == ""
            answer, reasoning = "", piece.text + reasoning
    return answer, reasoning


def run(chunks: Iterable[str], *, starts_in_reasoning: bool = False) -> list[Piece]:
    parser = ThinkTagParser(starts_in_reasoning=starts_in_reasoning)
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces.extend(parser.feed(chunk))
    pieces.extend(parser.finish())
    return pieces


def parse(chunks: Iterable[str], *, starts_in_reasoning: bool = False) -> tuple[str, str]:
    return apply(run(chunks, starts_in_reasoning=starts_in_reasoning))


# -- rule 1: tags inside the text, split anywhere -------------------------------------------------------------------


def test_one_chunk() -> None:
    assert run(["pre<think>reason</think>post"]) == [
        Piece("text", "pre"), Piece("reasoning", "reason"), Piece("text", "post")]


def test_example_chunks_from_the_design() -> None:
    parser = ThinkTagParser()
    assert parser.feed("<th") == []
    assert parser.feed("ink>") == []
    assert parser.in_reasoning
    assert parser.feed("abc</thi") == [Piece("reasoning", "abc")]
    assert parser.feed("nk>answer") == [Piece("text", "answer")]
    assert not parser.in_reasoning
    assert parser.finish() == []


@pytest.mark.parametrize("text", ["pre<think>reason</think>post", "<think>r</think>a", "a<think></think>b",
                                  "x</think>y", "<think>r1</think>a1<think>r2</think>a2"])
def test_every_two_way_split(text: str) -> None:
    whole = parse([text])
    for cut in range(len(text) + 1):
        assert parse([text[:cut], text[cut:]]) == whole, cut


@pytest.mark.parametrize("text", ["pre<think>reason</think>post", "x</think>y"])
def test_every_three_way_split(text: str) -> None:
    whole = parse([text])
    for first in range(len(text) + 1):
        for second in range(first, len(text) + 1):
            assert parse([text[:first], text[first:second], text[second:]]) == whole, (first, second)


def test_split_results() -> None:
    assert parse(["pre<think>reason</think>post"]) == ("prepost", "reason")
    assert parse(list("pre<think>reason</think>post")) == ("prepost", "reason")


def test_emits_as_early_as_possible() -> None:
    parser = ThinkTagParser()
    assert parser.feed("hello") == [Piece("text", "hello")]
    assert parser.feed(" world<") == [Piece("text", " world")]  # only "<" held back
    assert parser.feed("t") == []  # "<t" could still be "<think>"
    assert parser.feed("hi") == []
    assert parser.feed("x") == [Piece("text", "<thix")]
    assert parser.feed("</thin") == []
    assert parser.feed("g") == [Piece("text", "</thing")]
    assert parser.feed("<think") == []
    assert parser.feed(">deep") == [Piece("reasoning", "deep")]
    assert parser.feed("</") == []
    assert parser.feed("b>") == [Piece("reasoning", "</b>")]


def test_text_that_cannot_start_a_tag_is_not_held() -> None:
    parser = ThinkTagParser()
    assert parser.feed("a < b") == [Piece("text", "a < b")]
    assert parser.feed("<<") == [Piece("text", "<")]
    assert parser.feed("x") == [Piece("text", "<x")]
    assert parser.feed("<Think") == [Piece("text", "<Think")]


def test_adjacent_pieces_of_a_feed_are_merged() -> None:
    parser = ThinkTagParser()
    assert parser.feed("<think>a<think>b</think>c</think>d") == [Piece("reasoning", "ab"), Piece("text", "cd")]


def test_empty_chunks_yield_nothing() -> None:
    parser = ThinkTagParser()
    assert parser.feed("") == []
    assert parser.feed("<think>") == []
    assert parser.feed("\n\n") == []  # leading newlines of reasoning are stripped
    assert parser.feed("") == []
    assert parser.finish() == []


# -- rule 2: unclosed reasoning ---------------------------------------------------------------------------------------


def test_unclosed_reasoning_at_end() -> None:
    assert parse(["ans<think>still thinking"]) == ("ans", "still thinking")
    parser = ThinkTagParser()
    assert parser.feed("<think>abc</thi") == [Piece("reasoning", "abc")]
    assert parser.in_reasoning
    assert parser.finish() == [Piece("reasoning", "</thi")]


def test_partial_close_tag_at_end_flushes_as_text() -> None:
    parser = ThinkTagParser()
    assert parser.feed("answer </think") == [Piece("text", "answer ")]
    assert parser.finish() == [Piece("text", "</think")]
    assert parse(["a<"]) == ("a<", "")
    assert parse(["a<thin"]) == ("a<thin", "")


# -- rule 3: lone closing tag -----------------------------------------------------------------------------------------


def test_starts_in_reasoning() -> None:
    parser = ThinkTagParser(starts_in_reasoning=True)
    assert parser.in_reasoning
    assert parser.feed("Let me think") == [Piece("reasoning", "Let me think")]
    assert parser.feed(".</think>\n\nThe answer") == [Piece("reasoning", "."), Piece("text", "The answer")]
    assert not parser.in_reasoning
    assert parser.finish() == []


def test_starts_in_reasoning_without_closing_tag() -> None:
    assert parse(["all of it is reasoning"], starts_in_reasoning=True) == ("", "all of it is reasoning")


def test_starts_in_reasoning_with_explicit_open_tag() -> None:
    for chunks in (["<think>r</think>a"], [" \n <think>\nr</think>a"], ["\n", "  <th", "ink>", "\nr</think>", "a"]):
        assert parse(chunks, starts_in_reasoning=True) == ("a", "r"), chunks


def test_starts_in_reasoning_holds_only_what_could_precede_the_tag() -> None:
    parser = ThinkTagParser(starts_in_reasoning=True)
    assert parser.feed("\n ") == []
    assert parser.feed("<thi") == []
    assert parser.feed("s is") == [Piece("reasoning", " <this is")]  # leading newline stripped, the space kept


def test_starts_in_reasoning_leading_whitespace_only() -> None:
    assert parse(["\n\n"], starts_in_reasoning=True) == ("", "")
    assert parse([" ", "<thin"], starts_in_reasoning=True) == ("", " <thin")


def test_lone_close_tag_emits_correction() -> None:
    parser = ThinkTagParser()
    assert parser.feed("I should ") == [Piece("text", "I should ")]
    assert parser.feed("add them") == [Piece("text", "add them")]
    pieces = parser.feed(".</think>\n\n42")
    assert pieces == [Piece("correction", "I should add them"), Piece("reasoning", "."), Piece("text", "42")]
    assert parser.feed(" is it") == [Piece("text", " is it")]
    assert parser.finish() == []
    answer, reasoning = apply(
        [Piece("text", "I should "), Piece("text", "add them"), *pieces, Piece("text", " is it")])
    assert (answer, reasoning) == ("42 is it", "I should add them.")


def test_lone_close_tag_in_one_chunk_needs_no_correction() -> None:
    assert run(["abc</think>def"]) == [Piece("reasoning", "abc"), Piece("text", "def")]


def test_lone_close_tag_at_start_of_a_chunk() -> None:
    parser = ThinkTagParser()
    assert parser.feed("abc") == [Piece("text", "abc")]
    assert parser.feed("</think>def") == [Piece("correction", "abc"), Piece("text", "def")]


def test_lone_close_tag_split_across_chunks() -> None:
    parser = ThinkTagParser()
    assert parser.feed("abc</th") == [Piece("text", "abc")]
    assert parser.feed("ink>def") == [Piece("correction", "abc"), Piece("text", "def")]


def test_lone_close_tag_with_no_text_before() -> None:
    assert run(["</think>\nanswer"]) == [Piece("text", "answer")]


def test_close_tag_after_a_think_block_is_dropped_not_a_correction() -> None:
    assert parse(["<think>r</think>a", "b</think>c"]) == ("abc", "r")


def test_second_lone_close_tag_is_dropped() -> None:
    assert parse(["a", "</think>b", "</think>c"]) == ("bc", "a")
    assert parse(["r</think>a</think>b"], starts_in_reasoning=True) == ("ab", "r")


def test_open_tag_before_lone_close_means_no_correction() -> None:
    pieces = run(["x", "<think>y", "</think>z"])
    assert all(piece.kind != "correction" for piece in pieces)
    assert apply(pieces) == ("xz", "y")


# -- rule 4: tags never leak, multiple blocks, whitespace ------------------------------------------------------------


def test_multiple_blocks() -> None:
    text = "<think>one</think>A<think>two</think>B<think>three"
    assert parse([text]) == ("AB", "onetwothree")
    assert parse(list(text)) == ("AB", "onetwothree")


def test_tags_never_appear_in_output() -> None:
    text = "<think><think>a</think></think>b<think>c<think></think></think>"
    for chunks in ([text], list(text)):
        for starts in (False, True):
            answer, reasoning = parse(chunks, starts_in_reasoning=starts)
            assert "<think>" not in answer + reasoning
            assert "</think>" not in answer + reasoning


@pytest.mark.parametrize("text", ["a < b", "if x<y and y>z", "<thinking>x</thinking>", "<div>hi</div>", "<t>",
                                  "< think>", "<THINK>x</THINK>", "</ think>", "<think >", "<", "<<think"])
def test_non_tags_stay_in_the_text(text: str) -> None:
    assert parse([text]) == (text, "")
    assert parse(list(text)) == (text, "")


def test_non_tags_inside_reasoning() -> None:
    assert parse(["<think>a < b, <thinking>, <div></think>ok"]) == ("ok", "a < b, <thinking>, <div>")


def test_answer_whitespace_stripped_after_close_tag_only() -> None:
    assert parse(["  lead <think>r</think> \n\n\t answer  \n"]) == ("  lead answer  \n", "r")
    assert parse(["<think>r</think>", "\n", "\n ", "answer\n\nmore"]) == ("answer\n\nmore", "r")
    assert parse(["<think>r</think>\n\n"]) == ("", "r")


def test_answer_whitespace_stripped_after_lone_close_tag() -> None:
    assert parse(["r", "</think>\n\n", " a"]) == ("a", "r")


def test_reasoning_leading_newlines_stripped_only() -> None:
    assert parse(["<think>\n\n  indented\n\nreason\n</think>a"]) == ("a", "  indented\n\nreason\n")
    assert parse(["<think>", "\n", "\r\n", "x\n"]) == ("", "x\n")
    assert parse(["\n\nr\n</think>a"], starts_in_reasoning=True) == ("a", "r\n")


def test_text_is_otherwise_untouched() -> None:
    text = "  Hello,\n\n world!  \n"
    assert parse([text]) == (text, "")
    assert parse([text], starts_in_reasoning=True) == ("", text.lstrip("\n"))


# -- rule 5: case-sensitive -----------------------------------------------------------------------------------------


def test_tags_are_case_sensitive() -> None:
    assert parse(["<Think>x</Think>"]) == ("<Think>x</Think>", "")
    assert parse(["a</THINK>b"]) == ("a</THINK>b", "")


# -- split_reasoning --------------------------------------------------------------------------------------------------


def test_split_reasoning() -> None:
    assert split_reasoning("pre<think>\nreason</think>\n\npost") == ("prepost", "reason")
    assert split_reasoning("just an answer") == ("just an answer", "")
    assert split_reasoning("reason</think>answer") == ("answer", "reason")
    assert split_reasoning("reason</think>answer", starts_in_reasoning=True) == ("answer", "reason")
    assert split_reasoning("unfinished", starts_in_reasoning=True) == ("", "unfinished")
    assert split_reasoning("a<think>b") == ("a", "b")
    assert split_reasoning("") == ("", "")


# -- property: the chunking never changes the result ----------------------------------------------------------------

SAMPLES = [
    "pre<think>reason</think>post",
    "<think>\n\nStep 1: a < b.\nStep 2: <thinking> is not a tag.\n</think>\n\nThe answer is <b>42</b>.",
    "Okay, the user asks x.\nSo y.\n</think>\n\nFinal answer: y </think> done",
    "<think>one</think>A<think>two</think>\n B <think>three",
    "  \n<think>\nr</think>a",
    "<<<think>>></think></think><th</th<think</think",
    "no tags at all, just < and > and </ and <t",
    "x</thin",
    "",
]


def random_chunks(text: str, rng: random.Random) -> list[str]:
    chunks: list[str] = []
    pos = 0
    while pos < len(text):
        size = rng.choice([0, 1, 1, 2, 3, 5, 8, 13])
        chunks.append(text[pos:pos + size])
        pos += size
    return chunks


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("starts_in_reasoning", [False, True])
def test_random_chunkings_match_one_chunk(seed: int, starts_in_reasoning: bool) -> None:
    rng = random.Random(seed)
    for text in SAMPLES:
        whole = parse([text], starts_in_reasoning=starts_in_reasoning)
        assert whole == split_reasoning(text, starts_in_reasoning=starts_in_reasoning)
        for _ in range(25):
            chunks = random_chunks(text, rng)
            assert "".join(chunks) == text
            assert parse(chunks, starts_in_reasoning=starts_in_reasoning) == whole, chunks


def test_long_stream_is_linear() -> None:
    """100k one-character chunks with many `<`: each feed touches only the chunk and the few held characters."""
    text = ("<think>" + "a<b " * 10_000 + "</think>" + "x<y " * 15_000)
    parser = ThinkTagParser()
    pieces: list[Piece] = []
    for char in text:
        pieces.extend(parser.feed(char))
    pieces.extend(parser.finish())
    assert apply(pieces) == ("x<y " * 15_000, "a<b " * 10_000)
    assert max(len(piece.text) for piece in pieces) <= 2
