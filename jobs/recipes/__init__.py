"""Training recipes: how a base model is prepared for each method (`lora`, `qlora`, `full`), how data is tokenized,
packed and collated (`data`, `collate`), and the run itself (`train`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.recipes import full, lora, qlora

Prepare = Callable[..., Any]

METHODS: dict[str, Prepare] = {"lora": lora.prepare, "qlora": qlora.prepare, "full": full.prepare}


def prepare_model(method: str, path: Path, params: dict[str, Any], *, dtype: Any) -> Any:
    """The model for `method`, ready to train: base weights loaded, adapters added, only what learns trainable."""
    return METHODS[method](path, params, dtype=dtype)
