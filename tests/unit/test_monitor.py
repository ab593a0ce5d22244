"""The system monitor's GPU readings through NVML (a fake pynvml: no test may need a GPU) and their alerts."""

from __future__ import annotations

import sys
import types

import pytest

from backend.models.admin import AdminSettings, SystemSample
from backend.services import monitor


class NVMLError(Exception):
    pass


def fake_pynvml(*, init_fails: bool = False) -> types.ModuleType:
    """Two GPUs: the first answers everything (its name as bytes, as older drivers give it), the second neither
    utilisation nor temperature."""
    fake = types.ModuleType("pynvml")

    def init() -> None:
        if init_fails:
            raise NVMLError("driver not loaded")

    def utilization(handle: int) -> object:
        if handle == 1:
            raise NVMLError("not supported")
        return types.SimpleNamespace(gpu=42)

    def temperature(handle: int, sensor: int) -> float:
        if handle == 1:
            raise NVMLError("not supported")
        return 55

    fake.__dict__.update(
        NVMLError=NVMLError, NVML_TEMPERATURE_GPU=0, nvmlInit=init, nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetName=lambda handle: b"NVIDIA H200" if handle == 0 else "NVIDIA H100",
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(used=(70 if handle == 0 else 14) * 2**30,
                                                                     total=140 * 2**30),
        nvmlDeviceGetUtilizationRates=utilization, nvmlDeviceGetTemperature=temperature,
    )
    return fake


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setattr(monitor, "_nvml_ready", None)


def test_gpus_are_read_through_nvml(nvml: None) -> None:
    assert monitor.gpus() == [
        {"index": 0, "name": "NVIDIA H200", "utilization_percent": 42.0, "memory_used": 70 * 2**30,
         "memory_total": 140 * 2**30, "memory_percent": 50.0, "temperature_c": 55.0},
        {"index": 1, "name": "NVIDIA H100", "utilization_percent": None, "memory_used": 14 * 2**30,
         "memory_total": 140 * 2**30, "memory_percent": 10.0, "temperature_c": None},
    ]
    sample = SystemSample(cpu_percent=1, memory_percent=1, disk_percent=1, gpus=monitor.gpus())
    alerts = monitor.alerts_of(sample, AdminSettings(alert_gpu_memory_percent=50))
    assert [(a.metric, a.label, a.value) for a in alerts] == [("gpu_memory", "GPU 0", 50.0)]


def test_no_driver_or_no_pynvml_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_fails=True))
    monkeypatch.setattr(monitor, "_nvml_ready", None)
    assert monitor.gpus() == []
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: the import fails
    monkeypatch.setattr(monitor, "_nvml_ready", None)
    assert monitor.gpus() == []
