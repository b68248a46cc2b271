"""FitNet feature KD: the student's BEV features, through a small adapter, imitate the teacher's (MSE).

The features are DetectorOutput.bev_features, the 2D backbone's output (B, C, H, W) that feeds the head.
The adapter (a 1x1 or 3x3 conv, optionally followed by BatchNorm) maps the student's C_s channels to the
teacher's C_t; it is trained with the student and thrown away after training. When the two maps differ in
size (another voxel size), the teacher's map is resized to the student's (bilinear, align_corners=False, as
logit KD's resize_map).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .logit import resize_map
from .recipe import FitNetConfig


class FeatureAdapter(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H, W): conv (kernel 1 or 3, 'same' padding) [+ BatchNorm2d]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, norm: bool = True):
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f"FeatureAdapter: kernel_size must be 1 or 3 (got {kernel_size})")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def make_adapter(student_channels: int, teacher_channels: int, kernel_size: int, norm: bool,
                 always: bool = False) -> Optional[FeatureAdapter]:
    """An adapter when the channel counts differ (or ``always``), else None (features compared directly)."""
    if student_channels == teacher_channels and not always:
        return None
    return FeatureAdapter(student_channels, teacher_channels, kernel_size, norm)


def fitnet_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor,
                adapter: Optional[nn.Module] = None) -> torch.Tensor:
    """Mean squared error over all elements after adapting the student and resizing the teacher.

    student_feat (B, C_s, H, W); teacher_feat (B, C_t, H', W'); adapter maps C_s -> C_t (None when C_s == C_t).
    """
    s = adapter(student_feat) if adapter is not None else student_feat
    if s.shape[:2] != teacher_feat.shape[:2]:
        raise ValueError(f"fitnet_loss: adapted student features {tuple(s.shape)} and teacher features "
                         f"{tuple(teacher_feat.shape)} differ in batch or channels: give an adapter "
                         f"{student_feat.shape[1]} -> {teacher_feat.shape[1]}")
    t = resize_map(teacher_feat.float(), s.shape[-2:])
    return F.mse_loss(s.float(), t)


class FitNetKD(nn.Module):
    """Holds the adapter; forward(student_bev, teacher_bev) -> weighted FitNet loss (scalar)."""

    def __init__(self, cfg: FitNetConfig, student_channels: int, teacher_channels: int):
        super().__init__()
        self.weight = cfg.weight
        self.adapter = make_adapter(student_channels, teacher_channels, cfg.adapter_kernel, cfg.adapter_norm,
                                    always=cfg.adapter == "always")

    def forward(self, student_bev: torch.Tensor, teacher_bev: torch.Tensor) -> torch.Tensor:
        return self.weight * fitnet_loss(student_bev, teacher_bev, self.adapter)
