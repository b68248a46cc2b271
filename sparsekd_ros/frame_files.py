"""Point-cloud frame files on disk -> (points, column names), for publishing them as PointCloud2.

Layouts (read with sparsekd_core's dataset readers where one exists):
  KITTI  ``.bin``  float32 (N, 4): x y z intensity (reflectance 0..1)
  nuScenes ``.bin`` float32 (N, 5): x y z intensity (0..255) ring
  Waymo processed ``.npy`` (N, 6): x y z intensity elongation NLZ_flag (OpenPCDet / sparsekd-sim layout;
                   NLZ points dropped, intensity tanh-squashed as the Waymo loader does)
  plain ``.npy``   (N, 3) x y z, (N, 4) + intensity, (N, 5) + intensity elongation
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsekd_core.data.kitti_format import read_points as read_bin
from sparsekd_core.data.waymo_format import read_frame_points as read_waymo_npy

__all__ = ["FRAME_SUFFIXES", "list_frames", "bin_columns", "read_frame"]

FRAME_SUFFIXES = (".bin", ".npy")
_NPY_COLUMNS = {3: ("x", "y", "z"), 4: ("x", "y", "z", "intensity"), 5: ("x", "y", "z", "intensity", "elongation")}
_BIN_COLUMNS = {4: ("x", "y", "z", "intensity"), 5: ("x", "y", "z", "intensity", "ring")}


def list_frames(path: str | Path) -> list[Path]:
    """A frame file, or the sorted .bin/.npy files directly inside a directory; ValueError if none."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in FRAME_SUFFIXES:
            raise ValueError(f"{path} is not a .bin or .npy frame file")
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path} does not exist: pass a frame file or a directory of .bin/.npy frames")
    frames = sorted(p for p in path.iterdir() if p.suffix in FRAME_SUFFIXES and p.is_file())
    if not frames:
        subdirs = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise ValueError(f"no .bin or .npy frames directly in {path}" + (f"; subdirectories: {subdirs}" if subdirs else ""))
    return frames


def bin_columns(path: Path, columns: int | None = None) -> int:
    """Columns of a float32 .bin: ``columns`` if given; else 5 for nuScenes files (name contains
    'lidar_top' or ends in '.pcd.bin'), else 4 when the size allows (KITTI), else 5."""
    if columns is not None:
        return columns
    name = path.name.lower()
    if "lidar_top" in name or name.endswith(".pcd.bin"):
        return 5
    values = path.stat().st_size // 4
    if values % 4 == 0:
        return 4
    if values % 5 == 0:
        return 5
    raise ValueError(f"{path}: {values} float32 values fit neither 4 (KITTI) nor 5 (nuScenes) columns")


def read_frame(path: str | Path, columns: int | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Load one frame -> float32 (N, F) points and their F column names (see the module doc)."""
    path = Path(path)
    if path.suffix == ".bin":
        n = bin_columns(path, columns)
        if n not in _BIN_COLUMNS:
            raise ValueError(f"--bin-columns must be 4 (KITTI) or 5 (nuScenes), got {n}")
        return read_bin(path, n), _BIN_COLUMNS[n]
    if path.suffix == ".npy":
        raw = np.load(path, mmap_mode="r")
        if raw.ndim == 2 and raw.shape[1] == 6:
            return read_waymo_npy(path), _NPY_COLUMNS[5]
        if raw.ndim != 2 or raw.shape[1] not in _NPY_COLUMNS:
            raise ValueError(f"{path}: expected an (N, 3..6) array, got shape {raw.shape}")
        return np.asarray(raw, dtype=np.float32), _NPY_COLUMNS[raw.shape[1]]
    raise ValueError(f"{path}: unsupported frame file (expected .bin or .npy)")
