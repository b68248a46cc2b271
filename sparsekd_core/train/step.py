"""One optimiser step: forward (under autocast when mixed precision is on: train/precision.py), backward through
the GradScaler (enabled for fp16 only), gradient clipping on the unscaled gradients, optimiser and schedule step."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .optim import clip_gradients
from .precision import autocast


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the terms and what to try."""


@dataclass
class StepResult:
    """Loss terms (floats, this process's batch), the gradient norm before clipping, and whether the
    optimiser actually stepped (AMP skips steps whose gradients overflowed)."""

    losses: dict[str, float]
    grad_norm: float
    stepped: bool


def train_step(objective: nn.Module, points: list[torch.Tensor], gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
               optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler | None,
               scaler: torch.amp.GradScaler, params: list[nn.Parameter], grad_clip: float,
               amp_dtype: torch.dtype | None = None) -> StepResult:
    """Run one training step of ``objective`` (a module returning a dict of losses with "total"); ``amp_dtype``:
    the autocast dtype (precision.autocast_dtype), None for fp32."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(gt_boxes.device.type, amp_dtype):
        losses = objective(points, gt_boxes, gt_labels)
    if "total" not in losses:
        raise KeyError(f"the training objective returned {sorted(losses)} without a 'total' loss")
    total = losses["total"]
    values = {k: float(v.detach()) for k, v in losses.items()}
    if not math.isfinite(values["total"]) and not scaler.is_enabled():
        raise NonFiniteLossError(
            f"training loss is not finite ({values}). Usual causes: a learning rate too high for this batch size "
            "(lower train.lr), boxes with zero or negative size in the labels, or points with NaN coordinates.")
    scaler.scale(total).backward()
    scaler.unscale_(optimizer)
    grad_norm = float(clip_gradients(params, grad_clip))
    scale_before = scaler.get_scale() if scaler.is_enabled() else 1.0
    scaler.step(optimizer)
    scaler.update()
    stepped = not scaler.is_enabled() or scaler.get_scale() >= scale_before
    if scheduler is not None:
        scheduler.step()
    return StepResult(values, grad_norm, stepped)
