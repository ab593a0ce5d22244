"""Data for training: loss only on the assistant's tokens, plain text learned whole, packing with position ids that
restart per sample, and a packed batch whose loss equals the unpacked (padded) loss of the same samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from jobs.recipes.collate import PackedCollator, PaddedCollator
from jobs.recipes.data import (
    IGNORE,
    Example,
    assistant_spans,
    ensure_chat_template,
    pack,
    tokenize_chat,
    tokenize_text,
)
from tests.training.tiny import chat_rows


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    return AutoTokenizer.from_pretrained(tiny_model)


def learned_text(tokenizer, example: Example) -> str:
    return tokenizer.decode([t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE])


def test_only_the_assistants_tokens_are_learned(tokenizer) -> None:
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "What is two plus two?"},
                {"role": "assistant", "content": "Two plus two is four."},
                {"role": "user", "content": "What colour is the sky?"},
                {"role": "assistant", "content": "The sky is blue."}]
    example, whole = tokenize_chat(tokenizer, messages, max_length=512)
    assert not whole
    assert tokenizer.decode(example.input_ids) == tokenizer.apply_chat_template(messages, tokenize=False)
    # Both answers with their end-of-turn token (so the model learns to stop); no system, user or role header.
    assert learned_text(tokenizer, example) == ("Two plus two is four.<|im_end|>\nThe sky is blue.<|im_end|>\n")


def test_a_template_that_does_not_render_prefixes_learns_the_whole_row(tokenizer) -> None:
    odd = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    odd.chat_template = "{% for m in messages|reverse %}{{ m['content'] }}|{% endfor %}"
    messages = chat_rows()[0]["messages"]
    _text, spans = assistant_spans(odd, messages)
    assert spans is None
    example, whole = tokenize_chat(odd, messages, max_length=512)
    assert whole and example.labels == example.input_ids


def test_plain_text_is_learned_whole_with_an_end_token(tokenizer) -> None:
    example = tokenize_text(tokenizer, "hello world", max_length=512)
    assert example.input_ids[-1] == tokenizer.eos_token_id and example.labels == example.input_ids
    assert len(tokenize_text(tokenizer, "hello world " * 50, max_length=16)) == 16


def test_a_tokenizer_without_a_chat_template_gets_chatml(tokenizer) -> None:
    bare = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    assert ensure_chat_template(bare) is False
    assert "<|im_start|>user\n" in bare.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_packing_fills_bins_and_restarts_positions() -> None:
    examples = [Example(list(range(1, n + 1)), list(range(1, n + 1))) for n in (7, 5, 4, 3, 3, 2, 9)]
    bins = pack(examples, capacity=10)
    assert sum(len(b["input_ids"]) for b in bins) == sum(len(e) for e in examples)  # nothing lost
    assert all(len(b["input_ids"]) <= 10 for b in bins)
    assert len(bins) == 4  # 33 tokens in bins of 10: best-fit decreasing needs the minimum
    for row in bins:
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        # Every sample starts at position 0 and counts up; its first token is never a target.
        for begin, end in zip(starts, [*starts[1:], len(row["position_ids"])], strict=True):
            assert row["position_ids"][begin:end] == list(range(end - begin))
            assert row["labels"][begin] == IGNORE
            assert row["labels"][begin + 1 : end] == row["input_ids"][begin + 1 : end]


def segments(positions: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of position ids counting up from 0."""
    starts = [i for i, p in enumerate(positions) if p == 0]
    return list(zip(starts, [*starts[1:], len(positions)], strict=True))


def test_a_packed_batch_is_a_row_per_bin_with_padding_as_its_own_sequence() -> None:
    examples = [Example(list(range(1, n + 1)), list(range(1, n + 1))) for n in (7, 5, 4, 3, 3, 2, 9)]
    bins = pack(examples, capacity=10)
    batch = PackedCollator(pad_token_id=99)(bins)
    assert "attention_mask" not in batch
    assert batch["input_ids"].shape == (len(bins), max(len(b["input_ids"]) for b in bins))
    for row, packed in enumerate(bins):
        used = len(packed["input_ids"])
        for key in ("input_ids", "labels", "position_ids"):
            assert batch[key][row, :used].tolist() == packed[key]
        pad = batch["input_ids"].shape[1] - used
        # The tail: pad tokens learning nothing, positions restarting at 0 (a sequence of its own).
        assert batch["input_ids"][row, used:].tolist() == [99] * pad
        assert batch["labels"][row, used:].tolist() == [IGNORE] * pad
        assert batch["position_ids"][row, used:].tolist() == list(range(pad))
    assert any(len(b["input_ids"]) < batch["input_ids"].shape[1] for b in bins)  # some row really is padded

    flat = PackedCollator(flatten=True)(bins)  # flash-attn: the whole batch in one row, nothing padded
    assert flat["input_ids"].shape == (1, sum(len(e) for e in examples))
    assert flat["position_ids"][0].tolist() == [p for b in bins for p in b["position_ids"]]


def test_packed_loss_equals_the_unpacked_loss(tiny_model: Path, tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa")
    model.config.use_cache = False
    examples = [tokenize_chat(tokenizer, row["messages"], max_length=512)[0] for row in chat_rows()[:7]]
    assert len({len(e) for e in examples}) > 1  # different lengths: the padded batch really pads
    capacity = 2 * max(len(e) for e in examples) + 8
    bins = pack(examples, capacity=capacity)
    # Several rows, rows of several samples, and a row shorter than the longest (so its tail is padding).
    assert len(bins) >= 3 and max(b["position_ids"].count(0) for b in bins) >= 2
    assert len({len(b["input_ids"]) for b in bins}) > 1

    packed = PackedCollator(pad_token_id=tokenizer.pad_token_id)(bins)
    assert packed["input_ids"].shape == (len(bins), max(len(b["input_ids"]) for b in bins))
    padded = PaddedCollator(pad_token_id=tokenizer.pad_token_id)(
        [{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    flat = PackedCollator(flatten=True)(bins)
    with torch.no_grad():
        packed_out = model(**packed)
        padded_out = model(**padded)
        flat_out = model(**flat)
    assert torch.allclose(packed_out.loss, padded_out.loss, atol=1e-5), (packed_out.loss, padded_out.loss)
    assert torch.allclose(flat_out.loss, padded_out.loss, atol=1e-5), (flat_out.loss, padded_out.loss)

    # No sample attends to another, nor to the padding: each packed sample's logits are its logits alone.
    checked = 0
    for row, packed_bin in enumerate(bins):
        for begin, end in segments(packed_bin["position_ids"]):
            with torch.no_grad():
                alone = model(input_ids=packed["input_ids"][row : row + 1, begin:end]).logits[0]
            assert torch.allclose(packed_out.logits[row, begin:end], alone, atol=1e-5), (row, begin)
            checked += 1
    assert checked == len(examples)

    # Without restarting position ids the samples would see each other: the check above means something.
    row = next(r for r, b in enumerate(bins) if b["position_ids"].count(0) >= 2)
    (second, second_end) = segments(bins[row]["position_ids"])[1]
    with torch.no_grad():
        leaky = model(input_ids=packed["input_ids"][row : row + 1]).logits[0]
        alone = model(input_ids=packed["input_ids"][row : row + 1, second:second_end]).logits[0]
    assert not torch.allclose(leaky[second:second_end], alone, atol=1e-3)
