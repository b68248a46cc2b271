"""The reference optimiser: OpenPCDet's ``adam_onecycle``, built from torch's own AdamW and OneCycleLR.

What OpenPCDet does (pcdet/utils/optimization, from second.pytorch / fastai), and how it maps here:

- Adam with betas (0.9, 0.99) and *decoupled* ("true") weight decay: before each Adam step every
  trainable parameter, BatchNorm ones included (``bn_wd``), is multiplied by ``1 - lr * wd``, and Adam itself
  runs without L2. That is exactly ``torch.optim.AdamW``'s update, so we use AdamW (no hand-written wrapper).
- One-cycle schedule per iteration: lr rises from ``lr / div_factor`` to ``lr`` over the first
  ``pct_start`` of all iterations along a cosine, then falls to ``lr / div_factor / 1e4``; beta1 (Adam's
  "momentum") moves the other way, 0.95 -> 0.85 -> 0.95. ``torch.optim.lr_scheduler.OneCycleLR`` with
  ``cycle_momentum=True`` does both (it drives ``betas[0]`` for Adam-family optimisers), with
  ``final_div_factor=1e4`` as the reference.
- Gradients clipped to a global L2 norm of 10 before the step (``clip_grad_norm_``).

The defaults come from ``ModelConfig.train`` (``TrainConfig``: lr 0.003, weight_decay 0.01, moms
[0.95, 0.85], pct_start 0.4, div_factor 10, grad_clip 10).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch.optim.lr_scheduler import OneCycleLR

from ..config import TrainConfig

#: Adam's second-moment decay in the reference (OpenPCDet builds ``optim.Adam(betas=(0.9, 0.99))``).
ADAM_BETA2 = 0.99
#: The reference ends the cycle at ``lr / div_factor / 1e4``.
FINAL_DIV_FACTOR = 1e4


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters that need gradients, in registration order (a frozen teacher contributes none)."""
    return [p for p in module.parameters() if p.requires_grad]


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the reference's decoupled weight decay (applied to every parameter, BN included).

    The initial lr and beta1 are placeholders: :func:`build_scheduler` sets both before the first step.
    """
    params = list(params)
    if not params:
        raise ValueError("build_optimizer: no trainable parameters (is every parameter frozen?)")
    if cfg.lr <= 0 or cfg.weight_decay < 0:
        raise ValueError(f"train.lr must be > 0 and train.weight_decay >= 0 (got lr {cfg.lr}, "
                         f"weight_decay {cfg.weight_decay})")
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(max(cfg.moms), ADAM_BETA2),
                             weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> OneCycleLR:
    """One-cycle lr and beta1 over ``total_steps`` optimiser steps (call ``scheduler.step()`` after each).

    Raises ValueError with the fix when the config cannot make a schedule.
    """
    if total_steps < 2:
        # OneCycleLR needs both phases to hold at least one step.
        raise ValueError(f"the one-cycle schedule needs at least 2 optimiser steps (got {total_steps}): "
                         "train for more epochs or use a larger dataset / smaller batch size")
    if not 0.0 < cfg.pct_start < 1.0:
        raise ValueError(f"train.pct_start must lie in (0, 1) (got {cfg.pct_start})")
    if len(cfg.moms) != 2:
        raise ValueError(f"train.moms must be [high, low] beta1 values, e.g. [0.95, 0.85] (got {cfg.moms})")
    high, low = max(cfg.moms), min(cfg.moms)
    return OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=int(total_steps), pct_start=cfg.pct_start,
                      anneal_strategy="cos", cycle_momentum=True, base_momentum=low, max_momentum=high,
                      div_factor=cfg.div_factor, final_div_factor=FINAL_DIV_FACTOR)


def clip_gradients(params: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip the global gradient L2 norm to ``max_norm`` (<= 0: no clipping); returns the norm before clipping."""
    params = [p for p in params if p.grad is not None]
    if max_norm <= 0:
        if not params:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach()) for p in params]))
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def current_lr_and_beta1(optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """The (lr, beta1) of the first parameter group, for logging."""
    group = optimizer.param_groups[0]
    return float(group["lr"]), float(group["betas"][0])
