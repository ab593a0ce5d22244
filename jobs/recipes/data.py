"""Training data: rows → token ids with labels (loss on the assistant's tokens only for chat rows), a train/eval
split, and padding-free packing into bins of at most `max_length` tokens.

A chat row is rendered with the base model's chat template; the characters that belong to each assistant turn are
found by rendering the conversation up to that turn (with the generation prompt) and through it, and the tokens
whose characters fall inside are the ones learned. That works for any template that renders prefixes as prefixes of
the whole, which chat templates do; a row whose template does not is learned whole and counted.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.services.datasets import iter_rows, split_of

log = logging.getLogger(__name__)

IGNORE = -100

# For base models without a chat template (a pre-trained model, not an instruct one): ChatML, as Qwen uses.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class DataReport:
    """What tokenizing a dataset found, for the job's log."""

    rows: int = 0
    train: int = 0
    eval: int = 0
    truncated: int = 0
    without_targets: int = 0  # nothing to learn (no assistant turn, or it was cut off): left out
    whole_rows: int = 0  # template not incremental: all tokens learned
    tokens: int = 0
    notes: list[str] = field(default_factory=list)


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give a tokenizer without a chat template ChatML; True when it had one."""
    if getattr(tokenizer, "chat_template", None):
        return True
    tokenizer.chat_template = CHATML_TEMPLATE
    return False


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return str(text)


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]] | None]:
    """The rendered conversation and the character spans of its assistant turns (None: the template does not render
    prefixes as prefixes, so the turns cannot be told apart)."""
    text = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1])
        if not through.startswith(before) or not text.startswith(through):
            return text, None
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_chat(tokenizer: Any, messages: list[dict[str, str]], *, max_length: int) -> tuple[Example, bool]:
    """Token ids with labels only on the assistant's tokens; the flag says the row had to be learned whole."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                        max_length=max_length)
    ids: list[int] = list(encoded["input_ids"])
    if spans is None:
        return Example(ids, list(ids)), True
    labels = [IGNORE] * len(ids)
    for position, (start, _end) in enumerate(encoded["offset_mapping"]):
        if any(low <= start < high for low, high in spans):
            labels[position] = ids[position]
    return Example(ids, labels), False


def tokenize_text(tokenizer: Any, text: str, *, max_length: int) -> Example:
    """Plain text (continued pre-training): every token learned, the end-of-sequence token appended."""
    ids: list[int] = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    ids = ids[:max_length]
    return Example(ids, list(ids))


def tokenize_rows(tokenizer: Any, rows: Iterable[tuple[int, dict[str, Any]]], *, max_length: int,
                  report: DataReport) -> Iterator[tuple[int, Example]]:
    for index, row in rows:
        report.rows += 1
        if "messages" in row:
            example, whole = tokenize_chat(tokenizer, row["messages"], max_length=max_length)
            report.whole_rows += whole
        else:
            example = tokenize_text(tokenizer, str(row.get("text", "")), max_length=max_length)
        if len(example) >= max_length:
            report.truncated += 1
        # The first token is never predicted (nothing comes before it), so it does not count as a target.
        if all(label == IGNORE for label in example.labels[1:]):
            report.without_targets += 1
            continue
        report.tokens += len(example)
        yield index, example


def load_examples(path: Path, tokenizer: Any, *, max_length: int, eval_ratio: float, seed: int
                  ) -> tuple[list[Example], list[Example], DataReport]:
    """The train and eval examples of a dataset version file, split by `split_of` (the same split every time)."""
    report = DataReport()
    train: list[Example] = []
    evaluation: list[Example] = []
    for index, example in tokenize_rows(tokenizer, enumerate(iter_rows(path)), max_length=max_length, report=report):
        side = split_of(index, validation_ratio=eval_ratio, seed=seed)
        (evaluation if side == "validation" else train).append(example)
    report.train, report.eval = len(train), len(evaluation)
    return train, evaluation, report


# --- packing ------------------------------------------------------------------------------------------------------


def pack(examples: list[Example], *, capacity: int) -> list[dict[str, list[int]]]:
    """Best-fit decreasing: examples put in as few bins of at most `capacity` tokens as it can, each bin one row of
    `input_ids`, `labels` and `position_ids` that restart at 0 for every example, so that (with no attention mask)
    the model's block-diagonal causal mask keeps each example to itself. The first label of every example is
    ignored: no token may learn to predict the next example's start."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for index in order:
        size = min(len(examples[index]), capacity)
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            room, chosen = free.pop(at)
            bins[chosen].append(index)
            bisect.insort(free, (room - size, chosen))
        else:
            bins.append([index])
            bisect.insort(free, (capacity - size, len(bins) - 1))
    return [flatten([examples[i] for i in members], capacity=capacity) for members in bins]


def flatten(examples: list[Example], *, capacity: int | None = None) -> dict[str, list[int]]:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for example in examples:
        ids = example.input_ids[:capacity] if capacity else example.input_ids
        input_ids += ids
        labels += [IGNORE, *example.labels[1 : len(ids)]]
        position_ids += range(len(ids))
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def padding_waste(examples: list[Example], *, batch_size: int) -> float:
    """The share of a padded batch that would be padding (for the log: what packing saves)."""
    if not examples:
        return 0.0
    real = padded = 0
    for start in range(0, len(examples), batch_size):
        lengths = [len(e) for e in examples[start : start + batch_size]]
        real += sum(lengths)
        padded += max(lengths) * len(lengths)
    return 1 - real / padded
