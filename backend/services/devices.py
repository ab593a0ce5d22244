"""Training devices: the slots the queue dispatches jobs to, and what the machine can do (CUDA, bf16, 4-bit)."""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache

from backend.config import get_settings
from backend.i18n import N_

log = logging.getLogger(__name__)

CPU = "cpu"


def _nvml_gpu_count() -> int | None:
    """GPUs that NVML sees, without importing torch; None when NVML is not there."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


@lru_cache
def cuda_device_count() -> int:
    """GPUs found through NVML, else through torch (imported only when NVML is missing)."""
    count = _nvml_gpu_count()
    if count is not None:
        return count
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def training_slots() -> list[str]:
    """The devices jobs run on, one job each: `TRAINING_DEVICES` or what was found."""
    setting = get_settings().training_devices.strip().lower()
    if setting == "none":
        return []
    if setting == CPU:
        return [CPU]
    if setting in ("", "auto"):
        count = cuda_device_count()
        return [f"cuda:{index}" for index in range(count)] or [CPU]
    return [f"cuda:{part.strip()}" for part in setting.split(",") if part.strip()]


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def qlora_unavailable_reason() -> str | None:
    """Why QLoRA cannot run here (a message id), or None when it can: 4-bit needs CUDA and bitsandbytes."""
    if cuda_device_count() == 0:
        return N_("QLoRA needs a CUDA GPU and this machine has none: choose LoRA or full fine-tuning")
    if not bitsandbytes_installed():
        return N_("QLoRA needs the bitsandbytes package, which is not installed: pip install bitsandbytes")
    return None
