"""Tiny synthetic scenes for timing and smoke tests: a flat ground plus a few box-shaped objects.

Not a simulator (``sparsekd-sim`` ray-casts real-looking scenes); just enough structure that a detector's
loss has objects to find, drawn reproducibly from a numpy Generator and sized to a model's range.
"""
from __future__ import annotations

import numpy as np

from ..geometry.boxes import rotate_points_z

#: Typical (dx, dy, dz) in metres per class name; unknown classes get a car-like size.
CLASS_SIZES = {"Car": (3.9, 1.6, 1.56), "Vehicle": (4.5, 2.0, 1.8), "Pedestrian": (0.8, 0.6, 1.73),
               "Cyclist": (1.76, 0.6, 1.73)}
GROUND_Z = -1.6


def synthetic_scene(rng: np.random.Generator, point_cloud_range, class_names, num_features: int = 4,
                    n_ground: int = 300, n_boxes: int = 2, points_per_box: int = 60,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene inside ``point_cloud_range`` [xmin, ymin, zmin, xmax, ymax, zmax].

    Returns points (N, num_features) float32 (x y z, then features uniform in [0, 1)), boxes (M, 7) float32
    (x y z dx dy dz yaw, resting on the ground, centres at least 2 m inside the range, not overlapping) and
    labels (M,) int64 indices into ``class_names``.
    """
    r = np.asarray(point_cloud_range, dtype=np.float64)
    lo, hi = r[:3], r[3:]
    ground = np.column_stack([rng.uniform(lo[0], hi[0], n_ground), rng.uniform(lo[1], hi[1], n_ground),
                              np.full(n_ground, max(GROUND_Z, lo[2] + 0.1))])
    boxes, labels, parts = [], [], [ground]
    for _ in range(n_boxes * 10):  # rejection sampling for non-overlapping centres
        if len(boxes) == n_boxes:
            break
        label = int(rng.integers(len(class_names)))
        dx, dy, dz = CLASS_SIZES.get(class_names[label], CLASS_SIZES["Car"])
        centre = rng.uniform(lo[:2] + 2.0, hi[:2] - 2.0)
        if any(np.hypot(*(centre - b[:2])) < 0.6 * (np.hypot(dx, dy) + np.hypot(b[3], b[4])) for b in boxes):
            continue
        yaw = rng.uniform(-np.pi, np.pi)
        z = max(GROUND_Z, lo[2] + 0.1) + dz / 2
        box = np.array([centre[0], centre[1], z, dx, dy, dz, yaw])
        local = (rng.uniform(-0.5, 0.5, (points_per_box, 3)) * np.array([dx, dy, dz]))
        pts = rotate_points_z(local, yaw) + box[:3]
        boxes.append(box)
        labels.append(label)
        parts.append(pts)
    xyz = np.concatenate(parts)
    xyz = xyz[np.all((xyz >= lo) & (xyz < hi), axis=1)]
    feats = rng.uniform(0, 1, (len(xyz), num_features - 3))
    points = np.concatenate([xyz, feats], axis=1).astype(np.float32)
    return (points, np.asarray(boxes, np.float32).reshape(-1, 7), np.asarray(labels, np.int64))
