"""Batches: padding-free packing (packed bins, position ids restarting per example) or padded examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from jobs.recipes.data import IGNORE, Example


@dataclass
class PackedCollator:
    """Bins (from `data.pack`), no attention mask: transformers finds the examples from the restarting `position_ids`
    and keeps them apart.

    By default each bin is its own row (shape [bins, longest bin]): sdpa and eager build a block-diagonal causal mask
    per row and still compute attention over the whole row, so a row is kept to one bin (`max_length` tokens) rather
    than the batch (that would cost `batch_size` × the attention work and a (batch_size · max_length)² mask). A shorter
    bin is filled up with padding that is a sequence of its own (positions restarting at 0, labels ignored): no real
    token attends to it, and it learns nothing.

    `flatten` puts the whole batch in one row of [1, tokens] with nothing padded: flash-attn's variable-length
    kernels, which transformers uses only for a single packed row, cost attention per example."""

    pad_token_id: int = 0
    flatten: bool = False

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        keys = ("input_ids", "labels", "position_ids")
        if self.flatten:
            row: dict[str, list[int]] = {key: [] for key in keys}
            for feature in features:
                for key in keys:
                    row[key] += feature[key]
            return {key: torch.tensor([values], dtype=torch.long) for key, values in row.items()}
        longest = max(len(feature["input_ids"]) for feature in features)
        rows: dict[str, list[list[int]]] = {key: [] for key in keys}
        for feature in features:
            pad = longest - len(feature["input_ids"])
            rows["input_ids"].append(feature["input_ids"] + [self.pad_token_id] * pad)
            rows["labels"].append(feature["labels"] + [IGNORE] * pad)
            rows["position_ids"].append(feature["position_ids"] + list(range(pad)))
        return {key: torch.tensor(values, dtype=torch.long) for key, values in rows.items()}


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
