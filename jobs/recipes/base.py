"""Loading a base model for training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM


def load_base(path: Path, *, dtype: Any, **kwargs: Any) -> Any:
    # sdpa: with packed rows and no attention mask, transformers builds the block-diagonal causal mask from the
    # position ids (no flash-attn needed). No KV cache while training: it would also turn that detection off.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa", **kwargs)
    model.config.use_cache = False
    return model


def trainable_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
