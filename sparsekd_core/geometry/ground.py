"""The height of the ground under a LiDAR, from one sweep: a robust plane through the lowest points.

A detector expects the sensor where its training data had it (KITTI's HDL-64E 1.73 m above the road:
the road at z = -1.73 in the LiDAR frame). Comparing this estimate with the model's expectation tells
a user that the sensor is mounted higher, lower or tilted, and by how much.

Method: the points between ``min_range`` and ``max_range`` (horizontally) are binned into ``cell``-sized
x-y cells and each cell keeps its lowest point: on open ground that is the ground, under a car or
beside a wall the ground next to it, in a bush or under a canopy something higher. A plane
``z = a x + b y + c`` is then fitted to these minima by trimmed least squares: start level at the
median, keep the minima within a band around the plane, refit, and repeat with a tighter band; the
high outliers (vegetation, objects with no ground seen around them) drop out. A last fit through all
points within 0.1 m of that plane removes the downward bias of taking minima. ``c`` is the ground
height below the sensor; ``(a, b)`` its slope. Hand-written: a few numpy lines, where a RANSAC library
would add a dependency (open3d's plane segmentation is random and heavy to import in the node).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GroundEstimate", "estimate_ground"]


@dataclass(frozen=True)
class GroundEstimate:
    """height: ground z (m) below the sensor (x = y = 0) in the points' frame; tilt_deg: the plane's angle to
    the x-y plane; pitch_deg / roll_deg: its slope along x / y as angles; cells: minima used; inliers: of them."""

    height: float
    tilt_deg: float
    pitch_deg: float
    roll_deg: float
    cells: int
    inliers: int


def estimate_ground(points: np.ndarray, cell: float = 1.0, min_range: float = 3.0, max_range: float = 40.0,
                    min_cells: int = 20) -> GroundEstimate | None:
    """Ground plane of an (N, >= 3) sweep (x y z first); None when fewer than ``min_cells`` cells have points."""
    xyz = np.asarray(points, dtype=np.float64)[:, :3]
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    xyz = xyz[(r >= min_range) & (r <= max_range)]
    if len(xyz) == 0:
        return None
    ij = np.floor(xyz[:, :2] / cell).astype(np.int64)
    key = (ij[:, 0] - ij[:, 0].min()) * (ij[:, 1].max() - ij[:, 1].min() + 1) + (ij[:, 1] - ij[:, 1].min())
    order = np.lexsort((xyz[:, 2], key))  # by cell, lowest first
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    low = xyz[order[first]]  # the lowest point of every cell
    if len(low) < min_cells:
        return None
    design = np.column_stack([low[:, 0], low[:, 1], np.ones(len(low))])
    coef = np.array([0.0, 0.0, np.median(low[:, 2])])
    keep = np.ones(len(low), bool)
    for band in (4.0, 2.0, 1.0, 0.5, 0.25, 0.15):
        keep = np.abs(design @ coef - low[:, 2]) <= band
        if keep.sum() < 3:
            break
        coef = np.linalg.lstsq(design[keep], low[keep, 2], rcond=None)[0]
    # The lowest point of a cell sits a little below the surface (range noise): a last fit through all the
    # points near the plane averages that noise out.
    near = np.abs(xyz[:, 0] * coef[0] + xyz[:, 1] * coef[1] + coef[2] - xyz[:, 2]) <= 0.1
    if near.sum() >= 3:
        coef = np.linalg.lstsq(np.column_stack([xyz[near, :2], np.ones(int(near.sum()))]), xyz[near, 2], rcond=None)[0]
    a, b, c = coef
    return GroundEstimate(height=float(c), tilt_deg=math.degrees(math.atan(math.hypot(a, b))),
                          pitch_deg=math.degrees(math.atan(a)), roll_deg=math.degrees(math.atan(b)),
                          cells=int(len(low)), inliers=int(keep.sum()))
