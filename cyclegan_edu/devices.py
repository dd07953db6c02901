"""Where a run computes (CUDA, Apple's MPS or the CPU) and at what precision."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then the CPU; any other name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={name!r} but MPS is not available here; use --device cpu or auto")
    return device


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off.
    Elsewhere bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


BF16_CUDA_CAPABILITY = (8, 0)   # Ampere: the first NVIDIA cards with bf16 tensor cores


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32.

    ``"auto"`` means bf16 on CUDA cards of compute capability 8.0 or more (Ampere and newer), fp16
    with loss scaling on older cards (a T4, Colab's GPU, is 7.5), bf16 on CPUs that compute it
    natively (:func:`cpu_has_native_bf16`), and fp32 elsewhere (MPS, and CPUs that would emulate
    bf16 8-24x slower than fp32). The choice reads the card's capability, not
    ``torch.cuda.is_bf16_supported()``, which also counts emulation. On a 2-core Xeon with AMX, bf16
    made a CycleGAN step 1.3x (ci preset), 1.6x (cpu) and 2.7x (the paper's nets at 256 px) faster,
    and 600 steps on two ground-truth tasks scored as well as fp32 (``benchmarks/domain_pairs.py``).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and (capability := torch.cuda.get_device_capability(device)) < BF16_CUDA_CAPABILITY:
            raise ValueError(f"precision='bf16' on {device}, a card of compute capability {capability[0]}."
                             f"{capability[1]}: bf16 needs 8.0 or newer (older cards emulate it or lack bf16 "
                             "convolutions); use precision 'fp16' or 'auto'")
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision='fp16' needs CUDA; use 'bf16' or 'fp32' on this device")
        return torch.float16
    if precision == "auto":
        if device.type == "cuda":
            native_bf16 = torch.cuda.get_device_capability(device) >= BF16_CUDA_CAPABILITY
            return torch.bfloat16 if native_bf16 else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    raise ValueError(f"precision={precision!r}: choose auto, fp32, bf16 or fp16")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
