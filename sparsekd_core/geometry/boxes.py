"""Box conventions: one definition of a 3D box for the whole project.

A box is ``(x, y, z, dx, dy, dz, yaw)`` in the LiDAR frame (REP 103: x forward, y left, z up):
gravity centre, full extents along the box's own x/y/z axes, yaw about +z measured from +x.
Works on numpy arrays; the torch versions used on the GPU live next to the ops that need them.
"""
from __future__ import annotations

import numpy as np


def limit_period(angle: np.ndarray, offset: float = 0.5, period: float = 2 * np.pi) -> np.ndarray:
    """Wrap angles into ``[-offset * period, (1 - offset) * period)``."""
    return angle - np.floor(angle / period + offset) * period


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """(M, 7) boxes -> (M, 4, 2) BEV corners, counter-clockwise, starting at (+dx/2, +dy/2)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    half = boxes[:, None, 3:5] / 2.0
    signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
    local = signs[None] * half  # (M, 4, 2)
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s + boxes[:, None, 0]
    y = local[..., 0] * s + local[..., 1] * c + boxes[:, None, 1]
    return np.stack([x, y], axis=-1)


def corners_3d(boxes: np.ndarray) -> np.ndarray:
    """(M, 7) boxes -> (M, 8, 3) corners: the 4 bottom corners (BEV order) then the 4 top corners."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    bev = bev_corners(boxes)
    z0 = (boxes[:, 2] - boxes[:, 5] / 2)[:, None, None].repeat(4, axis=1)
    z1 = (boxes[:, 2] + boxes[:, 5] / 2)[:, None, None].repeat(4, axis=1)
    bottom = np.concatenate([bev, z0], axis=-1)
    top = np.concatenate([bev, z1], axis=-1)
    return np.concatenate([bottom, top], axis=1)


# The 12 edges of a box as pairs of indices into corners_3d's 8 corners.
BOX_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 0),
    (4, 5), (5, 6), (6, 7), (7, 4),
    (0, 4), (1, 5), (2, 6), (3, 7),
)


def points_to_box_frame(points_xyz: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Express (N, 3) points in the frame of one box (origin at its centre, x along its heading)."""
    d = np.asarray(points_xyz, dtype=np.float64)[:, :3] - box[:3]
    c, s = np.cos(box[6]), np.sin(box[6])
    return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c, d[:, 2]], axis=1)


def points_in_boxes(points_xyz: np.ndarray, boxes: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(N, 3+) points, (M, 7) boxes -> (N, M) bool: point n lies inside box m (boundary included).

    Memory is N x M booleans (boxes per frame are few); each box first prunes points by its
    bounding circle so the exact test runs only on candidates.
    """
    points_xyz = np.asarray(points_xyz)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    inside = np.zeros((len(points_xyz), len(boxes)), dtype=bool)
    if len(points_xyz) == 0 or len(boxes) == 0:
        return inside
    # contiguous 1D columns: the per-box pre-filter is then two cheap vector compares
    x = np.ascontiguousarray(points_xyz[:, 0], dtype=np.float64)
    y = np.ascontiguousarray(points_xyz[:, 1], dtype=np.float64)
    for m, box in enumerate(boxes):
        radius = 0.5 * np.hypot(box[3], box[4]) + margin
        near = np.flatnonzero((np.abs(x - box[0]) <= radius) & (np.abs(y - box[1]) <= radius))
        if len(near) == 0:
            continue
        local = points_to_box_frame(points_xyz[near, :3], box)
        half = box[3:6] / 2 + margin
        ok = np.all(np.abs(local) <= half, axis=1)
        inside[near[ok], m] = True
    return inside


def rotate_points_z(points_xyz: np.ndarray, angle: float) -> np.ndarray:
    """Rotate (N, 3+) points about +z by ``angle`` (radians); extra columns are kept."""
    out = np.array(points_xyz, copy=True)
    c, s = np.cos(angle), np.sin(angle)
    x, y = out[:, 0].copy(), out[:, 1].copy()
    out[:, 0] = x * c - y * s
    out[:, 1] = x * s + y * c
    return out
