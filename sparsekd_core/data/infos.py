"""Cached dataset infos: one typed record per frame, shared by training, the gt database and evaluation.

``sparsekd-data`` writes them once (kitti_infos.py, waymo_infos.py) so nothing at training or evaluation
time parses labels or converts boxes again. On disk they live under ``ROOT/sparsekd_infos/``:

    {dataset}_infos_{split}.pkl          list of frame dicts (layout below)
    {dataset}_dbinfos_train.pkl          the gt-sampling database records (gt_database.py)
    {dataset}_gt_database_train.bin      the database's packed object points

The pickles hold plain dicts in OpenPCDet's info layout (``point_cloud``, ``annos`` with ``name``,
``gt_boxes_lidar``, ``num_points_in_gt``, ``difficulty``...; KITTI adds ``image``, ``calib`` and the label
fields; Waymo adds ``frame_id``, ``pose``) plus two keys of ours in ``point_cloud``: ``lidar_path``
(relative to ROOT) and ``point_features`` (column names). Infos written by OpenPCDet therefore load
too (:func:`frame_info_from_dict`). In memory a frame is a :class:`FrameInfo`.

Boxes are in the LiDAR frame, (x, y, z, dx, dy, dz, yaw) (docs/architecture.md). ``difficulty`` is KITTI's
0 easy / 1 moderate / 2 hard / -1 none, or Waymo's level: 1 (LEVEL_1) or 2 (LEVEL_2: <= 5 points or
labelled difficulty 2); nuScenes has none (0).

nuScenes frames are stored in OpenPCDet's nuScenes info layout (``lidar_path``, ``token``, ``sweeps`` with
``transform_matrix`` and ``time_lag``, ``gt_boxes`` (M, 9) with velocity, ``gt_names``, ``num_lidar_pts``), so
OpenPCDet's nuScenes infos load too.
"""
from __future__ import annotations

import logging
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence, TypeVar

import numpy as np
from tqdm import tqdm

from sparsekd_core.data import kitti_format, nuscenes_format, waymo_format
from sparsekd_core.data.gt_database import DbFrame, build_gt_database
from sparsekd_core.data.sweeps import TIME_LAG

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

Dataset = Literal["kitti", "waymo", "nuscenes"]
INFOS_DIR = "sparsekd_infos"
#: Columns of the points each layout's loader returns (after dropping Waymo's NLZ flag).
POINT_FEATURES: dict[str, tuple[str, ...]] = {
    "kitti": ("x", "y", "z", "intensity"),
    "waymo": ("x", "y", "z", "intensity", "elongation"),
    "nuscenes": ("x", "y", "z", "intensity", "time_lag"),
}


def infos_path(root: str | Path, dataset: Dataset, split: str) -> Path:
    """Where ``sparsekd-data`` writes the infos of ``split``."""
    return Path(root) / INFOS_DIR / f"{dataset}_infos_{split}.pkl"


def dbinfos_relpath(dataset: Dataset, split: str = "train") -> str:
    """The gt database records, relative to the dataset root."""
    return f"{INFOS_DIR}/{dataset}_dbinfos_{split}.pkl"


def db_points_relpath(dataset: Dataset, split: str = "train") -> str:
    """The gt database's packed points, relative to the dataset root."""
    return f"{INFOS_DIR}/{dataset}_gt_database_{split}.bin"


@dataclass
class ObjectAnnos:
    """The labelled objects of one frame (M of them; every array has M rows).

    names: (M,) str. boxes_lidar: (M, 7) float32, LiDAR frame (DontCare rows are zeros).
    num_points_in_gt: (M,) int64 points inside each box (-1 for DontCare / not counted).
    difficulty: (M,) int64 (see the module docstring).
    KITTI only (None for Waymo): bbox (M, 4) float32 image_2 pixels left top right bottom,
    truncated (M,) float32, occluded (M,) int64, alpha (M,) float32.
    velocity: (M, 2) float32 vx vy in m/s, LiDAR frame, where the dataset labels motion (nuScenes), else None.
    """

    names: np.ndarray
    boxes_lidar: np.ndarray
    num_points_in_gt: np.ndarray
    difficulty: np.ndarray
    bbox: np.ndarray | None = None
    truncated: np.ndarray | None = None
    occluded: np.ndarray | None = None
    alpha: np.ndarray | None = None
    velocity: np.ndarray | None = None

    def __post_init__(self):
        self.names = np.asarray(self.names, dtype=str).reshape(-1)
        m = len(self.names)
        self.boxes_lidar = np.asarray(self.boxes_lidar, dtype=np.float32).reshape(m, 7)
        self.num_points_in_gt = np.asarray(self.num_points_in_gt, dtype=np.int64).reshape(m)
        self.difficulty = np.asarray(self.difficulty, dtype=np.int64).reshape(m)
        if self.bbox is not None:
            self.bbox = np.asarray(self.bbox, dtype=np.float32).reshape(m, 4)
            self.truncated = np.asarray(self.truncated, dtype=np.float32).reshape(m)
            self.occluded = np.asarray(self.occluded, dtype=np.int64).reshape(m)
            self.alpha = np.asarray(self.alpha, dtype=np.float32).reshape(m)
        if self.velocity is not None:
            self.velocity = np.asarray(self.velocity, dtype=np.float32).reshape(m, 2)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def empty(cls) -> "ObjectAnnos":
        return cls(np.zeros(0, str), np.zeros((0, 7)), np.zeros(0), np.zeros(0))

    def as_dict(self) -> dict[str, np.ndarray]:
        """Per-box arrays by name (names, boxes_lidar, num_points_in_gt, difficulty, and for KITTI bbox,
        truncated, occluded, alpha): the per-frame ground-truth dict the eval/ metrics take."""
        out = {"names": self.names, "boxes_lidar": self.boxes_lidar, "num_points_in_gt": self.num_points_in_gt,
               "difficulty": self.difficulty}
        if self.bbox is not None:
            out.update(bbox=self.bbox, truncated=self.truncated, occluded=self.occluded, alpha=self.alpha)
        if self.velocity is not None:
            out["velocity"] = self.velocity
        return out

    def select(self, mask: np.ndarray) -> "ObjectAnnos":
        """The objects where ``mask`` (bool or index array) holds."""
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return ObjectAnnos(self.names[mask], self.boxes_lidar[mask], self.num_points_in_gt[mask],
                           self.difficulty[mask], pick(self.bbox), pick(self.truncated), pick(self.occluded),
                           pick(self.alpha), pick(self.velocity))


@dataclass
class FrameInfo:
    """One frame of a dataset.

    dataset: "kitti", "waymo" or "nuscenes". frame_id: KITTI '000008', Waymo '<segment>_%03d', nuScenes the
    sample token. lidar_path: the point file, relative to the dataset root. point_features: its columns as
    :func:`load_points` returns them. annos: labelled objects (empty for unlabelled frames).
    KITTI: calib (kitti_format.Calibration), image_shape (height, width).
    Waymo: sequence (segment name), sample_idx (frame index in it), pose (4, 4) vehicle -> world.
    nuScenes: sequence (scene name), sample_idx (key frame index in it), pose (4, 4) LiDAR -> global,
    sweeps (earlier sweeps, nearest first; nuscenes_format.Sweep), version (v1.0-mini, ...), timestamp (s).
    """

    dataset: Dataset
    frame_id: str
    lidar_path: str
    point_features: tuple[str, ...]
    annos: ObjectAnnos
    calib: kitti_format.Calibration | None = None
    image_shape: tuple[int, int] | None = None
    sequence: str | None = None
    sample_idx: int | None = None
    pose: np.ndarray | None = None
    sweeps: tuple[nuscenes_format.Sweep, ...] = ()
    version: str | None = None
    timestamp: float | None = None

    def with_annos(self, annos: ObjectAnnos) -> "FrameInfo":
        return replace(self, annos=annos)


# ---------------------------------------------------------------------------------------------- dict form
def _calib_to_dict(calib: kitti_format.Calibration) -> dict:
    """OpenPCDet stores P2, R0_rect and Tr_velo_to_cam as 4x4; the other matrices are kept 3x4."""
    pad = lambda m: np.vstack([np.hstack([m, np.zeros((3, 4 - m.shape[1]))]), [0, 0, 0, 1]])  # noqa: E731
    return {"P0": calib.P0, "P1": calib.P1, "P2": pad(calib.P2), "P3": calib.P3, "R0_rect": pad(calib.R0_rect),
            "Tr_velo_to_cam": pad(calib.Tr_velo_to_cam), "Tr_imu_to_velo": calib.Tr_imu_to_velo}


def _calib_from_dict(d: dict) -> kitti_format.Calibration:
    m = {k: np.asarray(v, dtype=np.float64) for k, v in d.items()}
    p2 = m["P2"][:3, :4]
    return kitti_format.Calibration(
        P0=m.get("P0", p2)[:3, :4], P1=m.get("P1", p2)[:3, :4], P2=p2, P3=m.get("P3", p2)[:3, :4],
        R0_rect=m["R0_rect"][:3, :3], Tr_velo_to_cam=m["Tr_velo_to_cam"][:3, :4],
        Tr_imu_to_velo=m.get("Tr_imu_to_velo", np.eye(3, 4))[:3, :4],
    )


def frame_info_to_dict(info: FrameInfo) -> dict:
    """The pickled form (OpenPCDet's layout plus ``lidar_path``/``point_features``)."""
    a = info.annos
    pc = {"num_features": len(info.point_features), "lidar_path": info.lidar_path,
          "point_features": list(info.point_features)}
    annos = {"name": a.names, "gt_boxes_lidar": a.boxes_lidar, "num_points_in_gt": a.num_points_in_gt,
             "difficulty": a.difficulty}
    if info.dataset == "kitti":
        pc["lidar_idx"] = info.frame_id
        out = {"point_cloud": pc, "image": {"image_idx": info.frame_id,
                                           "image_shape": np.array(info.image_shape or (0, 0), np.int32)}}
        if info.calib is not None:
            out["calib"] = _calib_to_dict(info.calib)
        if a.bbox is not None:
            loc, dims_hwl, ry = kitti_format.lidar_boxes_to_camera(a.boxes_lidar, info.calib) if info.calib else (
                np.zeros((len(a), 3)), np.zeros((len(a), 3)), np.zeros(len(a)))
            annos.update(truncated=a.truncated, occluded=a.occluded, alpha=a.alpha, bbox=a.bbox,
                         dimensions=dims_hwl[:, [2, 0, 1]],  # OpenPCDet keeps l h w
                         location=loc, rotation_y=ry, index=np.arange(len(a), dtype=np.int32))
        out["annos"] = annos
        return out
    if info.dataset == "nuscenes":
        return _nuscenes_to_dict(info, pc)
    pc.update(lidar_sequence=info.sequence, sample_idx=int(info.sample_idx or 0))
    annos.update(location=a.boxes_lidar[:, :3], dimensions=a.boxes_lidar[:, 3:6], heading_angles=a.boxes_lidar[:, 6])
    return {"point_cloud": pc, "frame_id": info.frame_id,
            "pose": np.eye(4, dtype=np.float32) if info.pose is None else info.pose, "annos": annos}


def _nuscenes_to_dict(info: FrameInfo, pc: dict) -> dict:
    """OpenPCDet's nuScenes info keys (gt_boxes x y z dx dy dz yaw vx vy), plus ours."""
    a = info.annos
    velocity = a.velocity if a.velocity is not None else np.zeros((len(a), 2), np.float32)
    sweeps = [{"lidar_path": s.lidar_path, "transform_matrix": s.transform, "time_lag": s.time_lag}
              for s in info.sweeps]
    return {"point_cloud": pc, "lidar_path": info.lidar_path, "token": info.frame_id, "sweeps": sweeps,
            "timestamp": info.timestamp, "version": info.version, "scene_name": info.sequence,
            "sample_idx": int(info.sample_idx or 0), "pose": info.pose,
            "gt_boxes": np.concatenate([a.boxes_lidar, velocity], axis=1), "gt_names": a.names,
            "num_lidar_pts": a.num_points_in_gt}


def _nuscenes_from_dict(d: dict, features: tuple[str, ...]) -> FrameInfo:
    boxes = np.asarray(d.get("gt_boxes", np.zeros((0, 9))), np.float32)
    boxes = boxes.reshape(len(boxes), -1)
    m = len(boxes)
    velocity = boxes[:, 7:9] if boxes.shape[1] >= 9 else np.zeros((m, 2), np.float32)
    annos = ObjectAnnos(d.get("gt_names", np.zeros(0, str)), boxes[:, :7], d.get("num_lidar_pts", np.full(m, -1)),
                        np.zeros(m), velocity=np.nan_to_num(velocity, nan=0.0))
    # OpenPCDet pads missing sweeps with copies whose transform_matrix is None (the key frame itself): skipped.
    sweeps = tuple(nuscenes_format.Sweep(str(s["lidar_path"]), float(s["time_lag"]),
                                         np.asarray(s["transform_matrix"], np.float64))
                   for s in d.get("sweeps", []) if s.get("transform_matrix") is not None)
    return FrameInfo("nuscenes", str(d["token"]), str(d["lidar_path"]), features, annos,
                     sequence=d.get("scene_name"), sample_idx=d.get("sample_idx"), pose=d.get("pose"),
                     sweeps=sweeps, version=d.get("version"), timestamp=d.get("timestamp"))


def _boxes_rows(annos: dict, m: int) -> np.ndarray:
    """OpenPCDet's KITTI infos omit DontCare rows (last in a label file) from gt_boxes_lidar: pad with zeros."""
    boxes = np.asarray(annos.get("gt_boxes_lidar", np.zeros((0, 7))), dtype=np.float32)
    boxes = boxes.reshape(len(boxes), -1)[:, :7]
    if len(boxes) < m:
        boxes = np.concatenate([boxes, np.zeros((m - len(boxes), 7), np.float32)])
    return boxes


def frame_info_from_dict(d: dict, dataset: Dataset | None = None) -> FrameInfo:
    """A pickled frame dict (ours or OpenPCDet's) -> FrameInfo. ``dataset`` None: inferred from the keys."""
    pc = d.get("point_cloud", {})
    if dataset is None:
        dataset = "nuscenes" if "sweeps" in d else "waymo" if "lidar_sequence" in pc else "kitti"
    annos_d = d.get("annos")
    features = tuple(pc.get("point_features", POINT_FEATURES[dataset]))
    if dataset == "nuscenes":
        return _nuscenes_from_dict(d, features)
    if dataset == "kitti":
        fid = str(pc.get("lidar_idx", d.get("image", {}).get("image_idx", "")))
        calib = _calib_from_dict(d["calib"]) if "calib" in d else None
        shape = d.get("image", {}).get("image_shape")
        annos = ObjectAnnos.empty()
        if annos_d is not None:
            m = len(annos_d["name"])
            annos = ObjectAnnos(annos_d["name"], _boxes_rows(annos_d, m),
                                annos_d.get("num_points_in_gt", np.full(m, -1)), annos_d["difficulty"],
                                annos_d["bbox"], annos_d["truncated"], annos_d["occluded"], annos_d["alpha"])
        return FrameInfo("kitti", fid, str(pc.get("lidar_path", f"training/velodyne/{fid}.bin")), features, annos,
                         calib, None if shape is None else (int(shape[0]), int(shape[1])))
    seq, idx = str(pc["lidar_sequence"]), int(pc["sample_idx"])
    annos = ObjectAnnos.empty()
    if annos_d is not None:
        m = len(annos_d["name"])
        level = waymo_format.difficulty_level(annos_d) if "num_points_in_gt" in annos_d else annos_d["difficulty"]
        annos = ObjectAnnos(annos_d["name"], _boxes_rows(annos_d, m), annos_d.get("num_points_in_gt", np.full(m, -1)),
                            level)
    rel = f"{waymo_format.PROCESSED_DATA_TAG}/{seq}/{idx:04d}.npy"
    return FrameInfo("waymo", str(d.get("frame_id", waymo_format.frame_id(seq, idx))), str(pc.get("lidar_path", rel)),
                     features, annos, sequence=seq, sample_idx=idx, pose=d.get("pose"))


def save_infos(path: str | Path, infos: Sequence[FrameInfo]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump([frame_info_to_dict(i) for i in infos], f)
    return path


def load_infos(path: str | Path, dataset: Dataset | None = None) -> list[FrameInfo]:
    """Read an infos pickle (written by ``sparsekd-data`` or by OpenPCDet) -> FrameInfos."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no dataset infos at {path}: build them with `sparsekd-data kitti|waymo|nuscenes --root DATASET_ROOT`")
    with open(path, "rb") as f:
        raw = pickle.load(f)
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of frame infos, found {type(raw).__name__}")
    return [frame_info_from_dict(d, dataset) for d in raw]


def load_split(root: str | Path, dataset: Dataset, split: str) -> list[FrameInfo]:
    """The cached infos of ``split`` under ``root`` (see :func:`infos_path`)."""
    return load_infos(infos_path(root, dataset, split), dataset)


# ---------------------------------------------------------------------------------------------- points
def load_points(info: FrameInfo, root: str | Path, sweeps: int = 1) -> np.ndarray:
    """(N, F) float32 points of a frame, columns ``info.point_features``, normalised as the loaders define:
    KITTI reflectance as stored (0..1); Waymo without no-label-zone points and with tanh(intensity)
    (OpenPCDet's normalisation, what its models and gt databases expect); nuScenes intensity / 255 and the
    key frame plus up to ``sweeps - 1`` earlier sweeps with their time lag (nuscenes_format.read_points).
    ``sweeps`` > 1 merges earlier sweeps (data/sweeps.py; columns: :func:`loaded_features`): nuScenes its listed
    sweeps, Waymo the frames before it in its segment; KITTI object frames have none."""
    if info.dataset == "nuscenes":
        return nuscenes_format.read_points(info.lidar_path, info.sweeps, root, sweeps)
    if sweeps != 1:
        loaded_features(info, sweeps)  # says why a KITTI frame cannot
        return waymo_format.read_frame_with_sweeps(root, info.lidar_path, info.sequence, info.sample_idx, sweeps)
    path = Path(root) / info.lidar_path
    if info.dataset == "kitti":
        if not path.is_file():
            # OpenPCDet's infos carry no path: fall back to the FOV-cropped copy when there is no full scan.
            reduced = path.parent.with_name("velodyne_reduced") / path.name
            path = reduced if reduced.is_file() else path
        return kitti_format.read_points(path, num_features=len(info.point_features))
    return waymo_format.read_frame_points(path)


def loaded_features(info: FrameInfo, sweeps: int = 1) -> tuple[str, ...]:
    """The columns :func:`load_points` returns for ``info`` with ``sweeps``: the frame's, and time_lag after them
    when earlier sweeps are merged in (nuScenes frames always have it). ValueError when the dataset has no
    sweeps with poses to merge."""
    features = tuple(info.point_features)
    if sweeps <= 1 or TIME_LAG in features:
        return features
    if info.dataset != "waymo" or info.sequence is None or info.sample_idx is None:
        raise ValueError(f"frame {info.frame_id} ({info.dataset}) has no earlier sweeps with poses: a model that "
                         f"merges {sweeps} sweeps needs a dataset of sequences with poses (Waymo or nuScenes layout, "
                         "e.g. sparsekd-sim --sequence --format waymo); KITTI object frames are single sweeps")
    return features + (TIME_LAG,)


# ---------------------------------------------------------------------------------------------- building
def map_frames(fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str, progress: bool = True) -> Iterator[R]:
    """``fn`` over ``items`` in order, on ``workers`` threads (file reads and numpy release the GIL), with a
    tqdm bar. Results are yielded as they come, so a consumer can write them out without holding all."""
    bar = tqdm(total=len(items), desc=desc, unit="frame", disable=not progress)
    try:
        if workers <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(fn, items):
                yield result
                bar.update()
    finally:
        bar.close()


@dataclass
class SplitSummary:
    """What was built for one split: frames, labelled objects per class, gt database objects per class."""

    dataset: str
    split: str
    frames: int
    objects: dict[str, int]
    infos_path: Path
    db_objects: dict[str, int] | None = None

    def lines(self) -> list[str]:
        objs = ", ".join(f"{k} {v}" for k, v in sorted(self.objects.items())) or "none"
        out = [f"{self.dataset} {self.split}: {self.frames} frames, objects: {objs} -> {self.infos_path}"]
        if self.db_objects is not None:
            db = ", ".join(f"{k} {v}" for k, v in sorted(self.db_objects.items())) or "none"
            out.append(f"{self.dataset} {self.split} gt database: {db}")
        return out


def count_objects(infos: Sequence[FrameInfo]) -> dict[str, int]:
    names, counts = np.unique(np.concatenate([i.annos.names for i in infos] or [np.zeros(0, str)]),
                              return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}


def build_gt_database_from_infos(infos: Sequence[FrameInfo], root: str | Path, split: str = "train",
                                 classes: Sequence[str] | None = None, workers: int = 2,
                                 progress: bool = True) -> dict[str, list[dict]]:
    """Build a dataset's gt database from its infos, reading points with :func:`load_points` (so pasted
    points have exactly the columns and normalisation of scene points). Writes :func:`dbinfos_relpath`
    and :func:`db_points_relpath` under ``root``; returns the dbinfos (class -> records).

    nuScenes objects are cut from the key frame merged with every sweep its infos list (10 by default), with their
    velocities, as OpenPCDet's ``nuscenes_dbinfos_10sweeps_withvelo``: a pasted object then looks like the objects
    of a multi-sweep scene (gt-sampling leaves out the sweeps a model with fewer does not merge)."""
    if not infos:
        raise ValueError(f"gt database: split {split!r} has no frames to build it from")
    dataset = infos[0].dataset

    def frame(info: FrameInfo) -> DbFrame:
        a = info.annos
        sweeps = 1 + len(info.sweeps) if info.dataset == "nuscenes" else 1
        return DbFrame(info.frame_id, load_points(info, root, sweeps), a.boxes_lidar, a.names, a.difficulty,
                       a.velocity)

    frames = map_frames(frame, list(infos), workers, f"{dataset} {split} gt database", progress)
    return build_gt_database(frames, root, db_points_relpath(dataset, split), dbinfos_relpath(dataset, split),
                             classes, progress=False)


def create_infos(dataset: Dataset, root: str | Path, splits: Sequence[str],
                 build_split: Callable[[str], list[FrameInfo]], db_split: str | None = "train",
                 db_classes: Sequence[str] | None = None, workers: int = 2,
                 progress: bool = True) -> list[SplitSummary]:
    """Build (``build_split(split)``) and save the infos of each split, then the gt database of ``db_split``
    (None: none; a split not in ``splits`` is read from its saved infos). Returns one summary per split."""
    summaries: dict[str, SplitSummary] = {}
    built: dict[str, list[FrameInfo]] = {}
    for split in splits:
        built[split] = build_split(split)
        path = save_infos(infos_path(root, dataset, split), built[split])
        summaries[split] = SplitSummary(dataset, split, len(built[split]), count_objects(built[split]), path)
    if db_split is not None:
        infos = built.get(db_split) or load_split(root, dataset, db_split)
        db = build_gt_database_from_infos(infos, root, db_split, db_classes, workers, progress)
        summary = summaries.get(db_split) or SplitSummary(dataset, db_split, len(infos), count_objects(infos),
                                                          infos_path(root, dataset, db_split))
        summary.db_objects = {k: len(v) for k, v in db.items()}
        summaries[db_split] = summary
    return list(summaries.values())
