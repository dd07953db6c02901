"""Device and precision choice: what ``precision="auto"`` means on each kind of machine, and clear
errors for names that cannot work here."""
from __future__ import annotations

import pytest
import torch

from cyclegan_edu import devices
from cyclegan_edu.config import get_preset
from cyclegan_edu.models import CycleGAN

CPU = torch.device("cpu")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_precision_on_the_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert devices.autocast_dtype("auto", CPU) is expected


def test_explicit_precisions_on_the_cpu(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.autocast_dtype("fp32", CPU) is None
    assert devices.autocast_dtype("bf16", CPU) is torch.bfloat16     # asked for: emulated, slow, allowed
    with pytest.raises(ValueError, match="fp16.*needs CUDA"):
        devices.autocast_dtype("fp16", CPU)
    with pytest.raises(ValueError, match="choose auto, fp32, bf16 or fp16"):
        devices.autocast_dtype("fp8", CPU)


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path):
    def with_flags(text):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor : 0\nflags\t\t: fpu sse2 {text}\n")
        monkeypatch.setattr(devices, "Path", lambda _: path)
        return devices.cpu_has_native_bf16()
    assert with_flags("avx2 avx512f avx512_bf16") is True
    assert with_flags("avx2 amx_tile amx_bf16") is True
    assert with_flags("avx2 fma") is False


def test_model_on_the_cpu_uses_the_chosen_dtype(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    model = CycleGAN(get_preset("ci", device="cpu")).setup()
    assert model.amp_dtype is torch.bfloat16
    model = CycleGAN(get_preset("ci", device="cpu", precision="fp32")).setup()
    assert model.amp_dtype is None


def test_unavailable_devices_are_clear_errors():
    with pytest.raises(ValueError, match="not a device name"):
        devices.select_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            devices.select_device("cuda")


@pytest.fixture
def cuda_capability(monkeypatch):
    """Pretend the CUDA card(s) have a given compute capability; records the devices asked about."""
    asked = []

    def pretend(capability):
        def get_device_capability(device=None):
            asked.append(device)
            return capability
        monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)   # counts emulation
        return asked
    return pretend


@pytest.mark.parametrize("capability, expected", [
    ((7, 5), torch.float16),      # T4 (Colab): no bf16 tensor cores; fp16 with GradScaler
    ((7, 0), torch.float16),      # V100
    ((8, 0), torch.bfloat16),     # A100
    ((8, 6), torch.bfloat16),     # RTX 30xx
    ((9, 0), torch.bfloat16),     # H100
])
def test_auto_precision_on_cuda_follows_the_compute_capability(cuda_capability, capability, expected):
    asked = cuda_capability(capability)
    assert devices.autocast_dtype("auto", torch.device("cuda:1")) is expected
    assert asked == [torch.device("cuda:1")]                 # the card the run uses, not the current one


def test_bf16_on_a_cuda_card_below_8_is_one_clear_error(cuda_capability):
    cuda_capability((7, 5))
    with pytest.raises(ValueError) as error:
        devices.autocast_dtype("bf16", torch.device("cuda"))
    message = str(error.value)
    assert "precision='bf16'" in message and "7.5" in message and "'fp16' or 'auto'" in message
    assert devices.autocast_dtype("fp16", torch.device("cuda")) is torch.float16
    cuda_capability((8, 0))
    assert devices.autocast_dtype("bf16", torch.device("cuda")) is torch.bfloat16
