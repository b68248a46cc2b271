"""Point-cloud files on disk -> float32 (N, F) points and their F field names. No ROS.

Formats (by suffix):
  ``.bin``  raw float32 rows, columns named by ``fields``; without it: KITTI (N, 4) x y z intensity
            (reflectance 0..1), or nuScenes (N, 5) x y z intensity (0..255) ring when the name says
            nuScenes ('lidar_top', '*.pcd.bin') or the size only splits into 5 columns.
  ``.npy``  (N, 3) x y z, (N, 4) + intensity, (N, 5) + intensity elongation; (N, 6) is the Waymo
            processed layout x y z intensity elongation NLZ_flag (OpenPCDet / sparsekd-sim): NLZ
            points are dropped and intensity is tanh-squashed, as the Waymo loader does.
  ``.pcd``/``.ply`` read with open3d's tensor I/O, which keeps every scalar field: x y z, then
            intensity (also found as 'i', 'reflectance', 'remission'), then the other scalar fields in
            name order. Colours and normals are not LiDAR features and are left out.

Intensity scales differ by sensor (KITTI 0..1, nuScenes/Velodyne drivers 0..255); models take 0..1.
:func:`intensity_scale` picks the factor (see its rule) and :func:`model_points` picks the model's
columns, so every entry point (``sparsekd-detect``, ``sparsekd-replay``, the demo) reads files alike.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsekd_core.data.kitti_format import read_points as read_bin_rows
from sparsekd_core.data.sweeps import TIME_LAG
from sparsekd_core.data.waymo_format import read_frame_points as read_waymo_npy

__all__ = [
    "POINT_FILE_SUFFIXES",
    "KITTI_FIELDS",
    "NUSCENES_FIELDS",
    "PointFile",
    "parse_fields",
    "bin_columns",
    "list_point_files",
    "read_point_file",
    "intensity_scale",
    "model_points",
]

log = logging.getLogger(__name__)

POINT_FILE_SUFFIXES = (".bin", ".npy", ".pcd", ".ply")
KITTI_FIELDS = ("x", "y", "z", "intensity")
NUSCENES_FIELDS = ("x", "y", "z", "intensity", "ring")
_NPY_FIELDS = {3: ("x", "y", "z"), 4: KITTI_FIELDS, 5: ("x", "y", "z", "intensity", "elongation")}
_BIN_FIELDS = {4: KITTI_FIELDS, 5: NUSCENES_FIELDS}
_INTENSITY_ALIASES = ("intensity", "i", "reflectance", "remission")
_O3D_SKIP = ("positions", "colors", "normals")


@dataclass(frozen=True)
class PointFile:
    """One file's points: ``points`` float32 (N, F), ``fields`` their F names (x y z first)."""

    path: Path
    points: np.ndarray
    fields: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.points)


def parse_fields(text: str | Sequence[str]) -> tuple[str, ...]:
    """'x,y,z,intensity' (or a sequence of names) -> ('x', 'y', 'z', 'intensity').

    ValueError unless x, y, z come first and no name repeats.
    """
    names = tuple(f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip())
    if names[:3] != ("x", "y", "z"):
        raise ValueError(f"fields must start with x,y,z (e.g. x,y,z,intensity), got {','.join(names) or 'nothing'}")
    if len(set(names)) != len(names):
        raise ValueError(f"fields name a column twice: {','.join(names)}")
    return names


def _describe(suffixes: Sequence[str]) -> str:
    """('.bin', '.npy', '.pcd') -> '.bin, .npy or .pcd'."""
    return suffixes[0] if len(suffixes) == 1 else ", ".join(suffixes[:-1]) + " or " + suffixes[-1]


def list_point_files(path: str | Path, suffixes: Sequence[str] = POINT_FILE_SUFFIXES) -> list[Path]:
    """A point file, or the sorted point files directly inside a directory; ValueError if there are none."""
    path = Path(path)
    kinds = _describe(tuple(suffixes))
    if path.is_file():
        if path.suffix not in suffixes:
            raise ValueError(f"{path} is not a {kinds} frame file")
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path} does not exist: pass a frame file or a directory of {'/'.join(suffixes)} frames")
    files = sorted(p for p in path.iterdir() if p.suffix in suffixes and p.is_file())
    if not files:
        subdirs = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise ValueError(f"no {kinds} frames directly in {path}" + (f"; subdirectories: {subdirs}" if subdirs else ""))
    return files


def bin_columns(path: str | Path, columns: int | None = None) -> int:
    """Columns of a float32 ``.bin``: ``columns`` if given; else 5 for nuScenes files (name contains
    'lidar_top' or ends in '.pcd.bin'), else 4 when the size allows (KITTI), else 5."""
    if columns is not None:
        return int(columns)
    path = Path(path)
    name = path.name.lower()
    if "lidar_top" in name or name.endswith(".pcd.bin"):
        return 5
    values = path.stat().st_size // 4
    if values % 4 == 0:
        return 4
    if values % 5 == 0:
        return 5
    raise ValueError(f"{path}: {values} float32 values fit neither 4 (KITTI) nor 5 (nuScenes) columns: "
                     f"name the columns with --fields")


def _read_bin(path: Path, fields: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    if fields is not None:
        names = parse_fields(fields)
    else:
        names = _BIN_FIELDS.get(bin_columns(path))
        if names is None:  # pragma: no cover - bin_columns returns 4 or 5
            raise ValueError(f"{path}: unknown .bin layout")
    return read_bin_rows(path, len(names)), names


def _read_npy(path: Path, fields: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    raw = np.load(path, mmap_mode="r")
    if raw.ndim != 2 or raw.shape[1] < 3:
        raise ValueError(f"{path}: expected an (N, 3..6) array of points, got shape {raw.shape}")
    if fields is not None:
        names = parse_fields(fields)
        if len(names) != raw.shape[1]:
            raise ValueError(f"{path} has {raw.shape[1]} columns but --fields names {len(names)}: {','.join(names)}")
        return np.asarray(raw, dtype=np.float32), names
    if raw.shape[1] == 6:
        return read_waymo_npy(path), _NPY_FIELDS[5]
    if raw.shape[1] not in _NPY_FIELDS:
        raise ValueError(f"{path}: expected an (N, 3..6) array, got shape {raw.shape}; name the columns with --fields")
    return np.asarray(raw, dtype=np.float32), _NPY_FIELDS[raw.shape[1]]


def _read_open3d(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    import open3d as o3d

    cloud = o3d.t.io.read_point_cloud(str(path))
    attrs = {name: cloud.point[name].numpy() for name in cloud.point}
    if "positions" not in attrs:
        if path.stat().st_size > 0 and not attrs:
            raise ValueError(f"{path}: open3d read no points (not a valid {path.suffix} point cloud?)")
        attrs["positions"] = np.zeros((0, 3), np.float32)
    n = len(attrs["positions"])
    scalar = {k: v.reshape(n, -1) for k, v in attrs.items() if k not in _O3D_SKIP and v.reshape(n, -1).shape[1] == 1}
    names = ["x", "y", "z"]
    columns = [attrs["positions"].reshape(n, 3).astype(np.float32)]
    alias = next((a for a in _INTENSITY_ALIASES if a in scalar), None)
    if alias is not None:
        names.append("intensity")
        columns.append(scalar.pop(alias).astype(np.float32))
    for name in sorted(scalar):
        if name in names:
            continue
        names.append(name)
        columns.append(scalar[name].astype(np.float32))
    return np.ascontiguousarray(np.hstack(columns), dtype=np.float32), tuple(names)


def read_point_file(path: str | Path, fields: str | Sequence[str] | None = None) -> PointFile:
    """Load one point file (see the module doc for the formats).

    fields: column names of a ``.bin``/``.npy`` (their count must match the file), e.g. 'x,y,z,intensity,ring';
    ``.pcd``/``.ply`` name their own fields, so it is ignored there.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        points, names = _read_bin(path, fields)
    elif suffix == ".npy":
        points, names = _read_npy(path, fields)
    elif suffix in (".pcd", ".ply"):
        points, names = _read_open3d(path)
    else:
        raise ValueError(f"{path}: unsupported point file (expected {_describe(POINT_FILE_SUFFIXES)})")
    return PointFile(path, np.ascontiguousarray(points, dtype=np.float32), names)


def intensity_scale(values: np.ndarray, scale: str | float = "auto") -> float:
    """The factor that brings an intensity column to the models' 0..1 (KITTI reflectance) scale.

    ``scale`` a number: that factor. ``"auto"``: from the largest finite value: <= 1 -> 1 (KITTI,
    Waymo, the simulator); <= 255 -> 1/255 (8-bit: nuScenes, most Velodyne drivers); larger ->
    1/65535 (16-bit: Ouster, Hesai), with a warning, since such values are sensor-specific and a
    model trained on 0..1 reflectance may need its own calibration.
    """
    if not isinstance(scale, str):
        return float(scale)
    if scale != "auto":
        try:
            return float(scale)
        except ValueError:
            raise ValueError(f"intensity scale must be 'auto' or a number such as 0.00392 (1/255), got {scale!r}")
    finite = np.asarray(values)[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    if top <= 1.0:
        return 1.0
    if top <= 255.0:
        return 1.0 / 255.0
    log.warning("intensity up to %.0f: assuming a 16-bit scale (x 1/65535); pass an explicit scale if that "
                "is wrong for this sensor", top)
    return 1.0 / 65535.0


def model_points(points: np.ndarray, fields: Sequence[str], features: Sequence[str],
                 scale: str | float = "auto") -> tuple[np.ndarray, list[str], float]:
    """Columns ``features`` (a model's point_features) of ``points`` named ``fields``.

    Features the file lacks are zeros (as the ROS node does for a missing intensity field); the
    intensity column is multiplied by :func:`intensity_scale`. A file is one sweep, so a ``time_lag``
    feature (multi-sweep models) it lacks is 0 by definition and not reported missing. Returns
    (float32 (N, len(features)), the missing feature names, the intensity factor used).
    """
    fields = list(fields)
    if fields[:3] != ["x", "y", "z"]:
        raise ValueError(f"points must start with x, y, z columns, got fields {fields}")
    out = np.zeros((len(points), len(features)), np.float32)
    missing: list[str] = []
    factor = 1.0
    for j, name in enumerate(features):
        if name not in fields:
            if name != TIME_LAG:
                missing.append(name)
            continue
        column = points[:, fields.index(name)]
        if name == "intensity":
            factor = intensity_scale(column, scale)
            column = column * np.float32(factor)
        out[:, j] = column
    return out, missing, factor
