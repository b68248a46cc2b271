"""Mixed precision for training: which autocast dtype a device gets, and the autocast context for it.

On CUDA, AMP is fp16 autocast with a GradScaler. On a CPU with native bfloat16
arithmetic (AVX-512 BF16 or AMX, as on recent EPYC and Xeon), AMP is bf16 autocast: oneDNN's bf16
convolutions run about twice as fast as fp32 ones, the weights, the optimiser and the losses stay fp32, and bf16's
exponent range needs no GradScaler. A CPU without native bf16 would emulate it (slower than fp32), so there AMP
is off. spconv's sparse backbone runs in fp32 under bf16 autocast (models/fp32_islands.py); the pillar PointNet
runs in bf16 on pillar counts rounded up to a bucket (models/vfe.py says why).
"""
from __future__ import annotations

import contextlib

import torch


def cpu_has_native_bf16() -> bool:
    """True on CPUs whose instruction set multiplies bfloat16 natively (AVX-512 BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype training on ``device`` uses when AMP is asked for: fp16 on CUDA, bf16 on a CPU with
    native bf16, ``None`` (fp32) otherwise or when ``amp`` is off."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """"fp16", "bf16" or "fp32", as summaries and benchmarks print it."""
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")


def autocast(device_type: str, dtype: torch.dtype | None):
    """The autocast context for ``dtype`` on ``device_type`` (a no-op context for fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def needs_grad_scaler(dtype: torch.dtype | None) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none."""
    return dtype == torch.float16
