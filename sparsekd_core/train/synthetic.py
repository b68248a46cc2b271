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


def synthetic_batch(rng: np.random.Generator, point_cloud_range, class_names, batch_size: int = 2,
                    num_features: int = 4, n_ground: int = 300, n_boxes: int = 2):
    """``batch_size`` synthetic scenes as a detector's training inputs, collated as the data loader does: a list
    of (N_i, F) float32 point tensors, boxes (B, M, 7) and labels (B, M) padded with -1 (on the CPU)."""
    import torch

    from ..data.dataset import Sample, collate_samples
    from .batches import batch_inputs

    samples = [Sample(*synthetic_scene(rng, point_cloud_range, class_names, num_features, n_ground=n_ground,
                                       n_boxes=n_boxes), frame_id=f"synthetic_{b}") for b in range(batch_size)]
    return batch_inputs(collate_samples(samples), torch.device("cpu"))


def toy_calibration():
    """A KITTI-like calibration: LiDAR at the camera's origin (x forward -> camera z, y left -> -x, z up -> -y),
    KITTI's P2 intrinsics (f 721.5 px, centre 609.6, 172.9), no rectification."""
    from ..data.kitti_format import Calibration

    p2 = np.array([[721.5377, 0.0, 609.5593, 0.0], [0.0, 721.5377, 172.854, 0.0], [0.0, 0.0, 1.0, 0.0]])
    velo_to_cam = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    return Calibration(P0=p2, P1=p2, P2=p2, P3=p2, R0_rect=np.eye(3), Tr_velo_to_cam=velo_to_cam)


def write_toy_kitti(root, point_cloud_range, class_names, n_train: int = 6, n_val: int = 3, seed: int = 0,
                    **scene_kwargs) -> list[str]:
    """Write a toy dataset in KITTI's layout (training/velodyne, label_2, calib, ImageSets/train+val) whose
    scenes come from :func:`synthetic_scene`; for smoke runs of ``sparsekd-train`` and tests.
    Returns the frame ids (train first)."""
    from pathlib import Path

    from ..data import kitti_format as kf

    layout = kf.KittiLayout(Path(root))
    calib = toy_calibration()
    rng = np.random.default_rng(seed)
    ids = [kf.frame_id(i) for i in range(n_train + n_val)]
    for fid in ids:
        points, boxes, labels = synthetic_scene(rng, point_cloud_range, class_names, **scene_kwargs)
        path = layout.points_path(fid, reduced=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        kf.write_points(path, points)
        kf.write_calib(layout.calib_path(fid), calib)
        layout.label_path(fid).parent.mkdir(parents=True, exist_ok=True)
        kf.write_label(layout.label_path(fid),
                       [kf.make_object(class_names[l], b, calib) for b, l in zip(boxes, labels)])
    kf.write_image_set(layout.image_set_path("train"), ids[:n_train])
    kf.write_image_set(layout.image_set_path("val"), ids[n_train:])
    return ids
