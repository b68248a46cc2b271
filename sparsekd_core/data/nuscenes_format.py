"""nuScenes as users download it: the facts this project needs, and reading its LiDAR sweeps.

Layout (``ROOT`` is the folder the archives were extracted into, e.g. ``/data/sets/nuscenes``)::

    ROOT/v1.0-mini/*.json  or  ROOT/v1.0-trainval/*.json     the devkit's tables (sample, sample_data, ...)
    ROOT/samples/LIDAR_TOP/*.pcd.bin                          key frames (2 Hz, annotated)
    ROOT/sweeps/LIDAR_TOP/*.pcd.bin                           the sweeps between them (20 Hz, not annotated)
    ROOT/maps/*.png                                           map masks (the devkit needs them to load)

A ``.pcd.bin`` is float32 (N, 5): x y z intensity (0..255) ring index, in the LIDAR_TOP sensor frame (x right,
y forward, z up on the car as mounted; boxes are given in the same frame, so nothing is rotated here).

Reading (:func:`read_points`): x y z, intensity / 255 (the project's models take 0..1; ARCHITECTURE.md), and a
``time_lag`` column: 0 for the key frame, and with ``sweeps`` > 1 the earlier sweeps follow, nearest first,
each brought into the key frame's sensor frame by its transform and tagged with its age in seconds. As
OpenPCDet's nuScenes loader does, a sweep loses its points within 1 m of the sensor in x and y (its own car's
roof and body); unlike it, the sweeps taken are the nearest ones, not a random choice among the ten, which is
what a robot has.

Splits are the devkit's (``nuscenes.utils.splits``): v1.0-mini has mini_train / mini_val, v1.0-trainval has
train / val; here both are called train and val.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

VERSIONS = ("v1.0-mini", "v1.0-trainval", "v1.0-test")
#: Our split name -> the devkit's split name, per version.
SPLITS: dict[str, dict[str, str]] = {
    "v1.0-mini": {"train": "mini_train", "val": "mini_val"},
    "v1.0-trainval": {"train": "train", "val": "val"},
    "v1.0-test": {"test": "test"},
}
#: The 10 detection classes of the nuScenes detection benchmark (the devkit's DETECTION_NAMES, in its order).
NUSCENES_CLASSES: tuple[str, ...] = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian",
                                     "motorcycle", "bicycle", "traffic_cone", "barrier")
#: Objects of other categories (animals, debris, bicycle racks, ...) keep this name, as OpenPCDet keeps them.
IGNORE = "ignore"
FILE_COLUMNS = 5  # x y z intensity ring
INTENSITY_MAX = 255.0
EGO_RADIUS = 1.0  # m: sweep points closer than this in x and y are the car itself
LIDAR_LAYOUT = "samples/LIDAR_TOP"


@dataclass(frozen=True)
class Sweep:
    """One earlier sweep of a key frame.

    lidar_path: its ``.pcd.bin``, relative to the dataset root. time_lag: key frame time minus sweep time, s.
    transform: (4, 4) from the sweep's sensor frame to the key frame's sensor frame (through the global frame
    with both ego poses, so the car's motion between the two is compensated).
    """

    lidar_path: str
    time_lag: float
    transform: np.ndarray


def split_name(version: str, split: str) -> str:
    """The devkit's name of our ``split`` in ``version`` (mini_val for v1.0-mini's val)."""
    if version not in SPLITS:
        raise ValueError(f"unknown nuScenes version {version!r}: one of {', '.join(VERSIONS)}")
    try:
        return SPLITS[version][split]
    except KeyError:
        raise ValueError(f"nuScenes {version} has splits {sorted(SPLITS[version])}, not {split!r}") from None


def read_sweep_file(path: str | Path) -> np.ndarray:
    """(N, 4) float32 x y z intensity/255 of one ``.pcd.bin``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"nuScenes LiDAR file {path} does not exist: extract the samples/ and sweeps/ "
                                "folders of the download into the dataset root")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % FILE_COLUMNS:
        raise ValueError(f"{path}: {raw.size} float32 values are not (N, {FILE_COLUMNS}) x y z intensity ring")
    points = raw.reshape(-1, FILE_COLUMNS)[:, :4].copy()
    points[:, 3] /= INTENSITY_MAX
    return points


def read_points(lidar_path: str, sweeps: Sequence[Sweep], root: str | Path, num_sweeps: int = 1) -> np.ndarray:
    """(N, 5) float32 x y z intensity time_lag: the key frame and up to ``num_sweeps - 1`` earlier sweeps
    (see the module docstring)."""
    if num_sweeps < 1:
        raise ValueError(f"num_sweeps must be >= 1 (the key frame itself), got {num_sweeps}")
    root = Path(root)
    current = read_sweep_file(root / lidar_path)
    parts = [np.column_stack([current, np.zeros(len(current), np.float32)])]
    for sweep in list(sweeps)[: num_sweeps - 1]:
        pts = read_sweep_file(root / sweep.lidar_path)
        pts = pts[~((np.abs(pts[:, 0]) < EGO_RADIUS) & (np.abs(pts[:, 1]) < EGO_RADIUS))]
        xyz = pts[:, :3].astype(np.float64) @ sweep.transform[:3, :3].T + sweep.transform[:3, 3]
        parts.append(np.column_stack([xyz, pts[:, 3], np.full(len(pts), sweep.time_lag)]).astype(np.float32))
    return np.concatenate(parts).astype(np.float32)
