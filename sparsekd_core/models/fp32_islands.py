"""Parts of a detector that stay fp32 under the CPU's bf16 autocast (training's mixed precision, train/precision.py).

- spconv's sparse 3D backbone: spconv has no bf16 kernels.

The pillar PointNet runs in bf16: it was an island until its matmuls met a new shape (pillar count) every step
and oneDNN's primitive cache grew the process by ~15 MB a step; models/vfe.py now rounds the pillar count up to a
bucket, so few shapes occur (in an A/B of 100 cp_pillar_sim360 steps on 2 threads, 0.65 s a step against 0.85 with
the PointNet in fp32, peak memory 1.35 GB against 1.47).
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def in_fp32_under_cpu_autocast(fn: Callable[..., T], *tensors: torch.Tensor, **kwargs) -> T:
    """``fn(*tensors, **kwargs)``, with CPU autocast switched off and floating tensors cast to fp32 when it is on;
    a plain call otherwise (CUDA autocast and inference are untouched)."""
    if not torch.is_autocast_enabled("cpu"):
        return fn(*tensors, **kwargs)
    with torch.autocast("cpu", enabled=False):
        return fn(*(t.float() if t.is_floating_point() else t for t in tensors), **kwargs)
