"""Loading a base model for training."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM


def attention_implementation() -> str:
    """flash-attn's variable-length kernels where they can run (CUDA, the package installed): a packed row then costs
    attention per sample, not per row. Otherwise sdpa: with packed rows and no attention mask, transformers builds the
    block-diagonal causal mask from the position ids (correct everywhere, but attention over the whole row)."""
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_base(path: Path, *, dtype: Any, **kwargs: Any) -> Any:
    # No KV cache while training: it would also turn off the detection of packed samples from the position ids.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attention_implementation(),
                                                 **kwargs)
    model.config.use_cache = False
    return model


def trainable_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
