"""Batches: padding-free (packed bins flattened into one row, position ids restarting per example) or padded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from jobs.recipes.data import IGNORE, Example


@dataclass
class PackedCollator:
    """Bins (from `data.pack`) of a batch concatenated into a single row of shape [1, tokens], no attention mask:
    transformers finds the examples from the restarting `position_ids` and keeps them apart (sdpa and eager build a
    block-diagonal causal mask; flash attention reads the same boundaries). Nothing is padded."""

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
        for feature in features:
            for key in batch:
                batch[key] += feature[key]
        return {key: torch.tensor([values], dtype=torch.long) for key, values in batch.items()}


@dataclass
class PaddedCollator:
    """Examples padded on the right to the longest of the batch, with an attention mask (packing off)."""

    pad_token_id: int

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        examples = [f if isinstance(f, Example) else Example(f["input_ids"], f["labels"]) for f in features]
        longest = max(len(e) for e in examples)
        input_ids = [e.input_ids + [self.pad_token_id] * (longest - len(e)) for e in examples]
        labels = [e.labels + [IGNORE] * (longest - len(e)) for e in examples]
        mask = [[1] * len(e) + [0] * (longest - len(e)) for e in examples]
        return {"input_ids": torch.tensor(input_ids), "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask)}
