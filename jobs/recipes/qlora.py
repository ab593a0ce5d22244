"""QLoRA: the base model quantized to 4-bit NF4 by bitsandbytes (CUDA only), LoRA adapters trained on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import get_peft_model, prepare_model_for_kbit_training

from jobs.recipes.base import load_base
from jobs.recipes.lora import lora_config


def prepare(path: Path, params: dict[str, Any], *, dtype: Any) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.float16)
    model = load_base(path, dtype=dtype, quantization_config=quantization, device_map={"": 0})
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=bool(params.get("gradient_checkpointing")),
        gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, lora_config(params))
