"""LoRA: low-rank adapters on the base model's linear layers; the base stays frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model

from jobs.recipes.base import load_base


def lora_config(params: dict[str, Any]) -> LoraConfig:
    targets = params.get("target_modules") or "all-linear"
    return LoraConfig(r=int(params["lora_rank"]), lora_alpha=params["lora_alpha"],
                      lora_dropout=float(params["lora_dropout"]), target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")


def prepare(path: Path, params: dict[str, Any], *, dtype: Any) -> Any:
    model = load_base(path, dtype=dtype)
    if params.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return get_peft_model(model, lora_config(params))


def merge_adapter(base: Path, adapter: Path, target: Path, *, dtype: Any = None) -> Path:
    """The base model with the adapter folded into its weights, saved as a plain model (with the tokenizer) in
    `target`: what a server that knows nothing of adapters can load."""
    from transformers import AutoTokenizer

    model = PeftModel.from_pretrained(load_base(base, dtype=dtype or "auto"), adapter)
    merged = model.merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(target)
    AutoTokenizer.from_pretrained(adapter if (adapter / "tokenizer_config.json").exists() else base).save_pretrained(
        target)
    return target
