"""ROI-pooled feature imitation ("Mimic"): student and teacher BEV features sampled inside boxes, MSE.

For each region of interest (a rotated box in metres: ground truth, teacher or student predictions), a
grid x grid lattice of points is laid over its BEV footprint (cell centres of the box divided into
grid x grid cells, rotated by its yaw). Both BEV maps are sampled there with F.grid_sample (bilinear), each
through its own model's geometry, so a teacher and a student with different voxel sizes or strides are
compared at the same places in metres without resizing either map. Student features pass an adapter first
when the channel counts differ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .feature import make_adapter
from .recipe import MimicConfig


@dataclass(frozen=True)
class BEVGeometry:
    """Where a BEV map lies: cell (0, 0)'s lower corner (x_min, y_min) and the cell size, metres.

    Row index grows with y, column index with x (the maps of BEVDetector).
    """

    x_min: float
    y_min: float
    cell_x: float
    cell_y: float

    @classmethod
    def from_model_config(cls, cfg: ModelConfig) -> "BEVGeometry":
        v, r, s = cfg.voxelization.voxel_size, cfg.voxelization.point_cloud_range, cfg.head.feature_stride
        return cls(float(r[0]), float(r[1]), float(v[0]) * s, float(v[1]) * s)


def roi_grid_points(boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """boxes (R, 7) -> (R, grid, grid, 2) x, y in metres of the cell centres of each box's BEV footprint.

    Index [r, i, j] is row i along the box's own y axis and column j along its own x axis.
    """
    steps = (torch.arange(grid, device=boxes.device, dtype=boxes.dtype) + 0.5) / grid - 0.5  # (G,) in (-0.5, 0.5)
    u = steps[None, None, :] * boxes[:, 3, None, None]  # along the box's x (length)
    v = steps[None, :, None] * boxes[:, 4, None, None]  # along the box's y (width)
    cos, sin = torch.cos(boxes[:, 6])[:, None, None], torch.sin(boxes[:, 6])[:, None, None]
    x = boxes[:, 0, None, None] + u * cos - v * sin
    y = boxes[:, 1, None, None] + u * sin + v * cos
    return torch.stack([x, y], dim=-1)


def metres_to_grid_coords(xy: torch.Tensor, geom: BEVGeometry, hw: Sequence[int]) -> torch.Tensor:
    """(..., 2) metres -> (..., 2) grid_sample coordinates in [-1, 1] for a map of size hw (align_corners=False)."""
    h, w = int(hw[0]), int(hw[1])
    gx = (xy[..., 0] - geom.x_min) / (geom.cell_x * w) * 2 - 1
    gy = (xy[..., 1] - geom.y_min) / (geom.cell_y * h) * 2 - 1
    return torch.stack([gx, gy], dim=-1)


def roi_pool_bev(feature_map: torch.Tensor, rois: Sequence[torch.Tensor], geom: BEVGeometry, grid: int) -> torch.Tensor:
    """Sample a grid x grid lattice inside every ROI.

    feature_map (B, C, H, W); rois: B tensors (R_b, 7) (boxes, metres) -> (sum R_b, C, grid, grid).
    Points outside the map read zeros.
    """
    b, c, h, w = feature_map.shape
    if len(rois) != b:
        raise ValueError(f"roi_pool_bev: {len(rois)} ROI lists for a batch of {b}")
    pooled = []
    for i, boxes in enumerate(rois):
        if boxes.shape[0] == 0:
            continue
        pts = roi_grid_points(boxes[:, :7].to(feature_map.device, torch.float32), grid)  # (R, G, G, 2)
        coords = metres_to_grid_coords(pts, geom, (h, w)).reshape(1, -1, grid, 2)  # (1, R*G, G, 2)
        out = F.grid_sample(feature_map[i:i + 1].float(), coords, mode="bilinear", padding_mode="zeros",
                            align_corners=False)  # (1, C, R*G, G)
        pooled.append(out.view(c, -1, grid, grid).permute(1, 0, 2, 3))
    if not pooled:
        return feature_map.new_zeros((0, c, grid, grid), dtype=torch.float32)
    return torch.cat(pooled)


def mimic_loss(student_bev: torch.Tensor, teacher_bev: torch.Tensor, rois: Sequence[torch.Tensor],
               student_geom: BEVGeometry, teacher_geom: BEVGeometry, grid: int = 7,
               adapter: Optional[nn.Module] = None) -> torch.Tensor:
    """MSE between ROI-pooled (adapted) student and teacher features, averaged over ROIs, channels and grid cells.

    With no ROI in the batch the loss is 0 (still connected to the student's graph, so every rank of a
    distributed run sees the same parameters used).
    """
    s = adapter(student_bev) if adapter is not None else student_bev
    if s.shape[1] != teacher_bev.shape[1]:
        raise ValueError(f"mimic_loss: student features have {s.shape[1]} channels, "
                         f"the teacher's {teacher_bev.shape[1]}: "
                         "give an adapter")
    s_pool = roi_pool_bev(s, rois, student_geom, grid)
    if s_pool.shape[0] == 0:
        return s.sum() * 0.0
    t_pool = roi_pool_bev(teacher_bev, rois, teacher_geom, grid)
    return F.mse_loss(s_pool, t_pool)


class MimicKD(nn.Module):
    """Holds the adapter and both geometries; forward(student_bev, teacher_bev, rois) -> weighted loss."""

    def __init__(self, cfg: MimicConfig, student_cfg: ModelConfig, teacher_cfg: ModelConfig,
                 student_channels: int, teacher_channels: int):
        super().__init__()
        self.cfg = cfg
        self.student_geom = BEVGeometry.from_model_config(student_cfg)
        self.teacher_geom = BEVGeometry.from_model_config(teacher_cfg)
        self.adapter = make_adapter(student_channels, teacher_channels, cfg.adapter_kernel, cfg.adapter_norm)

    def select_rois(self, boxes: Sequence[torch.Tensor],
                    scores: Optional[Sequence[torch.Tensor]] = None) -> list[torch.Tensor]:
        """Keep at most max_rois per sample: the highest scores (predictions) or the first ones (ground truth)."""
        out = []
        for i, bx in enumerate(boxes):
            if scores is not None:
                keep = scores[i] >= self.cfg.score_threshold
                bx, sc = bx[keep], scores[i][keep]
                bx = bx[sc.argsort(descending=True)]
            out.append(bx[: self.cfg.max_rois, :7].detach())
        return out

    def forward(self, student_bev: torch.Tensor, teacher_bev: torch.Tensor,
                rois: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.cfg.weight * mimic_loss(student_bev, teacher_bev, rois, self.student_geom, self.teacher_geom,
                                            self.cfg.grid, self.adapter)
