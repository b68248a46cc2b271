"""Axis-aligned BEV overlap of boxes snapped to their nearest axis: the cheap IoU anchor matching uses.

SECOND's target assigner (OpenPCDet's ``boxes3d_nearest_bev_iou``) does not compute rotated overlaps between
every anchor and every box: each box's footprint is replaced by the axis-aligned rectangle it is closest to
(its own extents when its heading is within 45 degrees of the x axis, swapped when nearer the y axis), and the
IoU of those rectangles decides which anchors are positive. Exact for anchors at 0 and pi/2, and O(N x M)
multiply-adds. Torch, any device.
"""
from __future__ import annotations

import math

import torch


def nearest_axis_rectangles(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 7+) boxes -> (N, 4) rectangles (xmin, ymin, xmax, ymax) of the nearest axis-aligned footprint."""
    # |yaw| folded into [0, pi/2]: under pi/4 the box lies along x, else along y
    folded = (boxes[:, 6] - torch.floor(boxes[:, 6] / math.pi + 0.5) * math.pi).abs()
    along_x = (folded < math.pi / 4)[:, None]
    extents = torch.where(along_x, boxes[:, 3:5], boxes[:, [4, 3]])
    return torch.cat([boxes[:, :2] - extents / 2, boxes[:, :2] + extents / 2], dim=1)


def rectangle_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4) and (M, 4) rectangles (xmin, ymin, xmax, ymax) -> (N, M) IoU; unions are floored at 1e-6."""
    wx = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    wy = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = wx * wy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)


def nearest_bev_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """(N, 7) and (M, 7) boxes -> (N, M) IoU of their nearest axis-aligned BEV footprints."""
    return rectangle_iou(nearest_axis_rectangles(boxes_a), nearest_axis_rectangles(boxes_b))
