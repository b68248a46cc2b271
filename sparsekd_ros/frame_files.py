"""Point-cloud frame files on disk -> (points, column names), for publishing them as PointCloud2.

The file formats and their column names are sparsekd_core.data.point_files' (KITTI / nuScenes
``.bin``, Waymo-processed and plain ``.npy``); this module keeps the replay's view of them: frames
are ``.bin``/``.npy`` files and a ``.bin``'s layout is given by its column count.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsekd_core.data import point_files as pf

__all__ = ["FRAME_SUFFIXES", "list_frames", "bin_columns", "read_frame"]

FRAME_SUFFIXES = (".bin", ".npy")
_BIN_FIELDS = {4: pf.KITTI_FIELDS, 5: pf.NUSCENES_FIELDS}


def list_frames(path: str | Path) -> list[Path]:
    """A frame file, or the sorted .bin/.npy files directly inside a directory; ValueError if none."""
    return pf.list_point_files(path, FRAME_SUFFIXES)


bin_columns = pf.bin_columns


def read_frame(path: str | Path, columns: int | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Load one frame -> float32 (N, F) points and their F column names.

    columns: float32 columns of a ``.bin`` (4 KITTI, 5 nuScenes; default guessed by bin_columns).
    """
    path = Path(path)
    if path.suffix not in FRAME_SUFFIXES:
        raise ValueError(f"{path}: unsupported frame file (expected .bin or .npy)")
    fields = None
    if path.suffix == ".bin":
        n = bin_columns(path, columns)
        if n not in _BIN_FIELDS:
            raise ValueError(f"--bin-columns must be 4 (KITTI) or 5 (nuScenes), got {n}")
        fields = _BIN_FIELDS[n]
    frame = pf.read_point_file(path, fields)
    return frame.points, frame.fields
