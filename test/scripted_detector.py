"""A real Detector whose CenterHead is replaced by one that reports scripted scores.

Everything a threshold or a frame transform passes through is the real code: point checks and
cropping, voxelisation, the backbones, map decoding, score thresholds, rotated NMS and Detections.
Only the head's maps are scripted: one peak per listed class, at a chosen BEV cell, with a chosen
probability; every other cell scores ~0. Boxes are 4 x 2 x 1.5 m, yaw 0, centre z -1 m.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from sparsekd_core.checkpoint import record_operating_thresholds, write_untrained_checkpoint
from sparsekd_core.inference import Detector
from sparsekd_core.models.center_head import HeadOutput

MODEL = "cp_pillar_v0.64_sim"  # 48 x 48 BEV cells of 0.64 m at stride 1 over x 0..30.72, y -15.36..15.36
BOX_SIZE = (4.0, 2.0, 1.5)
BOX_Z = -1.0


class ScriptedHead(nn.Module):
    """peaks: class index -> (row, col, probability). ``on_forward`` runs inside the forward pass (to
    change something while a frame is in flight)."""

    def __init__(self, num_classes: int, peaks: dict[int, tuple[int, int, float]],
                 on_forward: Callable[[], None] | None = None):
        super().__init__()
        self.num_classes, self.peaks, self.on_forward = num_classes, peaks, on_forward

    def forward(self, bev: torch.Tensor) -> list[HeadOutput]:
        b, _, h, w = bev.shape
        heat = torch.full((b, self.num_classes, h, w), -30.0)
        for label, (row, col, score) in self.peaks.items():
            heat[:, label, row, col] = math.log(score / (1.0 - score))
        if self.on_forward is not None:
            self.on_forward()
        ones = torch.ones(b, 1, h, w)
        return [HeadOutput(  # one task head holding every class
            heatmap=heat,
            center=torch.zeros(b, 2, h, w),
            center_z=ones * BOX_Z,
            dim=torch.cat([ones * math.log(s) for s in BOX_SIZE], dim=1),
            rot=torch.cat([ones, ones * 0.0], dim=1),
        )]


def scripted_detector(tmp_dir: Path, scores: dict[str, float], on_forward=None,
                      operating: dict[str, float] | None = None) -> Detector:
    """A Detector of MODEL (random weights) whose head reports ``scores`` (class name -> probability),
    each class at its own cell 8 cells (5 m) apart, so NMS keeps them all. ``operating``: per-class thresholds
    recorded in its checkpoint as the model's operating point (the real recording and loading path)."""
    path = write_untrained_checkpoint(MODEL, tmp_dir / f"{MODEL}.pth")
    if operating is not None:
        record_operating_thresholds(path, path, operating, "scripted for a test")
    det = Detector.from_checkpoint(path, "cpu")
    peaks = {det.class_names.index(name): (8 + 8 * i, 10 + 8 * i, p) for i, (name, p) in enumerate(scores.items())}
    det.model.head = ScriptedHead(len(det.class_names), peaks, on_forward)
    return det


def cell_centre(det: Detector, row: int, col: int) -> tuple[float, float]:
    """The x, y (m) of a BEV cell's corner, where a box decoded with zero offset sits."""
    vx, vy = det.cfg.voxelization.voxel_size[:2]
    stride = det.cfg.head.feature_stride
    r = det.cfg.voxelization.point_cloud_range
    return col * stride * vx + r[0], row * stride * vy + r[1]


def some_points(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Points inside MODEL's range (x y z intensity), so the frame is not empty."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(1, 29, n), rng.uniform(-14, 14, n), rng.uniform(-2, 0.5, n),
                            rng.uniform(0, 1, n)]).astype(np.float32)
