"""The Waymo Open Dataset as OpenPCDet/SparseKD users have it on disk after OpenPCDet's conversion.

Layout (``waymo_processed_data_v0_5_0`` is OpenPCDet's ``PROCESSED_DATA_TAG``)::

    ROOT/ImageSets/{train,val}.txt                  one segment per line, as ``<segment>.tfrecord``
                                                    (the extension is optional; readers strip it)
    ROOT/waymo_processed_data_v0_5_0/<segment>/0000.npy   float32 (N, 6): x y z intensity elongation NLZ_flag
    ROOT/waymo_processed_data_v0_5_0/<segment>/<segment>.pkl   list of frame infos of that segment
    ROOT/waymo_infos_{train,val}.pkl                all frame infos of a split, concatenated

Points are in the vehicle frame (x forward, y left, z up, z = 0 near the ground). ``NLZ_flag`` is -1
for points to keep and otherwise the index of the no-label zone the point falls in. ``intensity`` is
the raw return strength; OpenPCDet's loader squashes it with ``tanh`` (see :func:`read_frame_points`).

A frame info is a dict (keys and types as OpenPCDet writes them)::

    point_cloud: {num_features: 5, lidar_sequence: <segment>, sample_idx: <frame index in the segment>}
    frame_id:    '<segment>_%03d'
    pose:        (4, 4) float32, vehicle -> world
    annos:       name (M,) str, difficulty (M,) int (0/1 unset, 2 = LEVEL_2), dimensions (M, 3) l w h,
                 location (M, 3) box centre, heading_angles (M,), obj_ids (M,) str,
                 tracking_difficulty (M,) int, num_points_in_gt (M,) int,
                 gt_boxes_lidar (M, 7) = x y z dx dy dz heading (the project's box convention)

Classes: Vehicle, Pedestrian, Cyclist. ``Sign`` and ``unknown`` are dropped when reading.
"""
from __future__ import annotations

import functools
import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from sparsekd_core.data.sweeps import Sweep, merge_sweeps
from sparsekd_core.geometry.transforms import RigidTransform

PROCESSED_DATA_TAG = "waymo_processed_data_v0_5_0"
WAYMO_CLASSES: tuple[str, ...] = ("Vehicle", "Pedestrian", "Cyclist")
#: Columns of the per-frame ``.npy`` files.
POINT_COLUMNS: tuple[str, ...] = ("x", "y", "z", "intensity", "elongation", "NLZ_flag")
#: Waymo's rule: LEVEL_2 for objects with at most this many points (or labelled difficulty 2).
LEVEL_2_MAX_POINTS = 5
_ANNO_KEYS = ("name", "difficulty", "dimensions", "location", "heading_angles", "obj_ids",
              "tracking_difficulty", "num_points_in_gt", "gt_boxes_lidar")


@dataclass(frozen=True)
class WaymoLayout:
    """Paths of one Waymo root in OpenPCDet's processed layout."""

    root: Path
    processed_data_tag: str = PROCESSED_DATA_TAG

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def data_dir(self) -> Path:
        return self.root / self.processed_data_tag

    def segment_dir(self, segment: str) -> Path:
        return self.data_dir / segment_name(segment)

    def frame_path(self, segment: str, sample_idx: int) -> Path:
        return self.segment_dir(segment) / f"{int(sample_idx):04d}.npy"

    def segment_infos_path(self, segment: str) -> Path:
        name = segment_name(segment)
        return self.segment_dir(name) / f"{name}.pkl"

    def infos_path(self, split: str) -> Path:
        return self.root / f"waymo_infos_{split}.pkl"

    def image_set_path(self, split: str) -> Path:
        return self.root / "ImageSets" / f"{split}.txt"


def segment_name(entry: str) -> str:
    """An ImageSets entry (``segment-..._with_camera_labels.tfrecord``) -> the segment folder name."""
    entry = entry.strip()
    return os.path.splitext(entry)[0] if entry.endswith(".tfrecord") else entry


def frame_id(segment: str, sample_idx: int) -> str:
    """OpenPCDet's frame id: ``<segment>_%03d``."""
    return f"{segment_name(segment)}_{int(sample_idx):03d}"


# --------------------------------------------------------------------------------------------- points
def read_frame_points(path: str | Path, drop_nlz: bool = True, tanh_intensity: bool = True) -> np.ndarray:
    """Read one ``NNNN.npy`` -> float32 (N, 5): x y z intensity elongation (what OpenPCDet's loader yields).

    drop_nlz: keep only points outside no-label zones (NLZ_flag == -1), as OpenPCDet does.
    tanh_intensity: squash the raw intensity with tanh (OpenPCDet's normalisation, giving 0..1).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Waymo frame {path} does not exist (expected ROOT/{PROCESSED_DATA_TAG}/<segment>/NNNN.npy)")
    raw = np.load(path)
    if raw.ndim != 2 or raw.shape[1] != len(POINT_COLUMNS):
        raise ValueError(f"{path}: expected float32 (N, 6) {' '.join(POINT_COLUMNS)}, got shape {raw.shape}")
    points = raw[:, :5].astype(np.float32)
    if drop_nlz:
        points = points[raw[:, 5] == -1]
    if tanh_intensity:
        points[:, 3] = np.tanh(points[:, 3])
    return points


def write_frame_points(path: str | Path, points: np.ndarray, nlz_flag: np.ndarray | None = None) -> None:
    """Write (N, 5) x y z intensity elongation (+ an NLZ flag column, -1 = keep) or (N, 6) points as ``.npy``."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] not in (5, 6):
        raise ValueError(f"points must be (N, 5) x y z intensity elongation or (N, 6) with NLZ_flag, "
                         f"got shape {points.shape}")
    if points.shape[1] == 5:
        flag = np.full(len(points), -1.0, np.float32) if nlz_flag is None else np.asarray(nlz_flag, np.float32)
        points = np.column_stack([points, flag.reshape(-1)])
    with _atomic(path) as f:
        np.save(f, np.ascontiguousarray(points, dtype=np.float32))


@contextmanager
def _atomic(path: str | Path):
    """Open a temporary file beside ``path`` for writing; it becomes ``path`` only once fully written, so an
    interrupted writer never leaves a truncated file that a resumed run would take as done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- infos
def make_annos(names: Sequence[str], boxes: np.ndarray, num_points_in_gt: Sequence[int],
               difficulty: Sequence[int] | None = None, obj_ids: Sequence[str] | None = None,
               tracking_difficulty: Sequence[int] | None = None) -> dict:
    """The ``annos`` dict of a frame info from LiDAR boxes (M, 7) x y z dx dy dz heading."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    m = len(boxes)
    if not (len(names) == m == len(num_points_in_gt)):
        raise ValueError(f"names ({len(names)}), boxes ({m}) and num_points_in_gt ({len(num_points_in_gt)}) "
                         "must have one entry per object")
    diff = np.zeros(m, np.int32) if difficulty is None else np.asarray(difficulty, np.int32).reshape(m)
    ids = np.array([f"obj{i}" for i in range(m)] if obj_ids is None else list(obj_ids), dtype=str).reshape(m)
    return {
        "name": np.array(list(names), dtype=str).reshape(m),
        "difficulty": diff,
        "dimensions": boxes[:, 3:6].copy(),
        "location": boxes[:, 0:3].copy(),
        "heading_angles": boxes[:, 6].copy(),
        "obj_ids": ids,
        "tracking_difficulty": (np.zeros(m, np.int32) if tracking_difficulty is None
                                else np.asarray(tracking_difficulty, np.int32).reshape(m)),
        "num_points_in_gt": np.asarray(num_points_in_gt, np.int64).reshape(m),
        "gt_boxes_lidar": boxes.copy(),
    }


def make_frame_info(segment: str, sample_idx: int, pose: np.ndarray, annos: dict | None,
                    num_points: int | Sequence[int] | None = None) -> dict:
    """One frame info (see the module docstring). ``annos`` None for unlabelled (test) frames.

    num_points: the frame's point count, or one count per LiDAR in the order of the ``.npy`` rows
    (``num_points_of_each_lidar``)."""
    segment = segment_name(segment)
    info = {
        "point_cloud": {"num_features": 5, "lidar_sequence": segment, "sample_idx": int(sample_idx)},
        "frame_id": frame_id(segment, sample_idx),
        "pose": np.asarray(pose, dtype=np.float32).reshape(4, 4),
    }
    if num_points is not None:
        counts = [num_points] if np.ndim(num_points) == 0 else list(num_points)
        info["num_points_of_each_lidar"] = [int(n) for n in counts]
    if annos is not None:
        missing = [k for k in _ANNO_KEYS if k not in annos]
        if missing:
            raise ValueError(f"annos lacks {', '.join(missing)}: build it with make_annos()")
        info["annos"] = annos
    return info


def drop_classes(annos: dict, keep: Iterable[str] = WAYMO_CLASSES) -> dict:
    """A copy of ``annos`` with only objects of the ``keep`` classes (Sign and unknown dropped)."""
    keep = set(keep)
    mask = np.array([n in keep for n in annos["name"]], dtype=bool)
    m = len(annos["name"])
    out = {}
    for key, value in annos.items():
        if isinstance(value, np.ndarray) and value.shape[:1] == (m,):
            out[key] = value[mask]
        else:
            out[key] = value
    if "gt_boxes_lidar" in out:
        out["gt_boxes_lidar"] = np.asarray(out["gt_boxes_lidar"]).reshape(-1, 7)
    return out


def difficulty_level(annos: dict) -> np.ndarray:
    """(M,) Waymo difficulty level: 2 (LEVEL_2) for objects with <= 5 points or labelled difficulty 2, else 1."""
    npts = np.asarray(annos["num_points_in_gt"]).reshape(-1)
    labelled = np.asarray(annos["difficulty"]).reshape(-1)
    return np.where((npts <= LEVEL_2_MAX_POINTS) | (labelled == 2), 2, 1).astype(np.int64)


def _load_pickle(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"Waymo infos {path} do not exist; write them with write_segment_infos/write_infos "
                                "or OpenPCDet's create_waymo_infos")
    with open(path, "rb") as f:
        return pickle.load(f)


def _dump_pickle(path: Path, obj) -> None:
    with _atomic(path) as f:
        pickle.dump(obj, f)


def write_segment_infos(layout: WaymoLayout, segment: str, infos: list[dict]) -> None:
    _dump_pickle(layout.segment_infos_path(segment), infos)


def read_segment_infos(layout: WaymoLayout, segment: str) -> list[dict]:
    return _load_pickle(layout.segment_infos_path(segment))


def write_infos(layout: WaymoLayout, split: str, infos: list[dict]) -> None:
    _dump_pickle(layout.infos_path(split), infos)


def _sample(infos: list[dict], sampled_interval: int) -> list[dict]:
    if sampled_interval < 1:
        raise ValueError(f"sampled_interval must be >= 1 (every k-th frame), got {sampled_interval}")
    return infos[::sampled_interval]


def read_infos(layout: WaymoLayout, split: str, sampled_interval: int = 1, from_segments: bool = False,
               drop_other_classes: bool = True) -> list[dict]:
    """Frame infos of a split, every ``sampled_interval``-th frame (OpenPCDet's SAMPLED_INTERVAL).

    from_segments: read the per-segment ``.pkl`` of the segments listed in ``ImageSets/<split>.txt``
    (what OpenPCDet's dataset does; segments without a ``.pkl`` are skipped) instead of
    ``waymo_infos_<split>.pkl``. drop_other_classes: remove Sign/unknown objects from ``annos``.
    """
    if from_segments:
        infos = []
        for seg in read_image_set(layout.image_set_path(split)):
            path = layout.segment_infos_path(seg)
            if path.is_file():
                infos.extend(_load_pickle(path))
    else:
        infos = _load_pickle(layout.infos_path(split))
    infos = _sample(infos, sampled_interval)
    if drop_other_classes:
        for info in infos:
            if "annos" in info:
                info["annos"] = drop_classes(info["annos"])
    return infos


def read_image_set(path: str | Path) -> list[str]:
    """``ImageSets/<split>.txt`` -> segment names (``.tfrecord`` stripped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image set {path} does not exist (expected ROOT/ImageSets/{{train,val}}.txt)")
    return [segment_name(line) for line in path.read_text().splitlines() if line.strip()]


def write_image_set(path: str | Path, segments: Sequence[str]) -> None:
    """Write segment names as ``<segment>.tfrecord`` lines, like the lists users have."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{segment_name(s)}.tfrecord\n" for s in segments))


def load_frame(layout: WaymoLayout, info: dict, **kwargs) -> np.ndarray:
    """The points of a frame info: :func:`read_frame_points` on its ``.npy`` (kwargs passed on)."""
    pc = info["point_cloud"]
    return read_frame_points(layout.frame_path(pc["lidar_sequence"], pc["sample_idx"]), **kwargs)


SWEEP_PERIOD = 0.1  # seconds between two frames of a segment (10 Hz): OpenPCDet's time-lag step


@functools.lru_cache(maxsize=64)
def _segment_frames(root: str, segment: str) -> dict[int, tuple[np.ndarray, float]]:
    """sample_idx -> (vehicle pose (4, 4), stamp in s) of every frame of a segment (its ``<segment>.pkl``)."""
    frames = {}
    for info in read_segment_infos(WaymoLayout(Path(root)), segment):
        idx = int(info["point_cloud"]["sample_idx"])
        stamp = info["timestamp_micros"] * 1e-6 if "timestamp_micros" in info else idx * SWEEP_PERIOD
        frames[idx] = (np.asarray(info["pose"], np.float64), float(stamp))
    return frames


def _rigid(pose: np.ndarray) -> RigidTransform:
    """A 4x4 pose (float32 poses re-orthonormalised) -> RigidTransform."""
    u, _, vt = np.linalg.svd(pose[:3, :3])
    return RigidTransform(u @ vt, pose[:3, 3])


def read_frame_with_sweeps(root: str | Path, lidar_path: str, segment: str, sample_idx: int, count: int) -> np.ndarray:
    """(N, 6) float32 x y z intensity elongation time_lag: a frame (``lidar_path`` under ``root``) and the up to
    ``count - 1`` frames before it in its segment, moved into its vehicle frame with the segment's poses and aged
    by their timestamps (``SWEEP_PERIOD`` per frame when the infos have none), as OpenPCDet's multi-frame Waymo
    loader builds them; a segment's first frames use what there is before them."""
    root = Path(root)
    frames = _segment_frames(str(root), segment_name(segment))
    idx = int(sample_idx)
    if idx not in frames:
        raise ValueError(f"frame {idx} of {segment} is not in its segment infos ({segment_name(segment)}.pkl)")

    def with_lag(path: Path) -> np.ndarray:
        pts = read_frame_points(path)
        return np.column_stack([pts, np.zeros(len(pts), np.float32)])

    pose, stamp = frames[idx]
    current = Sweep(with_lag(root / lidar_path), stamp, _rigid(pose))
    earlier = []
    for j in range(idx - 1, max(idx - count, -1), -1):
        path = root / Path(lidar_path).with_name(f"{j:04d}.npy")
        if j in frames and path.is_file():
            earlier.append(Sweep(with_lag(path), frames[j][1], _rigid(frames[j][0])))
    return merge_sweeps(current, earlier, time_lag_column=5)[0]
