"""Parts of a detector that stay fp32 under the CPU's bf16 autocast (training's mixed precision, train/precision.py).

- spconv's sparse 3D backbone: spconv has no bf16 kernels.
- The pillar encoder (PointNet over each pillar's points): its input has a different number of pillars every step,
  and each new shape makes oneDNN build and cache a new bf16 matmul primitive; that cache grew the training process
  by ~15 MB a step on a cp_pillar_sim360 run (1.7 GB after 40 steps, 2.6 GB after 100; fp32 1.3 GB flat). The
  convolutions behind it see fixed shapes, and they are where bf16 pays.
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
