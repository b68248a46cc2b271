"""A box's support: how many LiDAR returns lie inside a predicted box.

A detector's heatmap reads context over metres, so a model trained on simulated streets can put a confident
pedestrian on a patch of a real sweep that holds one return or none (issue 11 measured such boxes among the false
ones on real KITTI sweeps). :class:`~sparsekd_core.inference.Detector` drops boxes holding fewer than
``head.post.min_points`` returns (0 keeps every box: CenterPoint's and OpenPCDet's behaviour, the default).

Hand-written in torch: the boxes are few after thresholds and NMS, so each box tests only the points whose x lies
within its bounding circle (one sort of the cloud per frame); the CUDA points-in-boxes ops of OpenPCDet and mmcv
need a compiled extension that this project does not ship.
"""
from __future__ import annotations

import torch

__all__ = ["points_per_box", "check_min_points"]


def check_min_points(value) -> int:
    """``value`` as a minimum number of returns per box (an int >= 0), or ValueError naming the fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"min_points must be an integer >= 0 (returns a box must hold; 0 keeps every box), "
                         f"got {value!r}")
    return value


def points_per_box(points_xyz: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(K,) long: the number of points (N, 3+) inside each box (K, 7) ``(x, y, z, dx, dy, dz, yaw)``, boundary
    included (the same test as geometry.boxes.points_in_boxes, on the points' device)."""
    counts = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
    if len(boxes) == 0 or len(points_xyz) == 0:
        return counts
    xyz = points_xyz[:, :3].float()
    boxes = boxes.float()
    xs, order = torch.sort(xyz[:, 0])
    xyz = xyz[order]
    radius = 0.5 * torch.hypot(boxes[:, 3], boxes[:, 4])
    first = torch.searchsorted(xs, boxes[:, 0] - radius).tolist()
    last = torch.searchsorted(xs, boxes[:, 0] + radius, right=True).tolist()
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    for k, (lo, hi) in enumerate(zip(first, last)):
        if hi <= lo:
            continue
        d = xyz[lo:hi] - boxes[k, :3]
        along = d[:, 0] * cos[k] + d[:, 1] * sin[k]
        across = -d[:, 0] * sin[k] + d[:, 1] * cos[k]
        half = boxes[k, 3:6] / 2
        inside = (along.abs() <= half[0]) & (across.abs() <= half[1]) & (d[:, 2].abs() <= half[2])
        counts[k] = inside.sum()
    return counts
