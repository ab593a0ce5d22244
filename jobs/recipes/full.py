"""Full fine-tuning: every weight of the base model learns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.recipes.base import load_base


def prepare(path: Path, params: dict[str, Any], *, dtype: Any) -> Any:
    model = load_base(path, dtype=dtype)
    if params.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model
