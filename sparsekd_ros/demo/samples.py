"""The real sample frames bundled with the package (sparsekd_core/assets/sample_data, see its README)
and their labels, for the demo's replay and pictures."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import sparsekd_core
from sparsekd_core.data import kitti_format as kf

__all__ = ["SAMPLE_DIR", "SampleFrame", "sample_frames"]

SAMPLE_DIR = Path(sparsekd_core.__file__).resolve().parent / "assets" / "sample_data"


@dataclass(frozen=True)
class SampleFrame:
    """name: short label. path: point file. gt_boxes (M, 7) LiDAR-frame boxes and gt_names (M,) (may be empty)."""

    name: str
    path: Path
    gt_boxes: np.ndarray
    gt_names: np.ndarray


def _kitti(root: Path) -> SampleFrame:
    layout = kf.KittiLayout(root, "training")
    objects = [o for o in kf.read_label(layout.label_path("000008")) if not o.is_dontcare]
    boxes = kf.objects_to_lidar_boxes(objects, kf.read_calib(layout.calib_path("000008")))
    return SampleFrame("kitti/000008", layout.velodyne_dir() / "000008.bin", boxes.reshape(-1, 7),
                       np.array([o.type for o in objects], dtype=str))


def _nuscenes(root: Path) -> SampleFrame:
    doc = json.loads((root / "lidar_top_boxes.json").read_text())
    boxes = np.array([o["box"] for o in doc["objects"]], dtype=np.float64).reshape(-1, 7)
    names = np.array([o["name"] for o in doc["objects"]], dtype=str)
    return SampleFrame("nuscenes/lidar_top", root / "lidar_top.bin", boxes, names)


def sample_frames(root: Path = SAMPLE_DIR) -> list[SampleFrame]:
    """KITTI 000008 (HDL-64E, front view), nuScenes LIDAR_TOP (HDL-32E) and the Waymo-like scan (no labels)."""
    if not root.is_dir():
        raise FileNotFoundError(f"sample frames not found at {root}: reinstall the package (pip install -e .)")
    return [
        _kitti(root / "kitti"),
        _nuscenes(root / "nuscenes"),
        SampleFrame("waymo_like/benchmark_pc", root / "waymo_like" / "benchmark_pc.npy", np.zeros((0, 7)),
                    np.zeros(0, str)),
    ]
